"""What every agent offers the training loop (the observation edge, obs_to_tensor, lives in envs/tensors.py)."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from envs.tensors import TensorObs, obs_to_tensor

__all__ = ["Agent", "RelabelsRewards", "TensorObs", "obs_to_tensor"]  # obs_to_tensor: envs/tensors.py


class Agent(Protocol):
    """The loop calls act -> env.step -> observe -> update, every vector step, on batches of N env copies."""

    device: torch.device

    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """Actions (N, *action_shape) for a batch of observations."""

    def observe(
        self,
        obs: TensorObs,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: TensorObs,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Record one vector step; next_obs holds the true last observation for copies whose episode ended."""

    def update(self) -> dict[str, torch.Tensor]:
        """Run whatever gradient steps are due; return detached scalar metrics (no host sync)."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only, so that `torch.load(weights_only=True)` restores it."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""


RewardFn = Callable[[Any, torch.Tensor, Any], torch.Tensor]  # (obs, action, next_obs) batches -> rewards (B,)


@runtime_checkable
class RelabelsRewards(Protocol):
    """Agents whose replay buffer stores rewards. After each preference-feedback session the run engine recomputes
    every stored reward with the new reward model (PEBBLE, Lee et al. 2021), so no update learns from a stale one."""

    def check_reward_inputs(self, obs_keys: list[str] | None) -> None:
        """Raise ValueError, before any work, if the buffer does not keep what a reward model reading the
        observation entries `obs_keys` (None: all of them) needs."""

    def relabel_rewards(self, reward_fn: RewardFn) -> None:
        """Overwrite every stored reward with reward_fn(obs, action, next_obs), in batches on the buffer's device."""


def compile_mode(device: torch.device) -> str | None:
    """torch.compile's mode for an agent's update: "reduce-overhead" (CUDA graphs: the update's few hundred small
    kernels replayed as one graph launch) on CUDA, the default elsewhere."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else None


def compiled_update(update_on: Callable[[dict[str, Any]], dict[str, torch.Tensor]], enabled: bool,
                    device: torch.device | str = "cpu") -> Callable[[dict[str, Any]], dict[str, torch.Tensor]]:
    """An agent's `update_on(batch)` (losses, backward passes and optimizer steps) through `torch.compile` when
    `enabled` (`agent.compile=true`), in `compile_mode(device)`; otherwise `update_on` itself. One compilation per
    batch shape."""
    return torch.compile(update_on, mode=compile_mode(device)) if enabled else update_on
