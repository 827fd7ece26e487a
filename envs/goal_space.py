"""Goal spaces: what a goal names, chosen by the env config (`env.kwargs.goal_space=NAME`), the same for every agent.

    object               the task's own goal (Push, FetchPush: the block's position). Every env's default.
    object_and_effector  the block and the effector (pusher / gripper): an achieved goal holds both, a desired goal
                         asks for the effector at the block's goal (Eysenbach et al. 2022's Fetch push goal).
    push_behind          the block and the effector; a desired goal asks for the effector `behind_offset` short of
                         the block's goal on the line from where the block is now, where a straight push leaves the
                         pusher. The desired goal depends on the state, so it is recomputed at every step.

A goal's first `task_dim` coordinates are the task's own goal: reward and success read them alone, so the task is
the same task in every goal space, and `compute_reward` stays vectorized (HER relabels extended goals exactly).
An env that offers the extended spaces declares which observation coordinates are its effector
(`effector_indices`) and how far behind the block its effector stands when pushing (`behind_offset`), as
JaxGCRL's envs declare their goal indices; agents never see either, only the spaces. `GoalSpace.command` is the
one thing an agent's goal sampler may use: it puts a task goal in the form a desired goal of this space has.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, Obs, TaskWrapper

if TYPE_CHECKING:
    import torch

GOAL_SPACES = ("object", "object_and_effector", "push_behind")
Array = TypeVar("Array", np.ndarray, "torch.Tensor")


# the agent options (agents/crl.py, before goal spaces) that named env coordinates; refused by name, pointing here
REMOVED_AGENT_OPTIONS = ("goal_observation_indices", "command_from_goal", "command_source", "command_offset")


def _torch_of(x: Any) -> Any:
    """torch if `x` is a tensor, else None. A tensor exists only where torch is imported already, so the envs never
    import it themselves: a worker process that steps an env starts without torch's seconds of import."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None


def _cat(parts: list[Array]) -> Array:
    torch = _torch_of(parts[0])
    return torch.cat(parts, -1) if torch else np.concatenate(parts, -1)


def _norm(x: Array) -> Array:
    torch = _torch_of(x)
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True) if torch else np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass(frozen=True)
class GoalSpace:
    """One goal space of one env: `name` (GOAL_SPACES), the task goal's width, the effector's observation
    coordinates and the push offset. Every method takes numpy arrays or torch tensors with any leading shape."""

    name: str
    task_dim: int
    effector_indices: tuple[int, ...] = ()
    behind_offset: float = 0.05

    @property
    def dim(self) -> int:
        """Width of this space's goals: the task goal, then the effector slots (none for `object`)."""
        return self.task_dim + (0 if self.name == "object" else len(self.effector_indices))

    def achieved(self, observation: Array, task_achieved: Array) -> Array:
        """The achieved goal (..., dim) of states with `observation` (..., obs_dim) and task goal (..., task_dim)."""
        if self.name == "object":
            return task_achieved
        return _cat([task_achieved, observation[..., list(self.effector_indices)]])

    def command(self, task_desired: Array, task_achieved: Array) -> Array:
        """The desired goal (..., dim) asking for `task_desired` (..., task_dim) from states whose task goal is
        `task_achieved` (..., task_dim): the effector slots per this space (see the module doc)."""
        if self.name == "object":
            return task_desired
        slots = len(self.effector_indices)
        if self.name == "object_and_effector":
            return _cat([task_desired, task_desired[..., :slots]])
        heading = task_desired - task_achieved
        heading = heading / (_norm(heading) + 1e-9)  # 0 where the block is at the goal: the effector slot is the goal
        return _cat([task_desired, (task_desired - self.behind_offset * heading)[..., :slots]])

    def task_part(self, goal: Array) -> Array:
        """The task's own goal (..., task_dim) of a goal of this space."""
        return goal[..., : self.task_dim]


def goal_space_for(task: BatchedTask, name: str) -> GoalSpace:
    """The goal space `name` of a goal task; ValueError naming the valid choices, or the envs that declare an
    effector when `task` does not."""
    if name not in GOAL_SPACES:
        raise ValueError(f"goal_space={name!r} is not one of {GOAL_SPACES}")
    task_dim = int(np.prod(task.observation_space["achieved_goal"].shape))
    effector = tuple(getattr(task, "effector_indices", ()))
    if name != "object" and not effector:
        raise ValueError(f"goal_space={name!r} needs an env that declares its effector (crlab/Push-v0, "
                         f"crlab/FetchPush-v0, crlab/FetchPickAndPlace-v0, crlab/FetchSlide-v0); "
                         f"{type(task).__name__} offers goal_space='object' only")
    return GoalSpace(name, task_dim, effector, float(getattr(task, "behind_offset", 0.05)))


class GoalSpaceTask(TaskWrapper):
    """A goal task seen in another goal space: wider `achieved_goal` / `desired_goal`, the same reward and success."""

    def __init__(self, task: BatchedTask, goal_space: str) -> None:
        super().__init__(task)
        self.goal_space = goal_space_for(task, goal_space)
        box = spaces.Box(-np.inf, np.inf, (self.goal_space.dim,), np.float64)
        self.observation_space = spaces.Dict({**task.observation_space.spaces, "achieved_goal": box, "desired_goal": box})

    def observe(self) -> Obs:
        obs = self.task.observe()
        achieved = obs["achieved_goal"]
        return {**obs, "achieved_goal": self.goal_space.achieved(obs["observation"], achieved),
                "desired_goal": self.goal_space.command(obs["desired_goal"], achieved)}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """The task's reward on the task part of both goals (the effector slots never earn reward)."""
        return self.task.compute_reward(self.goal_space.task_part(achieved_goal), self.goal_space.task_part(desired_goal),
                                        info)

    def __getattr__(self, name: str) -> Any:  # render_images, render_goal_image, scripted policies' needs, ...
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)


def goal_space_of(env: Any) -> GoalSpace | None:
    """The goal space an env (single or vector, any wrappers) was made with (`goal_space=NAME`), None without one."""
    task = getattr(getattr(env, "unwrapped", env), "task", None)
    while task is not None:
        if isinstance(task, GoalSpaceTask):
            return task.goal_space
        task = task.__dict__.get("task")  # a PixelTask's wrapped task
    return None


def object_goal_space(observation_space: spaces.Space) -> GoalSpace:
    """The `object` space of a goal env's observation space: its own goal, nothing added."""
    return GoalSpace("object", int(np.prod(observation_space["achieved_goal"].shape)))
