"""Preference-based reward learning: a Bradley–Terry model of which of two segments a teacher prefers.

Christiano et al. 2017 ("Deep RL from Human Preferences"); Lee et al. 2021 (PEBBLE, and B-Pref's scripted
teachers). A batch of segments is a dict {"obs", "action", "next_obs"} with leaves (N, T, ...); a segment's
return is the sum of r̂ over its T steps, and the model says P(a ≻ b) = σ(R̂_a − R̂_b).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium
import torch
import torch.nn.functional as F
from torch import nn

from rewards.base import (
    Batch,
    LearnedRewardModule,
    TensorObs,
    batch_to_tensors,
    flatten_obs,
    lead_ndim_of,
    num_transitions,
    obs_to_tensor,
)

Segments = dict[str, Any]
INPUTS = ("obs_action", "next_obs")


def bradley_terry_loss(return_a: torch.Tensor, return_b: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean of −[y log σ(R_a − R_b) + (1 − y) log σ(R_b − R_a)] over pairs (N,); soft y in [0, 1], 0.5 = tie."""
    return F.binary_cross_entropy_with_logits(return_a - return_b, label.to(return_a.dtype))


def preference_probability(return_a: torch.Tensor, return_b: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Boltzmann-rational P(a ≻ b) = σ(β (R_a − R_b)), (N,)."""
    return torch.sigmoid(beta * (return_a - return_b))


def preference_accuracy(return_a: torch.Tensor, return_b: torch.Tensor, label: torch.Tensor) -> float:
    """Fraction of the non-tied pairs (label ≠ 0.5) whose preferred segment has the higher return."""
    label = torch.as_tensor(label, device=return_a.device)
    decided = label != 0.5
    if not decided.any():
        return float("nan")
    predicted = (return_a > return_b)[decided]
    return (predicted == (label[decided] > 0.5)).float().mean().item()


class RewardMLP(nn.Module):
    """r̂: features `(*lead, in_dim)` -> rewards `(*lead,)`, an MLP of `num_layers` hidden layers."""

    def __init__(self, in_dim: int, hidden_dim: int, num_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.ReLU()]
        layers.append(nn.Linear(hidden_dim if num_layers else in_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class PreferenceRewardModel(LearnedRewardModule):
    """Ensemble of M reward MLPs r̂(s, a) (or r̂(s') with input="next_obs"), fit with the Bradley–Terry loss.

    As a reward module it returns the ensemble mean (B,); `reward_mean_std` also gives the spread. With dict
    observations, `obs_keys` picks the entries the MLPs see (default all), e.g. a goal env's
    ["achieved_goal", "desired_goal"], the inputs of its own `compute_reward`.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        input: str = "obs_action",
        ensemble_size: int = 3,
        hidden_dim: int = 256,
        num_layers: int = 3,
        lr: float = 3e-4,
        obs_keys: list[str] | None = None,
        env_id: str | None = None,
        observation_keys: list[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        # what it was trained on, saved with it: scoring another env's transitions is refused (rewards/from_config)
        self.env_id = env_id
        self.observation_keys = None if observation_keys is None else sorted(observation_keys)
        if input not in INPUTS:
            raise ValueError(f"input={input!r} is not one of {INPUTS}")
        self.obs_dim, self.action_dim, self.input = obs_dim, action_dim, input
        self.obs_keys = None if obs_keys is None else sorted(obs_keys)
        self.ensemble_size, self.hidden_dim, self.num_layers, self.lr = ensemble_size, hidden_dim, num_layers, lr
        in_dim = obs_dim + action_dim if input == "obs_action" else obs_dim
        self.members = nn.ModuleList(RewardMLP(in_dim, hidden_dim, num_layers) for _ in range(ensemble_size))
        self.to(device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    @classmethod
    def from_spaces(
        cls, observation_space: gymnasium.Space, action_space: gymnasium.Space, **kwargs: Any
    ) -> "PreferenceRewardModel":
        """Size the model for a (single-env) observation and action space; dict observations are flattened."""
        keys = kwargs.get("obs_keys")
        if isinstance(observation_space, gymnasium.spaces.Dict):
            kwargs.setdefault("observation_keys", sorted(observation_space.spaces))
        if keys is not None:
            if not isinstance(observation_space, gymnasium.spaces.Dict) or set(keys) - set(observation_space.spaces):
                raise ValueError(f"obs_keys={list(keys)} are not all keys of the observation space {observation_space}")
            observation_space = gymnasium.spaces.Dict({k: observation_space[k] for k in keys})
        return cls(gymnasium.spaces.flatdim(observation_space), gymnasium.spaces.flatdim(action_space), **kwargs)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored beside the weights by `save` (`from_file` rebuilds the model from them)."""
        return {
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "input": self.input,
            "ensemble_size": self.ensemble_size,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "lr": self.lr,
            "obs_keys": self.obs_keys,
            "env_id": self.env_id,
            "observation_keys": self.observation_keys,
        }

    @property
    def reads(self) -> frozenset[str]:
        """The batch keys the model reads: `obs` and `action` for r̂(s, a), `next_obs` for r̂(s')."""
        return frozenset({"obs", "action"} if self.input == "obs_action" else {"next_obs"})

    # --- rewards ---------------------------------------------------------------------------------------------
    def features(self, obs: TensorObs, action: torch.Tensor | None, next_obs: TensorObs | None) -> torch.Tensor:
        """MLP input (*lead, in_dim): [flat obs, action] or flat next_obs."""
        if self.obs_keys is not None:
            obs = None if obs is None else {k: obs[k] for k in self.obs_keys}
            next_obs = None if next_obs is None else {k: next_obs[k] for k in self.obs_keys}
        if self.input == "next_obs":
            return flatten_obs(next_obs, lead_ndim_of(next_obs, self.obs_dim))
        return torch.cat([flatten_obs(obs, action.ndim - 1), action], dim=-1)

    def member_rewards(self, obs: TensorObs, action: torch.Tensor | None, next_obs: TensorObs | None) -> torch.Tensor:
        """Every member's r̂, (M, *lead) for inputs with leading shape `lead` (e.g. (B,) or (N, T))."""
        x = self.features(obs, action, next_obs)
        return torch.stack([member(x) for member in self.members])

    def reward_mean_std(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean and standard deviation of r̂ over a transition batch, each (B,)."""
        batch = batch_to_tensors(batch, self.device)
        rewards = self.member_rewards(batch.get("obs"), batch.get("action"), batch.get("next_obs"))
        return rewards.mean(0), rewards.std(0, unbiased=False)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Ensemble-mean reward (B,)."""
        return self.reward_mean_std(batch)[0]

    @torch.no_grad()
    def relabel(self, obs: Any, action: Any, next_obs: Any, chunk_size: int = 65536) -> torch.Tensor:
        """Rewards (B,) for replay-buffer transitions (numpy or tensors), e.g. after each `fit`, in chunks."""
        inputs = {"obs": obs, "action": action, "next_obs": next_obs}
        batch = batch_to_tensors({k: v for k, v in inputs.items() if v is not None}, self.device)
        total = num_transitions(batch)
        chunks = [_take_rows(batch, slice(i, i + chunk_size)) for i in range(0, total, chunk_size)]
        return torch.cat([self.member_rewards(*chunk).mean(0) for chunk in chunks])

    def segment_returns(self, segments: Segments) -> torch.Tensor:
        """Every member's return Σ_t r̂ of each segment, (M, N), for segment leaves (N, T, ...)."""
        segments = batch_to_tensors(segments, self.device)
        return self.member_rewards(segments.get("obs"), segments.get("action"), segments.get("next_obs")).sum(-1)

    @torch.no_grad()
    def preference_disagreement(self, segments_a: Segments, segments_b: Segments) -> torch.Tensor:
        """Standard deviation over the members of P(a ≻ b), (N,): PEBBLE's disagreement score."""
        probability = preference_probability(self.segment_returns(segments_a), self.segment_returns(segments_b))
        return probability.std(0, unbiased=False)

    # --- learning --------------------------------------------------------------------------------------------
    def fit(
        self,
        segments_a: Segments,
        segments_b: Segments,
        labels: Any,
        epochs: int = 50,
        batch_size: int = 128,
    ) -> dict[str, float]:
        """Minimise the Bradley–Terry loss on N labelled pairs; each member sees its own shuffle of the pairs.

        Returns the last epoch's mean loss and the ensemble's accuracy on the training pairs.
        """
        a, b = batch_to_tensors(segments_a, self.device), batch_to_tensors(segments_b, self.device)
        labels = torch.as_tensor(labels, dtype=torch.float32, device=self.device)
        num_pairs = len(labels)
        self.train()
        for _ in range(epochs):
            orders = [torch.randperm(num_pairs, device=self.device) for _ in self.members]
            epoch_loss = 0.0
            for start in range(0, num_pairs, batch_size):
                loss = torch.zeros((), device=self.device)
                for member, order in zip(self.members, orders):
                    idx = order[start : start + batch_size]
                    return_a = member(self.features(*_take_rows(a, idx))).sum(-1)
                    return_b = member(self.features(*_take_rows(b, idx))).sum(-1)
                    loss = loss + bradley_terry_loss(return_a, return_b, labels[idx])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                epoch_loss += loss.item() * len(idx) / (num_pairs * self.ensemble_size)
        self.eval()
        with torch.no_grad():
            accuracy = preference_accuracy(self.segment_returns(a).mean(0), self.segment_returns(b).mean(0), labels)
        return {"loss": epoch_loss, "accuracy": accuracy}


def _take_rows(segments: Segments, idx: torch.Tensor | slice) -> tuple[Any, Any, Any]:
    """(obs, action, next_obs) of the rows `idx` of a batch or of segments (None where absent)."""
    def take(x: Any) -> Any:
        if x is None:
            return None
        return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]

    return take(segments.get("obs")), take(segments.get("action")), take(segments.get("next_obs"))


def select_pairs_by_disagreement(
    model: PreferenceRewardModel, segments_a: Segments, segments_b: Segments, k: int
) -> torch.Tensor:
    """Indices (k,) of the candidate pairs with the largest ensemble disagreement, most uncertain first."""
    disagreement = model.preference_disagreement(segments_a, segments_b)
    return torch.topk(disagreement, min(k, len(disagreement))).indices


@dataclass
class SyntheticLabeler:
    """Scripted teacher from a gold reward r(s, a, s') -> (B,) or from recorded rewards (B-Pref): Boltzmann
    choice, ties, random errors.

    beta=None is a perfectly rational teacher; ties (label 0.5) when |R_a − R_b| < tie_threshold; otherwise the
    label is flipped with probability error_rate.
    """

    gold_reward: Callable[[Any, Any, Any], Any] | None = None
    beta: float | None = None
    error_rate: float = 0.0
    tie_threshold: float = 0.0
    seed: int | None = None
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator()
        if self.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(self.seed)

    def segment_returns(self, segments: Segments) -> torch.Tensor:
        """Gold return Σ_t r of each segment, (N,), for segment leaves (N, T, ...); without a gold reward
        function, the sum of the rewards recorded in segments["reward"] (N, T) (e.g. the env's own)."""
        if self.gold_reward is None:
            if "reward" not in segments:
                raise ValueError("this labeler has no gold reward and the segments no 'reward'; use `label_returns`")
            return torch.as_tensor(segments["reward"], dtype=torch.float32).cpu().sum(-1)

        def flat(x: Any) -> Any:
            if x is None:
                return None
            if isinstance(x, dict):
                return {k: flat(v) for k, v in x.items()}
            x = obs_to_tensor(x, "cpu")
            return x.reshape(-1, *x.shape[2:])

        num, steps = _segment_shape(segments)
        obs, action, next_obs = (flat(segments.get(key)) for key in ("obs", "action", "next_obs"))
        reward = self.gold_reward(obs, action, next_obs)
        return torch.as_tensor(reward, dtype=torch.float32).reshape(num, steps).sum(-1)

    def label_returns(self, return_a: Any, return_b: Any) -> torch.Tensor:
        """Labels (N,) in {0, 0.5, 1} (1: a preferred) for gold returns (N,)."""
        gap = torch.as_tensor(return_a, dtype=torch.float32) - torch.as_tensor(return_b, dtype=torch.float32)
        if self.beta is None:
            label = (gap > 0).float() + 0.5 * (gap == 0).float()
        else:
            probability = torch.sigmoid(self.beta * gap)
            label = (torch.rand(gap.shape, generator=self.generator) < probability).float()
        flip = torch.rand(gap.shape, generator=self.generator) < self.error_rate
        label = torch.where(flip & (label != 0.5), 1.0 - label, label)
        return torch.where(gap.abs() < self.tie_threshold, torch.full_like(label, 0.5), label)

    def __call__(self, segments_a: Segments, segments_b: Segments) -> torch.Tensor:
        """Labels (N,) for N pairs of segments."""
        return self.label_returns(self.segment_returns(segments_a), self.segment_returns(segments_b))


def _segment_shape(segments: Segments) -> tuple[int, int]:
    leaf = segments.get("action", segments.get("next_obs", segments.get("obs")))
    if isinstance(leaf, dict):
        leaf = next(iter(leaf.values()))
    return leaf.shape[0], leaf.shape[1]
