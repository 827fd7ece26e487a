"""What every agent offers the training loop (the observation edge, obs_to_tensor, lives in envs/tensors.py)."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from envs.tensors import TensorObs, obs_to_tensor

__all__ = ["Agent", "DrivenBySB3", "LearnsOffline", "RelabelsRewards", "TensorObs", "UsesGoalSpace", "obs_to_tensor"]  # obs_to_tensor: envs/tensors.py


class Agent(Protocol):
    """The loop calls act -> env.step -> observe -> update, every vector step, on batches of N env copies.

    `loop` says which experience source drives the agent (scripts/engine.py): `online` (env steps), `offline`
    (its dataset: `LearnsOffline`) or `sb3` (SB3's learn: `DrivenBySB3`); `dataset_format` which dataset files it
    learns from offline (`goal`, `preferences`, or None). Both are class attributes every agent declares."""

    loop: str
    dataset_format: str | None
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


@runtime_checkable
class LearnsOffline(Protocol):
    """Agents with a `dataset_format`: the run setup loads the dataset and hands it over before the first update."""

    def set_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Take a loaded dataset (agents.goal_dataset / agents.preference_dataset layout) to learn from."""


@runtime_checkable
class DrivenBySB3(Protocol):
    """Agents whose loop is `sb3`: SB3's `model.learn` collects and trains, the run engine's hooks ride along."""

    model: Any
    env_steps: int

    def bind(self, env: Any, her_allowed: bool = True) -> Any:
        """Wrap the crlab vector env as SB3's VecEnv for `model` (HER where the env is a goal env and
        `her_allowed`); returns that VecEnv."""


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


@runtime_checkable
class UsesGoalSpace(Protocol):
    """Goal-conditioned agents whose goal sampler reads the env's goal space (envs/goal_space.py: the commanded form
    of a goal, its task part). The run setup hands it over right after building the agent, before any dataset."""

    def set_goal_space(self, goal_space: Any) -> None:
        """Take the env's `envs.goal_space.GoalSpace`; ValueError if its goals are not the env's width."""


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
