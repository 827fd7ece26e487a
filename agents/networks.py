"""Networks shared by the agents: MLPs, the tanh-squashed Gaussian policy, and the two weight initialisations
(CleanRL's for PPO, SAC-AE / CURL's for pixel encoders)."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool = False, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers with `activation` (and LayerNorm before it when `layer_norm`) between them."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(activation())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def orthogonal_init(net: nn.Sequential, out_gain: float) -> nn.Sequential:
    """CleanRL's layer_init: orthogonal weights (gain sqrt 2, `out_gain` on the last layer), zero biases."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer in linears:
        nn.init.orthogonal_(layer.weight, out_gain if layer is linears[-1] else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return net


def orthogonal_init_(module: nn.Module) -> None:
    """SAC-AE / CURL initialisation, for `net.apply(orthogonal_init_)`: Linear weights orthogonal; Conv2d weights
    delta-orthogonal (Xiao et al. 2018: zero but for an orthogonal centre tap with ReLU gain, so each layer starts
    as a norm-preserving 1x1 map); zero biases. PyTorch's default init lets early critic updates drive whole conv
    layers below zero: the ReLUs die, every image maps to one feature and nothing learns again."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        height, width = module.weight.shape[2:]
        with torch.no_grad():
            module.weight.zero_()
            nn.init.orthogonal_(module.weight[:, :, height // 2, width // 2], nn.init.calculate_gain("relu"))
        nn.init.zeros_(module.bias)


class TanhGaussianPolicy(nn.Module):
    """SAC policy: a Gaussian over pre-squash actions, squashed by tanh into [-1, 1]^A."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, in_dim: int, action_dim: int, hidden: list[int], layer_norm: bool = False) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * action_dim, layer_norm)

    def forward(self, x: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_dim) -> action (B, A) in [-1, 1] and its log-probability (B,)."""
        mean, log_std = self.net(x).chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        pre_tanh = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(pre_tanh), self._squashed_log_density(mean, log_std, pre_tanh)

    @staticmethod
    def _squashed_log_density(mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
        """Gaussian log-density of `pre_tanh`, then the change of variables through tanh (numerically stable form)."""
        gauss = -0.5 * ((pre_tanh - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        squash = 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
        return (gauss - squash).sum(-1)

    def log_prob(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density (B,) of given actions (B, A) in [-1, 1] (e.g. a dataset's, for a behaviour-cloning term)."""
        mean, log_std = self.net(x).chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        return self._squashed_log_density(mean, log_std, torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6)))
