"""Contrastive Preference Learning (Hejna et al. 2023): a policy learned straight from segment preferences, no RL.

Under the regret-based preference model the optimal advantage is alpha * log pi(a|s), so a segment's score is
S(sigma) = sum_t alpha * log pi(a_t|s_t) and the preferred segment sigma+ should win a two-way softmax against
sigma-. With the conservative bias lambda in (0, 1] on the dispreferred segment (the official code's
`biased_bce_with_logits`):

    L_CPL = -log [ exp S(sigma+) / (exp S(sigma+) + exp(lambda * S(sigma-))) ] = softplus(-(S(sigma+) - lambda S(sigma-)))

and for a soft label y = P(a preferred): y * L(a over b) + (1 - y) * L(b over a). Optional behaviour cloning:
`bc_steps` steps of pure BC on all segments first, then `bc_weight` * BC added to the loss. `sft=true` is the
baseline: BC on the preferred segment of each decided pair only, no preference term.

Offline: `scripts.train` runs `update()` on the dataset `agent.dataset` (from `scripts.make_preferences`) and
evaluates in the env; no env step is taken for learning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from agents.base import TensorObs, compiled_update
from agents.encoders import PixelEncoder, center_crop, default_crop_size, pixel_shape, pixels_of, random_crop
from agents.networks import mlp
from agents.policy_inputs import PolicyInputs, option_dim, score_options
from agents.preference_dataset import segment_obs


@dataclass
class CPLConfig:
    """Hyper-parameters of CPL; every field is a key of `scripts/conf/agent/cpl.yaml`."""

    dataset: str | None = None  # preference dataset .npz (scripts.make_preferences); read by the offline loop
    alpha: float = 0.1  # temperature: advantage = alpha * log pi
    bias: float = 0.5  # conservative lambda on the dispreferred segment's score
    bc_weight: float = 0.0  # BC loss weight after the warm-up
    bc_steps: int = 0  # gradient steps of pure BC (on all segments) before the CPL loss
    sft: bool = False  # baseline: BC on preferred segments only
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 3e-4
    batch_size: int = 64  # segment pairs per step
    init_log_std: float = 0.0  # Box actions: state-independent log std of the Gaussian
    norm_obs: bool = True  # standardise vector inputs with the dataset's mean / std
    feature_dim: int = 50  # pixel policies: PixelEncoder feature size
    crop_size: int | None = None  # pixel policies: None: 100 -> 84, proportional otherwise
    text_encoder: str | None = None  # text games: `minilm` (or a local sentence-transformers folder) scores options
    compile: bool = False  # torch.compile the update (losses, backward, optimizer step); not with text_encoder

    def __post_init__(self) -> None:
        if not 0.0 < self.bias <= 1.0:
            raise ValueError(f"bias (lambda) = {self.bias} must be in (0, 1]")
        if self.alpha <= 0:
            raise ValueError(f"alpha = {self.alpha} must be positive")


def cpl_loss(score_a: torch.Tensor, score_b: torch.Tensor, label: torch.Tensor, bias: float) -> torch.Tensor:
    """Mean biased two-way logistic loss over pairs: scores S = sum_t alpha log pi (P,), label = P(a preferred) (P,).

    y * softplus(-(S_a - bias S_b)) + (1 - y) * softplus(-(S_b - bias S_a)).
    """
    label = label.to(score_a.dtype)
    a_wins = F.softplus(-(score_a - bias * score_b))
    b_wins = F.softplus(-(score_b - bias * score_a))
    return (label * a_wins + (1 - label) * b_wins).mean()


def policy_keys(space: spaces.Dict) -> list[str]:
    """Dict entries a vector policy reads: GoalEnv `observation` + `desired_goal`, else every non-image Box, sorted
    (text entries are skipped: text bandits also offer numeric views such as `features`)."""
    if "observation" in space.spaces and "desired_goal" in space.spaces:
        return ["observation", "desired_goal"]
    keys = sorted(k for k, s in space.spaces.items() if isinstance(s, spaces.Box) and pixel_shape(s) is None)
    if not keys:
        raise ValueError(f"cpl found no numeric Box entry to read in {space}")
    return keys


class CPLPolicy(nn.Module):
    """pi(a|s) over vector inputs (B, D) or pixels (B, C, S, S): diagonal Gaussian (state-independent std) for Box
    actions, categorical for Discrete."""

    def __init__(self, in_dim: int, action_space: spaces.Space, cfg: CPLConfig, pixels: tuple[int, int] | None) -> None:
        super().__init__()
        self.encoder: nn.Module = nn.Identity()
        if pixels is not None:  # (channels, crop size)
            self.encoder = PixelEncoder(pixels[0], pixels[1], cfg.feature_dim)
            in_dim = cfg.feature_dim
        self.continuous = isinstance(action_space, spaces.Box)
        out_dim = action_space.shape[0] if self.continuous else int(action_space.n)
        self.net = mlp(in_dim, cfg.hidden, out_dim)
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((out_dim,), float(cfg.init_log_std)))

    def forward(self, x: torch.Tensor) -> Distribution:
        """Inputs with leading shape (B,) -> pi(.|x) with batch shape (B,)."""
        out = self.net(self.encoder(x))
        if self.continuous:
            return Independent(Normal(out, self.log_std.clamp(-5.0, 2.0).exp().expand_as(out)), 1)
        return Categorical(logits=out)


class CPLTextPolicy(nn.Module):
    """pi(option|s) for text games: every option line scored against [context embedding, numeric views] by one
    MLP (agents/policy_inputs.py), categorical over the K options."""

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], cfg: CPLConfig) -> None:
        super().__init__()
        context_dim = sum(shapes[name][0][0] for name in ("vector", "context") if name in shapes)
        self.scorer = mlp(context_dim + option_dim(shapes), cfg.hidden, 1)
        self.continuous = False

    def forward(self, inputs: dict[str, torch.Tensor]) -> Distribution:
        """Inputs (B, ...) -> pi(.|s) with batch shape (B,)."""
        features = torch.cat([inputs[name] for name in ("vector", "context") if name in inputs], dim=1)
        return Categorical(logits=score_options(self.scorer, features, inputs))


class CPLAgent:
    """CPL (or its SFT baseline) for Box, Dict-of-Box, pixel or (with `text_encoder`) text-game observations and
    Box or Discrete actions."""

    loop = "offline"  # the run engine (scripts/engine.py) drives it with DatasetSource: dataset updates + evaluation episodes
    dataset_format = "preferences"  # agents.preference_dataset files (scripts.make_preferences)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        cfg: CPLConfig,
        num_envs: int,
        max_episode_steps: int,
        device: torch.device,
    ) -> None:
        if not isinstance(action_space, (spaces.Box, spaces.Discrete)):
            raise ValueError(f"cpl needs Box or Discrete actions, got {action_space}")
        self.cfg, self.device = cfg, device
        image = pixel_shape(observation_space)
        self.keys: list[str] | None = None
        self.text_inputs: PolicyInputs | None = None
        if cfg.text_encoder is not None:
            self.text_inputs = PolicyInputs(observation_space, action_space, cfg.norm_obs, 10.0, cfg.text_encoder).to(device)
            in_dim, pixels = 0, None
        elif image is not None:
            self.crop_size = cfg.crop_size or default_crop_size(image[1])
            in_dim, pixels = 0, (image[0], self.crop_size)
        else:
            if isinstance(observation_space, spaces.Dict):
                self.keys = policy_keys(observation_space)
                in_dim = sum(int(np.prod(observation_space[k].shape)) for k in self.keys)
            elif isinstance(observation_space, spaces.Box):
                in_dim = int(np.prod(observation_space.shape))
            else:
                raise ValueError(f"cpl needs Box, Dict or pixel observations, got {observation_space}")
            pixels = None
        self.pixels = pixels is not None
        if self.text_inputs is not None:
            self.policy: nn.Module = CPLTextPolicy(self.text_inputs.shapes, cfg).to(device)
        else:
            self.policy = CPLPolicy(in_dim, action_space, cfg, pixels).to(device)
        if isinstance(action_space, spaces.Box):
            self.action_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=device)
            self.action_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=device)
        self.obs_mean = torch.zeros(in_dim, device=device)
        self.obs_std = torch.ones(in_dim, device=device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, fused=True)
        self.data: dict[str, torch.Tensor] | None = None
        if cfg.compile and cfg.text_encoder is not None:
            raise ValueError("cpl compile=true cannot trace the text encoder's string inputs; use compile=false with text_encoder")
        self.update_step = compiled_update(self.update_on, cfg.compile, self.device)  # on a given batch
        self.train_step = compiled_update(self.sample_and_update, cfg.compile, self.device)  # draw + update: one graph
        self.num_updates = 0

    # --- inputs ------------------------------------------------------------------------------------------
    def policy_input(self, obs: TensorObs, lead_dims: int, train: bool = False) -> torch.Tensor:
        """Observations with `lead_dims` leading dims -> policy inputs (prod(lead), ...): normalised vectors, or
        crops of images (random while training, centre when acting); text policies: their input dict."""
        if self.text_inputs is not None:
            if lead_dims == 1:  # acting on env observations
                return self.text_inputs(obs)
            return {name: x.flatten(0, lead_dims - 1) for name, x in obs.items()}  # dataset inputs (set_dataset)
        if self.pixels:
            images = pixels_of(obs).flatten(0, lead_dims - 1)
            return random_crop(images, self.crop_size)[0] if train else center_crop(images, self.crop_size)
        if self.keys is None:
            x = obs.flatten(lead_dims)
        else:
            x = torch.cat([obs[k].flatten(lead_dims) for k in self.keys], dim=-1)
        x = x.flatten(0, lead_dims - 1)
        return (x - self.obs_mean) / self.obs_std if self.cfg.norm_obs else x

    # --- data --------------------------------------------------------------------------------------------
    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Move a preference dataset (agents.preference_dataset layout) to the device; fit the input statistics."""
        if self.text_inputs is not None:
            return self.set_text_dataset(data)
        def to_tensor(x: Any) -> Any:
            if isinstance(x, dict):
                missing = [k for k in (self.keys or []) if k not in x]
                if missing:
                    raise ValueError(f"the preference dataset lacks observation entries {missing}")
                return {k: to_tensor(v) for k, v in x.items() if self.keys is None or k in self.keys or k == "pixels"}
            dtype = torch.uint8 if x.dtype == np.uint8 and self.pixels else torch.float32
            return torch.as_tensor(x, dtype=dtype, device=self.device)

        self.data = {
            "obs_a": to_tensor(segment_obs(data, "a")),
            "obs_b": to_tensor(segment_obs(data, "b")),
            "action_a": to_tensor(data["action_a"]),
            "action_b": to_tensor(data["action_b"]),
            "label": torch.as_tensor(data["label"], dtype=torch.float32, device=self.device),
        }
        if not self.policy.continuous:
            self.data["action_a"], self.data["action_b"] = self.data["action_a"].long(), self.data["action_b"].long()
        if not self.pixels and self.cfg.norm_obs:
            x = torch.cat([self.policy_input_raw(self.data["obs_a"]), self.policy_input_raw(self.data["obs_b"])])
            self.obs_mean, self.obs_std = x.mean(0), x.std(0) + 1e-6

    def set_text_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Text policies: embed every segment step's texts once (cached per distinct text), fit the statistics of
        the numeric views on both sides, and keep the normalised inputs (P, L, ...) on the device."""
        assert self.text_inputs is not None
        raw = {}
        for side in ("a", "b"):
            obs = segment_obs(data, side)
            if not isinstance(obs, dict) or "text" not in obs:
                raise ValueError("cpl with text_encoder needs text observations in the preference dataset (obs_a.text, "
                                 "obs_a.options); record the rollouts from a text game")
            p, length = obs["text"].shape[:2]
            flat: dict[str, Any] = {k: [str(t) for t in v.reshape(-1)] if v.dtype.kind in "OUS"
                                    else torch.as_tensor(v, dtype=torch.float32, device=self.device).flatten(0, 1)
                                    for k, v in obs.items()}
            raw[side] = {name: x.view(p, length, *x.shape[1:]) for name, x in self.text_inputs.raw(flat).items()}
        for side in ("a", "b"):
            self.text_inputs.update_stats(raw[side])
        self.data = {"obs_a": self.text_inputs.normalize(raw["a"]), "obs_b": self.text_inputs.normalize(raw["b"]),
                     "action_a": torch.as_tensor(data["action_a"], device=self.device).long(),
                     "action_b": torch.as_tensor(data["action_b"], device=self.device).long(),
                     "label": torch.as_tensor(data["label"], dtype=torch.float32, device=self.device)}

    def policy_input_raw(self, obs: TensorObs) -> torch.Tensor:
        """Un-normalised vector inputs (P * L, D) of segment observations with leaves (P, L, ...)."""
        if self.keys is None:
            return obs.flatten(2).flatten(0, 1)
        return torch.cat([obs[k].flatten(2) for k in self.keys], dim=-1).flatten(0, 1)

    @property
    def num_pairs(self) -> int:
        return 0 if self.data is None else int(self.data["label"].shape[0])

    # --- acting ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs leaves (N, ...) -> actions (N, A) float (mean clipped to the bounds when deterministic) or (N,) long."""
        pi = self.policy(self.policy_input(obs, 1))
        action = pi.mode if deterministic else pi.sample()
        if self.policy.continuous:
            action = torch.max(torch.min(action, self.action_high), self.action_low)
        return action

    def observe(self, *args: Any) -> None:
        """Offline: env transitions are not learned from."""

    # --- learning ----------------------------------------------------------------------------------------
    def segment_log_probs(self, obs: TensorObs, action: torch.Tensor) -> torch.Tensor:
        """log pi(a_t|s_t) (P, L) for segment leaves (P, L, ...)."""
        p, length = action.shape[:2]
        x = self.policy_input(obs, 2, train=True)
        return self.policy(x).log_prob(action.flatten(0, 1)).reshape(p, length)

    def update(self) -> dict[str, torch.Tensor]:
        """One gradient step on `batch_size` random pairs of the dataset."""
        if self.data is None:
            raise RuntimeError("cpl has no dataset: call set_dataset (scripts.train does, from agent.dataset)")
        return self.train_step()

    def sample_and_update(self) -> dict[str, torch.Tensor]:
        """One step on `batch_size` pairs drawn from the dataset (with compile=true the draw is inside the compiled
        step)."""
        idx = torch.randint(0, self.num_pairs, (self.cfg.batch_size,), device=self.device)
        take = lambda x: {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]  # noqa: E731
        return self.update_on({k: take(v) for k, v in self.data.items()})

    def update_on(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One step on pairs {obs_a, action_a, obs_b, action_b: (P, L, ...), label (P,)}."""
        cfg = self.cfg
        label = batch["label"]
        if cfg.sft:
            # BC on the preferred segment of each decided pair (ties carry no preference and are skipped)
            prefer_a = label > 0.5
            pick = lambda a, b: torch.where(prefer_a.view(-1, *[1] * (a.dim() - 1)), a, b)  # noqa: E731
            obs = ({k: pick(batch["obs_a"][k], batch["obs_b"][k]) for k in batch["obs_a"]}
                   if isinstance(batch["obs_a"], dict) else pick(batch["obs_a"], batch["obs_b"]))
            log_prob = self.segment_log_probs(obs, pick(batch["action_a"], batch["action_b"]))
            decided = (label != 0.5).float()
            loss = -(log_prob.mean(1) * decided).sum() / decided.sum().clamp_min(1.0)
            metrics = {"bc_loss": loss.detach()}
        else:
            both_obs = ({k: torch.cat([batch["obs_a"][k], batch["obs_b"][k]]) for k in batch["obs_a"]}
                        if isinstance(batch["obs_a"], dict) else torch.cat([batch["obs_a"], batch["obs_b"]]))
            log_prob_a, log_prob_b = self.segment_log_probs(
                both_obs, torch.cat([batch["action_a"], batch["action_b"]])).chunk(2)
            score_a, score_b = cfg.alpha * log_prob_a.sum(1), cfg.alpha * log_prob_b.sum(1)
            bc = -(log_prob_a.mean() + log_prob_b.mean()) / 2
            preference = cpl_loss(score_a, score_b, label, cfg.bias)
            loss = bc if self.num_updates < cfg.bc_steps else preference + cfg.bc_weight * bc
            with torch.no_grad():
                decided = label != 0.5
                correct = ((score_a > score_b) == (label > 0.5))[decided].float()
            metrics = {"cpl_loss": preference.detach(), "bc_loss": bc.detach(),
                       "preference_accuracy": correct.mean() if correct.numel() else torch.tensor(float("nan"))}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.num_updates += 1
        if self.policy.continuous:
            metrics["action_std"] = self.policy.log_std.detach().exp().mean()
        return metrics

    # --- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Policy, optimizer, input statistics and the step count; the dataset is not saved."""
        state = {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "obs_mean": self.obs_mean, "obs_std": self.obs_std, "num_updates": self.num_updates}
        if self.text_inputs is not None:
            state["text_inputs"] = self.text_inputs.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_mean, self.obs_std = state["obs_mean"].to(self.device), state["obs_std"].to(self.device)
        self.num_updates = int(state["num_updates"])
        if self.text_inputs is not None:
            self.text_inputs.load_state_dict(state["text_inputs"])
