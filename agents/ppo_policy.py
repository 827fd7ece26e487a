"""PPO's actor-critic networks over the inputs of `agents.policy_inputs`: a CNN (CURL's encoder) on pixels,
concatenated with the vector (and the context embedding); an MLP actor and an MLP critic on top. A text policy's
actor scores every candidate option (`score_options`).
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces
from torch import nn

from agents.encoders import PixelEncoder
from agents.networks import mlp, orthogonal_init
from agents.policy_inputs import option_dim, score_options


# --- networks -----------------------------------------------------------------------------------------------
class Tanh(nn.Module):
    """tanh(x) computed as 2 sigmoid(2x) - 1: the same function (to float rounding), but torch's CPU tanh kernel
    is several times slower than sigmoid and was the largest single cost of an update."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(2 * x) * 2 - 1


class ActorCritic(nn.Module):
    """Separate tanh MLPs for the actor and the critic over shared features of the inputs.

    Features: [CNN(pixels), vector, context] (whichever exist); the CNN is shared by actor and critic, as in
    CleanRL's Atari PPO. Box actions: diagonal Gaussian with a state-independent log-std; Discrete: categorical,
    whose logits come from the actor MLP or, for text policies, from scoring each option.
    The log-probability, entropy and sampling are written in closed form: on CPU, building `torch.distributions`
    objects (with their argument checks) per minibatch cost more than the small networks themselves.
    """

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], action_space: spaces.Space,
                 hidden: list[int], init_log_std: float, feature_dim: int = 50, num_conv_layers: int = 4,
                 num_filters: int = 32) -> None:
        super().__init__()
        self.continuous = isinstance(action_space, spaces.Box)
        out_dim = action_space.shape[0] if self.continuous else int(action_space.n)
        self.pixel_encoder: PixelEncoder | None = None
        feature_dim_total = 0
        if "pixels" in shapes:
            (channels, height, width), _ = shapes["pixels"]
            if height != width:
                raise ValueError(f"ppo's pixel encoder needs square frames, got {height}x{width}")
            self.pixel_encoder = PixelEncoder(channels, height, feature_dim, num_conv_layers, num_filters)
            feature_dim_total += feature_dim
        for name in ("vector", "context"):
            if name in shapes:
                feature_dim_total += shapes[name][0][0]
        self.scores_options = "options" in shapes
        self.critic = orthogonal_init(mlp(feature_dim_total, hidden, 1, activation=Tanh), 1.0)
        if self.scores_options:
            self.actor = orthogonal_init(mlp(feature_dim_total + option_dim(shapes), hidden, 1, activation=Tanh), 0.01)
        else:
            self.actor = orthogonal_init(mlp(feature_dim_total, hidden, out_dim, activation=Tanh), 0.01)
        if self.continuous:
            self.actor_log_std = nn.Parameter(torch.full((out_dim,), float(init_log_std)))

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs with leading shape (B,) -> shared features (B, F)."""
        parts = []
        if self.pixel_encoder is not None:
            parts.append(self.pixel_encoder(inputs["pixels"]))
        parts += [inputs[name] for name in ("vector", "context") if name in inputs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def actor_out(self, features: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Gaussian means (B, A) or logits (B, K); a text policy scores option k from [features, option k]."""
        return score_options(self.actor, features, inputs) if self.scores_options else self.actor(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, ...) -> actor output (B, A) (Gaussian means or categorical logits) and V (B,)."""
        features = self.features(inputs)
        return self.actor_out(features, inputs), self.critic(features).squeeze(-1)

    def value(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs (B, ...) -> V (B,)."""
        return self.critic(self.features(inputs)).squeeze(-1)

    def policy_out(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs (B, ...) -> actor output only (acting)."""
        return self.actor_out(self.features(inputs), inputs)

    def log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor output (B, A) and actions (B, A) float or (B,) long -> log pi(a|x) (B,) and the mean entropy ()."""
        if self.continuous:
            log_std = self.actor_log_std
            # N(mean, exp(log_std)^2) summed over action dims; the entropy does not depend on x.
            log_norm = log_std.sum() + 0.5 * out.shape[-1] * math.log(2 * math.pi)
            log_prob = -0.5 * ((action - out) * (-log_std).exp()).pow(2).sum(-1) - log_norm
            return log_prob, log_norm + 0.5 * out.shape[-1]
        log_p = out.log_softmax(-1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean()
        return log_p.gather(-1, action.unsqueeze(-1)).squeeze(-1), entropy

    def sample(self, out: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actor output (B, A) -> actions (B, A) float or (B,) long; the mean / argmax when deterministic."""
        if self.continuous:
            return out if deterministic else out + self.actor_log_std.exp() * torch.randn_like(out)
        if deterministic:
            return out.argmax(-1)
        return torch.multinomial(out.softmax(-1), 1).squeeze(-1)
