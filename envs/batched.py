"""One task implementation, two Gymnasium faces.

A task is written once, batched: `BatchedTask` holds N copies and works on (N, ...) arrays. `BatchedEnv` is
the single-env `gymnasium.Env` (a batch of one) and `BatchedVectorEnv` the `gymnasium.vector.VectorEnv` that
steps all N copies with one call, with same-step autoreset. Copy i draws its randomness from its own generator,
seeded `seed + i` as `SyncVectorEnv` seeds its envs, so copy i of a vector env replays the single env seeded
`seed + i` exactly.
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

Obs = dict[str, np.ndarray] | np.ndarray


class BatchedTask(abc.ABC):
    """N copies of a task. Subclasses define spaces, reset, step, observe, render and describe."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 25}
    observation_space: gymnasium.Space
    action_space: gymnasium.Space

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]

    def seed(self, seed: int | None) -> None:
        """Seed copy i with `seed + i` (fresh entropy when `seed` is None)."""
        self.rngs = [np.random.default_rng(None if seed is None else seed + i) for i in range(self.num_envs)]

    @abc.abstractmethod
    def reset_copies(self, copies: np.ndarray) -> None:
        """Start a new episode in each copy listed in `copies` (K,) using `self.rngs[i]`."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Advance all copies by actions (N, *action_shape); return reward (N,), terminated (N,), info of (N,)."""

    @abc.abstractmethod
    def observe(self) -> Obs:
        """Current observation of every copy, each leaf shaped (N, ...)."""

    @abc.abstractmethod
    def render(self, copy: int) -> np.ndarray:
        """(H, W, 3) uint8 frame of one copy."""

    @abc.abstractmethod
    def describe(self, copy: int) -> str:
        """A short English description of one copy's current state."""

    def close(self) -> None:
        """Release renderers and other resources."""


def check_actions(actions: np.ndarray, num_envs: int, action_space: gymnasium.Space) -> np.ndarray:
    """`actions` as an array of shape (num_envs, *action_space.shape), all finite; otherwise a ValueError that
    names the shape or the copies at fault, raised before anything is stepped."""
    actions = np.asarray(actions)
    expected = (num_envs, *action_space.shape)
    if actions.shape != expected:
        raise ValueError(f"actions have shape {actions.shape}; this env takes {expected}")
    if np.issubdtype(actions.dtype, np.floating) and not np.isfinite(actions).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(actions).reshape(num_envs, -1))[:, 0]})
        raise ValueError(f"actions of copies {bad} are not finite (NaN or inf); nothing was stepped")
    return actions


def true_next_obs(obs: Obs, info: dict[str, Any]) -> Obs:
    """The real next observations (N, ...) of a same-step-autoreset vector step: for copies whose episode ended,
    `obs` already holds the next episode's first observation, so take info["final_obs"] (masked by
    info["_final_obs"] (N,), leaves shaped like obs) there."""
    if "_final_obs" not in info:
        return obs
    done, final = np.asarray(info["_final_obs"]), info["final_obs"]

    def merge(new: np.ndarray, last: np.ndarray) -> np.ndarray:
        return np.where(done.reshape(-1, *[1] * (np.ndim(new) - 1)), last, new)

    if isinstance(obs, dict):
        return {k: merge(obs[k], final[k]) for k in obs}
    return merge(obs, final)


def _index(obs: Obs, i: int) -> Obs:
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


class BatchedEnv(gymnasium.Env):
    """A single Gymnasium env backed by a `BatchedTask` of one copy."""

    def __init__(self, task: BatchedTask, render_mode: str | None = None) -> None:
        if render_mode not in (None, *task.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r} is not supported; choose from {task.metadata['render_modes']}")
        self.task = task
        self.metadata = {**self.metadata, **task.metadata}
        self.render_mode = render_mode
        self.observation_space = task.observation_space
        self.action_space = task.action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Obs, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.task.seed(seed)
        self.task.reset_copies(np.array([0]))
        return _index(self.task.observe(), 0), {}

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict]:
        reward, terminated, info = self.task.step(np.asarray(action)[None])
        return (
            _index(self.task.observe(), 0),
            float(reward[0]),
            bool(terminated[0]),
            False,
            {k: v[0] for k, v in info.items()},
        )

    def render(self) -> np.ndarray | None:
        return self.task.render(0) if self.render_mode == "rgb_array" else None

    def describe(self) -> str:
        """A short English description of the current state."""
        return self.task.describe(0)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Vectorized goal reward, as in gymnasium-robotics (used by HER)."""
        return self.task.compute_reward(achieved_goal, desired_goal, info)

    def close(self) -> None:
        self.task.close()


class BatchedVectorEnv(VectorEnv):
    """Gymnasium `VectorEnv` stepping all copies of a `BatchedTask` in one call.

    Autoreset is same-step: when copy i ends, the returned observation is already the first one of its next
    episode; the last observation is in `info["final_obs"]` (masked by `info["_final_obs"]`) and the ending
    step's info in `info["final_info"]`. `render()` / `describe()` after such a step also show the new episode;
    `request_final_views` adds the ended state's frame / text to `info` as well.
    """

    FINAL_VIEWS = ("frames", "text")

    def __init__(self, task: BatchedTask, max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        if render_mode not in (None, *task.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r} is not supported; choose from {task.metadata['render_modes']}")
        self.task = task
        self.num_envs = task.num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.metadata = {**task.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.single_observation_space = task.observation_space
        self.single_action_space = task.action_space
        self.observation_space = batch_space(task.observation_space, self.num_envs)
        self.action_space = batch_space(task.action_space, self.num_envs)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self.final_views: frozenset[str] = frozenset()

    def request_final_views(self, *views: str) -> None:
        """From now on, when copies end, also put info["final_frames"] (N, H, W, 3) uint8 and / or
        info["final_text"] (N,) str: their frame / description before the reset, valid where info["_final_obs"]
        (zeros / "" elsewhere). Costs one render / describe per ended copy, so it is off until asked for."""
        unknown = set(views) - set(self.FINAL_VIEWS)
        if unknown:
            raise ValueError(f"unknown final views {sorted(unknown)}; choose from {self.FINAL_VIEWS}")
        if "frames" in views and self.render_mode != "rgb_array":
            raise ValueError(f"final frames need render_mode='rgb_array', got {self.render_mode!r}")
        self.final_views = self.final_views | frozenset(views)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Obs, dict]:
        if seed is not None:
            self._np_random_seed = seed
            self.task.seed(seed)
        self.task.reset_copies(np.arange(self.num_envs))
        self.elapsed_steps[:] = 0
        return self.task.observe(), {}

    def step(self, actions: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict]:
        reward, terminated, info = self.task.step(np.asarray(actions))
        self.elapsed_steps += 1
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = (self.elapsed_steps >= self.max_episode_steps) & ~terminated
        obs = self.task.observe()
        done = terminated | truncated
        if done.any():
            copies = np.flatnonzero(done)
            info = {**info, "final_obs": obs, "_final_obs": done, "final_info": dict(info), "_final_info": done}
            info.update(self._final_views(copies))
            self.task.reset_copies(copies)
            self.elapsed_steps[copies] = 0
            obs = self.task.observe()
        return obs, reward, terminated, truncated, info

    def _final_views(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "frames" in self.final_views:
            frames = [self.task.render(i) for i in copies]
            out["final_frames"] = np.zeros((self.num_envs, *frames[0].shape), dtype=np.uint8)
            out["final_frames"][copies] = frames
        if "text" in self.final_views:
            text = [""] * self.num_envs
            for i in copies:
                text[i] = self.task.describe(i)
            out["final_text"] = np.array(text)
        return out

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.task.render(i) for i in range(self.num_envs))

    def describe(self) -> list[str]:
        """One English description per copy."""
        return [self.task.describe(i) for i in range(self.num_envs)]

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Vectorized goal reward over any leading batch shape."""
        return self.task.compute_reward(achieved_goal, desired_goal, info)

    def close_extras(self, **kwargs: Any) -> None:
        self.task.close()
