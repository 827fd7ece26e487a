"""CURL: Contrastive Unsupervised Representations for RL (Laskin, Srinivas & Abbeel 2020) — SAC from pixels.

A query encoder (the critic's) maps a random crop of a frame stack to a 50-d feature; a momentum key encoder (the
target critic's, an EMA of it) maps a second crop of the same stack. CURL's InfoNCE classifies, for each query
q_i, its own key among the batch's keys with bilinear logits q W k^T (row max subtracted); the loss trains the
query encoder and W. SAC runs on the query features: the critic's loss also trains the encoder, the actor reads
the critic's conv features detached, through its own linear head (as CURL's code ties only the conv layers).

Per gradient step (CURL's order): critic; then, every `actor_update_every` steps, actor and temperature, and
the contrastive step (one backward pass for these three: their parameters are disjoint); every
`target_update_every` steps the EMA of the target critic (tau 0.01) and key encoder (tau 0.05). Acting and
evaluation use the centre crop. `compile=True` runs the step through torch.compile (one graph per schedule variant).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from agents.base import RewardFn, TensorObs, compiled_update
from agents.encoders import (
    PIXEL_KEY,
    FeatureHead,
    PixelEncoder,
    center_crop,
    default_crop_size,
    pixel_shape,
    pixels_of,
    random_crop,
)
from agents.networks import TanhGaussianPolicy, mlp, orthogonal_init_
from agents.pixel_buffer import PixelReplayBuffer


@dataclass
class CURLConfig:
    """Hyper-parameters of CURL; every field is a key of `scripts/conf/agent/curl.yaml`. Defaults: the paper's
    DMC settings (Laskin et al. 2020, Table 3; lr 2e-4 for cheetah)."""

    feature_dim: int = 50
    num_filters: int = 32
    num_conv_layers: int = 4
    crop_size: int | None = None  # None: 100 -> 84, proportional for other frame sizes
    hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    batch_size: int = 512
    lr: float = 1e-3  # actor, critic, encoder and W
    alpha_lr: float = 1e-4
    alpha_beta1: float = 0.5
    init_alpha: float = 0.1
    target_entropy: float | None = None  # None: -action_dim
    discount: float = 0.99
    critic_tau: float = 0.01
    encoder_tau: float = 0.05
    actor_update_every: int = 2
    target_update_every: int = 2
    buffer_size: int = 100_000  # transitions (each frame stored once: ~3.1 GB at 100x100; a run caps it at its length)
    buffer_device: str | None = None  # None: the training device; "cpu" keeps a big buffer in host memory
    warmup_steps: int = 1_000  # env steps with uniform random actions before learning starts
    updates_per_step: float = 1.0  # gradient steps per env step (per copy); CURL: 1
    channels_last: bool = True  # NHWC convolutions: faster with oneDNN and cuDNN, same numbers up to rounding
    conv_precision: str = "fp32"  # "bf16": convolutions under bfloat16 autocast (CPU: 1.38x NHWC fp32's updates/s)
    compile: bool = False  # torch.compile the update (both of its variants: with and without the actor step)

    def __post_init__(self) -> None:
        if self.updates_per_step <= 0:
            raise ValueError(f"updates_per_step={self.updates_per_step} must be positive")


def curl_logits(queries: torch.Tensor, keys: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Bilinear logits q_i W k_j^T minus each row's max: queries, keys (B, D), W (D, D) -> (B, B)."""
    logits = queries @ w @ keys.T
    return logits - logits.max(dim=1, keepdim=True).values.detach()


def curl_loss(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with the positives on the diagonal (labels = arange(B)); returns the loss and the accuracy."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    accuracy = (logits.detach().argmax(1) == labels).float().mean()
    return F.cross_entropy(logits, labels), accuracy


class Critic(nn.Module):
    """Pixel encoder + two Q heads: images (B, C, S, S), actions (B, A) -> Q1, Q2 (B,)."""

    def __init__(self, in_channels: int, crop_size: int, action_dim: int, cfg: CURLConfig) -> None:
        super().__init__()
        self.encoder = PixelEncoder(in_channels, crop_size, cfg.feature_dim, cfg.num_conv_layers, cfg.num_filters,
                                    cfg.channels_last, cfg.conv_precision)
        self.q1 = mlp(cfg.feature_dim + action_dim, cfg.hidden, 1)
        self.q2 = mlp(cfg.feature_dim + action_dim, cfg.hidden, 1)

    def q_values(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, F), action (B, A) -> Q1, Q2 (B,)."""
        x = torch.cat([features, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class Actor(nn.Module):
    """Own linear head over conv features (B, D_conv) -> tanh-Gaussian action (B, A) in [-1, 1] and log-prob."""

    def __init__(self, conv_dim: int, action_dim: int, cfg: CURLConfig) -> None:
        super().__init__()
        self.head = FeatureHead(conv_dim, cfg.feature_dim)
        self.policy = TanhGaussianPolicy(cfg.feature_dim, action_dim, cfg.hidden)

    def forward(self, conv_features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv features (B, D_conv) -> actions (B, A) in [-1, 1] and their log-probabilities (B,)."""
        return self.policy(self.head(conv_features), deterministic)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, parameter by parameter."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class CURLAgent:
    """SAC + CURL for uint8 (C, H, W) frame-stack observations (or dicts with a `pixels` entry) and Box actions."""

    loop = "online"  # the run engine steps the env for it (scripts/engine.py EnvSource)
    dataset_format = None  # online only

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        cfg: CURLConfig,
        num_envs: int,
        max_episode_steps: int,
        device: torch.device,
    ) -> None:
        shape = pixel_shape(observation_space)
        if shape is None:
            raise ValueError(f"curl needs uint8 (C, H, W) image observations or a dict with 'pixels', got {observation_space}")
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"curl needs 1-D Box actions, got {action_space}")
        self.cfg, self.device, self.num_envs = cfg, device, num_envs
        self.dict_obs = isinstance(observation_space, spaces.Dict)
        channels, height, width = shape
        self.crop_size = cfg.crop_size or default_crop_size(min(height, width))
        self.action_dim = action_space.shape[0]
        self.action_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device)
        self.action_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device)

        self.critic = Critic(channels, self.crop_size, self.action_dim, cfg).apply(orthogonal_init_).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)  # its encoder is the key encoder
        self.actor = Actor(self.critic.encoder.conv.out_dim, self.action_dim, cfg).apply(orthogonal_init_).to(device)
        self.w = nn.Parameter(torch.rand(cfg.feature_dim, cfg.feature_dim, device=device))
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=device, requires_grad=True)
        self.target_entropy = -float(self.action_dim) if cfg.target_entropy is None else cfg.target_entropy

        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta1, 0.999), fused=True)
        self.curl_opt = torch.optim.Adam([*self.critic.encoder.parameters(), self.w], lr=cfg.lr, fused=True)

        buffer_device = torch.device(cfg.buffer_device) if cfg.buffer_device else device
        self.buffer = PixelReplayBuffer(shape, self.action_dim, cfg.buffer_size, buffer_device, num_envs, max_episode_steps)
        self.env_steps = 0
        self.num_updates = 0
        self.update_step = self.update_on  # on a given batch; its step counters stay outside the compiled region
        self.step_on = compiled_update(self.step, cfg.compile, device)  # one graph per (actor, target) variant
        self.update_credit = 0.0  # fractional gradient steps carried between vector steps

    # --- acting ------------------------------------------------------------------------------------------
    def _to_unit(self, action: torch.Tensor) -> torch.Tensor:
        return (action - self.action_low) / (self.action_high - self.action_low) * 2 - 1

    def _from_unit(self, action: torch.Tensor) -> torch.Tensor:
        return self.action_low + (action + 1) * 0.5 * (self.action_high - self.action_low)

    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """Frame stacks (N, C, H, W) -> actions (N, A) from the centre crop; uniform random during warm-up."""
        images = pixels_of(obs)
        if not deterministic and self.env_steps < self.cfg.warmup_steps:
            return self._from_unit(torch.rand(images.shape[0], self.action_dim, device=self.device) * 2 - 1)
        conv = self.critic.encoder.conv(center_crop(images.to(self.device), self.crop_size))
        action, _ = self.actor(conv, deterministic)
        return self._from_unit(action)

    def observe(self, obs: TensorObs, action: torch.Tensor, reward: torch.Tensor, next_obs: TensorObs,
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one vector step as uint8 (a time-limit truncation still bootstraps)."""
        to_uint8 = lambda x: pixels_of(x).to(self.buffer.device).round().to(torch.uint8)  # noqa: E731
        self.buffer.add(to_uint8(obs), self._to_unit(action.to(self.device)), reward, to_uint8(next_obs), terminated,
                        episode_end=terminated | truncated)
        self.env_steps += self.num_envs

    # --- reward relabelling (agents.base.RelabelsRewards) -------------------------------------------------
    def check_reward_inputs(self, obs_keys: list[str] | None) -> None:
        """The buffer keeps frame stacks and actions only: with dict observations the reward model must read
        just the pixels."""
        if self.dict_obs and list(obs_keys or []) != [PIXEL_KEY]:
            raise ValueError(f"agent=curl stores only the '{PIXEL_KEY}' entry of its dict observations, so a reward "
                             f"model it relabels with must read just that: set reward.obs_keys=[{PIXEL_KEY}] "
                             f"(got {obs_keys})")

    def relabel_rewards(self, reward_fn: RewardFn) -> None:
        """PEBBLE: every stored reward recomputed by the current reward model, on the buffer's device."""
        view = (lambda x: {PIXEL_KEY: x}) if self.dict_obs else (lambda x: x)  # noqa: E731  the env's obs form
        self.buffer.relabel(lambda obs, action, next_obs: reward_fn(view(obs), self._from_unit(action), view(next_obs)))

    # --- learning ----------------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        """`updates_per_step` gradient steps per env step once `warmup_steps` env steps are stored; else {}."""
        if self.env_steps < self.cfg.warmup_steps or len(self.buffer) == 0:  # empty after a resume
            return {}
        self.update_credit += self.cfg.updates_per_step * self.num_envs
        metrics: dict[str, torch.Tensor] = {}
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = {k: v.to(self.device, non_blocking=True) for k, v in self.buffer.sample(self.cfg.batch_size).items()}
            metrics = self.update_step(batch)
        return metrics

    def update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One CURL step on a batch {obs, next_obs (B, C, H, W) uint8, action (B, A) in [-1, 1], reward, not_done};
        the schedule (actor every `actor_update_every`, EMA every `target_update_every` steps) is decided here, on
        the host, so a compiled `step` sees two flags and not a step count that changes every call."""
        update_actor = self.num_updates % self.cfg.actor_update_every == 0
        update_target = self.num_updates % self.cfg.target_update_every == 0
        metrics = self.step_on(batch, update_actor, update_target)
        self.num_updates += 1
        return metrics

    def step(self, batch: dict[str, torch.Tensor], update_actor: bool, update_target: bool) -> dict[str, torch.Tensor]:
        """The gradient step itself: critic; then actor + temperature (if `update_actor`) and the contrastive loss
        through one backward pass (their parameters are disjoint: the actor reads the conv features detached, the
        temperature loss only log alpha, CURL the encoder and W, so each gets exactly its own loss's gradient, and
        a compiled region's outputs are never backpropagated twice); the EMA targets if `update_target`."""
        cfg = self.cfg
        obs, _ = random_crop(batch["obs"], self.crop_size)  # the anchor crop: critic input and CURL query
        positive, _ = random_crop(batch["obs"], self.crop_size)  # a second crop of the same stacks: CURL key
        next_obs, _ = random_crop(batch["next_obs"], self.crop_size)
        metrics: dict[str, torch.Tensor] = {}

        # critic (trains the query encoder too)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = self.actor(self.critic.encoder.conv(next_obs))
            target_q1, target_q2 = self.critic_target.q_values(self.critic_target.encoder(next_obs), next_action)
            target_v = torch.min(target_q1, target_q2) - alpha * next_log_prob
            target = batch["reward"] + batch["not_done"] * cfg.discount * target_v
        q1, q2 = self.critic.q_values(self.critic.encoder(obs), batch["action"])
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        metrics.update(critic_loss=critic_loss.detach(), q=q1.detach().mean())

        # conv features with the updated encoder: the actor reads them detached, CURL trains through them
        conv = self.critic.encoder.conv(obs)
        queries = self.critic.encoder.head(conv)  # contrastive step: queries from the anchor crops, keys from
        with torch.no_grad():                     # the momentum encoder on the second crops
            keys = self.critic_target.encoder(positive)
        loss, accuracy = curl_loss(curl_logits(queries, keys, self.w))
        metrics.update(curl_loss=loss.detach(), curl_accuracy=accuracy)
        optimizers = [self.curl_opt]
        if update_actor:
            action, log_prob = self.actor(conv.detach())
            pi_q1, pi_q2 = self.critic.q_values(queries.detach(), action)
            actor_loss = (alpha * log_prob - torch.min(pi_q1, pi_q2)).mean()
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            loss = loss + actor_loss + alpha_loss
            optimizers += [self.actor_opt, self.alpha_opt]
            metrics.update(actor_loss=actor_loss.detach(), alpha=alpha, entropy=-log_prob.detach().mean())
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()

        if update_target:
            soft_update(self.critic_target.q1, self.critic.q1, cfg.critic_tau)
            soft_update(self.critic_target.q2, self.critic.q2, cfg.critic_tau)
            soft_update(self.critic_target.encoder, self.critic.encoder, cfg.encoder_tau)
        return metrics

    # --- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, W, temperature, optimizers and counters; the replay buffer is not saved."""
        return {
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor": self.actor.state_dict(),
            "w": self.w.detach(),
            "log_alpha": self.log_alpha.detach(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "curl_opt": self.curl_opt.state_dict(),
            "env_steps": self.env_steps,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.w.copy_(state["w"])
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("critic_opt", "actor_opt", "alpha_opt", "curl_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.env_steps, self.num_updates = int(state["env_steps"]), int(state["num_updates"])
