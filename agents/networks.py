"""Networks shared by the agents: MLPs, residual MLPs for depth (Wang et al. 2025), the tanh-squashed Gaussian
policy, and the two weight initialisations (CleanRL's for PPO, SAC-AE / CURL's for pixel encoders)."""

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


class ResidualBlock(nn.Module):
    """Four (Linear -> LayerNorm -> Swish) layers of one width with an identity skip around them: the block of
    "1000 Layer Networks for Self-Supervised RL" (Wang et al. 2025), which keeps gradients alive through depth."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(width, width), nn.LayerNorm(width), nn.SiLU())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, width) -> (B, width)."""
        return x + self.layers(x)


def residual_mlp(in_dim: int, width: int, depth: int, out_dim: int) -> nn.Sequential:
    """Wang et al. 2025's network: Linear -> LayerNorm -> Swish into `width`, `depth` // 4 residual blocks, a Linear
    out. `depth` (4, 8, 16, ...) counts the layers inside the blocks, as the paper does. Weights keep PyTorch's
    default (LeCun-uniform, the paper's variance_scaling(1/3, fan_in, uniform)); biases start at zero as there."""
    if depth < 4 or depth % 4:
        raise ValueError(f"depth={depth} must be a positive multiple of 4 (residual blocks of four layers)")
    net = nn.Sequential(nn.Linear(in_dim, width), nn.LayerNorm(width), nn.SiLU(),
                        *[ResidualBlock(width) for _ in range(depth // 4)], nn.Linear(width, out_dim))
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    return net


def encoder(in_dim: int, out_dim: int, hidden: list[int], layer_norm: bool, depth: int = 0, width: int = 256) -> nn.Sequential:
    """The flat `mlp` over `hidden` when `depth` is 0, else `residual_mlp(in_dim, width, depth, out_dim)`."""
    return residual_mlp(in_dim, width, depth, out_dim) if depth else mlp(in_dim, hidden, out_dim, layer_norm)


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

    def __init__(self, in_dim: int, action_dim: int, hidden: list[int], layer_norm: bool = False, depth: int = 0,
                 width: int = 256) -> None:
        super().__init__()
        self.net = encoder(in_dim, 2 * action_dim, hidden, layer_norm, depth, width)  # depth > 0: residual

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
