"""Networks shared by the agents: MLPs and the tanh-squashed Gaussian policy."""

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
        action = torch.tanh(pre_tanh)
        # Gaussian log-density, then the change of variables through tanh (numerically stable form).
        gauss = -0.5 * ((pre_tanh - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        squash = 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
        return action, (gauss - squash).sum(-1)
