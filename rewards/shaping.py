"""Potential-based reward shaping (Ng, Harada & Russell 1999): F(s, a, s') = γ Φ(s') − Φ(s).

Adding F to any reward leaves the optimal policies unchanged. A potential Φ maps a batch of states to (B,); it
sees a state view `{"obs", "text", "frames"}` (whichever it lists in its `needs`, default obs), built from a
transition batch either for s (obs, prev_text, prev_frames) or for s' (next_obs, text, frames).
"""

from __future__ import annotations

from typing import Callable

import torch

from rewards.base import Batch, RewardModule, batch_to_tensors

Potential = Callable[[Batch], torch.Tensor]

# state-view key -> (batch key for s, batch key for s')
STATE_VIEW_KEYS = {"obs": ("obs", "next_obs"), "text": ("prev_text", "text"), "frames": ("prev_frames", "frames")}


def potential_based_shaping(
    potential: torch.Tensor, next_potential: torch.Tensor, gamma: float, terminated: torch.Tensor | None = None
) -> torch.Tensor:
    """F = γ Φ(s') − Φ(s) from Φ(s), Φ(s') (B,); Φ(s') counts as 0 where s' is terminal (not on truncation)."""
    if terminated is not None:
        next_potential = torch.where(terminated, torch.zeros_like(next_potential), next_potential)
    return gamma * next_potential - potential


def state_view(batch: Batch, keys: frozenset[str], next_state: bool) -> Batch:
    """The states s (next_state=False) or s' (True) of a transition batch, as `{"obs", "text", "frames"}`."""
    return {key: batch[STATE_VIEW_KEYS[key][int(next_state)]] for key in keys}


class PotentialShapedReward(RewardModule):
    """r = base(s, a, s') + γ Φ(s') − Φ(s) (just the shaping term when `base` is None)."""

    def __init__(self, potential: Potential, gamma: float, base: RewardModule | None = None) -> None:
        super().__init__()
        self.potential = potential
        self.gamma = gamma
        self.base = base
        self.state_keys = frozenset(getattr(potential, "needs", {"obs"}))
        unknown = self.state_keys - STATE_VIEW_KEYS.keys()
        if unknown:
            raise ValueError(f"potential needs {sorted(unknown)}; a state view has {sorted(STATE_VIEW_KEYS)}")
        extra = {key for state_key in self.state_keys - {"obs"} for key in STATE_VIEW_KEYS[state_key]}
        self.needs = frozenset(extra | (base.needs if base is not None else set()))

    def shaping(self, batch: Batch) -> torch.Tensor:
        """γ Φ(s') − Φ(s) (B,)."""
        potential = self.potential(state_view(batch, self.state_keys, next_state=False))
        next_potential = self.potential(state_view(batch, self.state_keys, next_state=True))
        return potential_based_shaping(potential, next_potential, self.gamma, batch.get("terminated"))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Base reward plus shaping, (B,)."""
        batch = batch_to_tensors(batch, self.device)
        reward = self.shaping(batch)
        return reward if self.base is None else self.base(batch) + reward
