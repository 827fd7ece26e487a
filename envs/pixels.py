"""Pixel observations, frame stacking and action repeat for any MuJoCo `BatchedTask`, on both Gymnasium faces.

`PixelTask` wraps a task that can render a copy at a given size (`render_image(copy, width, height)`); goal tasks
that can also render a copy posed at its goal (`render_goal_image`) get an optional goal image. Images are
channels-first uint8, as DrQ-v2 and CURL feed them: `pixels` (3 * frame_stack, S, S), oldest frame first;
`goal_image` (3, S, S). The env entry points take these options as keyword arguments (so env configs pass them
through `kwargs`):

    gymnasium.make("crlab/Push-v0", obs_type="pixels", image_size=84, frame_stack=3, action_repeat=2)

obs_type: `state` (the task's own observation), `pixels`, or `state+pixels`. For goal tasks (dict observations
with `achieved_goal` / `desired_goal`) `pixels` replaces the proprioceptive `observation` key by `pixels` and
keeps the two goal vectors, which `compute_reward` and HER relabelling need.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask, Obs, TaskWrapper, is_positive_int
from envs.frame_stack import FrameStack
from envs.goal_space import GoalSpaceTask

OBS_TYPES = ("state", "pixels", "state+pixels")
PIXEL_OPTIONS = ("obs_type", "image_size", "frame_stack", "action_repeat", "goal_image")
GOAL_KEYS = ("achieved_goal", "desired_goal")


class PixelTask(TaskWrapper):
    """A `BatchedTask` seen through a camera: renders every copy after each step into a (N, k, 3, S, S) stack."""

    def __init__(
        self,
        task: BatchedTask,
        obs_type: str = "state",
        image_size: int = 84,
        frame_stack: int = 1,
        action_repeat: int = 1,
        goal_image: bool = False,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type={obs_type!r} is not one of {OBS_TYPES}")
        for name, value in (("frame_stack", frame_stack), ("action_repeat", action_repeat), ("image_size", image_size)):
            if not is_positive_int(value):
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        self.uses_pixels = obs_type != "state"
        if not self.uses_pixels and (frame_stack > 1 or goal_image):
            raise ValueError(f"frame_stack and goal_image need pixel observations, got obs_type={obs_type!r}")
        if goal_image and not hasattr(task, "render_goal_image"):
            raise ValueError(f"goal_image=True needs a goal task that renders its goal; {type(task).__name__} does not")
        super().__init__(task)
        self.obs_type, self.image_size = obs_type, image_size
        self.frame_stack, self.action_repeat, self.goal_image = frame_stack, action_repeat, goal_image
        fps = task.metadata["render_fps"] / action_repeat
        self.metadata = {**task.metadata, "render_fps": int(fps) if float(fps).is_integer() else fps}
        self.observation_space = self._make_observation_space(task.observation_space)
        s = image_size
        self.stack = FrameStack(self.num_envs, frame_stack, s)
        self.goal_frames = np.zeros((self.num_envs, 3, s, s), dtype=np.uint8)

    def _make_observation_space(self, base: spaces.Space) -> spaces.Space:
        if not self.uses_pixels:
            return base
        s = self.image_size
        images = {"pixels": spaces.Box(0, 255, (3 * self.frame_stack, s, s), np.uint8)}
        if self.goal_image:
            images["goal_image"] = spaces.Box(0, 255, (3, s, s), np.uint8)
        combined = self._combine(base.spaces if isinstance(base, spaces.Dict) else base, images)
        return spaces.Dict(combined) if isinstance(combined, dict) else combined

    def _combine(self, state: Any, images: dict[str, Any]) -> Any:
        """The observation (or its space) from the task's own `state` and the `images`: a dict state keeps all its
        keys for `state+pixels` and only the goal vectors for `pixels`; an array state goes under `state`."""
        if isinstance(state, dict):
            kept = {k: v for k, v in state.items() if self.obs_type == "state+pixels" or k in GOAL_KEYS}
            return {**kept, **images}
        if self.obs_type == "pixels":
            return images if self.goal_image else images["pixels"]
        return {"state": state, **images}

    # --- BatchedTask -------------------------------------------------------------------------------------
    def reset_copies(self, copies: np.ndarray) -> None:
        self.task.reset_copies(copies)
        if not self.uses_pixels:
            return
        self.stack.reset(copies, self._render(copies))
        if self.goal_image:
            for i in copies:
                goal = self.task.render_goal_image(i, self.image_size, self.image_size)
                self.goal_frames[i] = goal.transpose(2, 0, 1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Repeat `actions` `action_repeat` times, summing rewards; a copy's reward stops counting once it
        terminates (the shared physics keeps stepping it: MuJoCo tasks here never terminate)."""
        total = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        for _ in range(self.action_repeat):
            reward, term, info = self.task.step(actions)
            total += np.where(terminated, 0.0, reward)
            terminated |= term
        if self.uses_pixels:
            self.stack.push(slice(None), self._render(np.arange(self.num_envs)))
        return total, terminated, info

    def _render(self, copies: np.ndarray) -> np.ndarray:
        """(K, 3, S, S) current frames of `copies`."""
        return self.task.render_images(copies, self.image_size, self.image_size).transpose(0, 3, 1, 2)

    def observe(self) -> Obs:
        state = self.task.observe()
        if not self.uses_pixels:
            return state
        images = {"pixels": self.stack.observation()}
        if self.goal_image:
            images["goal_image"] = self.goal_frames.copy()
        return self._combine(state, images)

    # compute_reward is the wrapped task's, per env step: with action_repeat > 1 a step's reward is a sum of these


def make_task(task_cls: type[BatchedTask], num_envs: int, **kwargs: Any) -> BatchedTask:
    """`task_cls(num_envs, **task_kwargs)`, seen in the goal space `goal_space` when given (envs/goal_space.py), then
    wrapped in a `PixelTask` when any of `PIXEL_OPTIONS` is in `kwargs`."""
    options = {k: kwargs.pop(k) for k in PIXEL_OPTIONS if k in kwargs}
    goal_space = kwargs.pop("goal_space", None)
    task = task_cls(num_envs, **kwargs)
    if goal_space is not None:
        task = GoalSpaceTask(task, goal_space)
    return PixelTask(task, **options) if options else task
