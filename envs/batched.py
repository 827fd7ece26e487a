"""One task implementation, two Gymnasium faces.

A task is written once, batched: `BatchedTask` holds N copies and works on (N, ...) arrays. `BatchedEnv` is
the single-env `gymnasium.Env` (a batch of one) and `BatchedVectorEnv` the `gymnasium.vector.VectorEnv` that
steps all N copies with one call, with same-step autoreset. Copy i draws its randomness from its own generator,
seeded `seed + i` as `SyncVectorEnv` seeds its envs, so copy i of a vector env replays the single env seeded
`seed + i` exactly.
"""

from __future__ import annotations

import abc
import importlib
import sys
from typing import Any, Callable

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.gl_fork import check_not_importing_main

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


class TaskWrapper(BatchedTask):
    """A task seen through a wrapper (pixels, another goal space): what a subclass does not override is the
    wrapped task's, its randomness included."""

    def __init__(self, task: BatchedTask) -> None:
        self.task = task
        self.num_envs = task.num_envs
        self.metadata = task.metadata
        self.observation_space, self.action_space = task.observation_space, task.action_space

    @property
    def rngs(self) -> list[np.random.Generator]:  # the wrapped task draws all randomness
        return self.task.rngs

    @rngs.setter
    def rngs(self, value: list[np.random.Generator]) -> None:
        self.task.rngs = value

    def seed(self, seed: int | None) -> None:
        self.task.seed(seed)

    def reset_copies(self, copies: np.ndarray) -> None:
        self.task.reset_copies(copies)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return self.task.step(actions)

    def observe(self) -> Obs:
        return self.task.observe()

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return self.task.compute_reward(achieved_goal, desired_goal, info)

    def render(self, copy: int) -> np.ndarray:
        return self.task.render(copy)

    def describe(self, copy: int) -> str:
        return self.task.describe(copy)

    def close(self) -> None:
        self.task.close()


def check_actions(actions: np.ndarray, num_envs: int, action_space: gymnasium.Space) -> np.ndarray:
    """`actions` as an array of shape (num_envs, *action_space.shape), checked before anything is stepped, so one
    copy's bad action never reaches another copy (they may share one MuJoCo model) and no state changes:
    Box actions must be finite (finite values outside the bounds are clipped by the actuators' control ranges);
    Discrete actions must be whole numbers in [start, start + n). Otherwise a ValueError naming the shape, or the
    copies and values at fault and the valid range."""
    actions = np.asarray(actions)
    expected = (num_envs, *action_space.shape)
    if actions.shape != expected:
        raise ValueError(f"actions have shape {actions.shape}; this env takes {expected}")
    if actions.dtype.kind not in "biuf":
        raise ValueError(f"actions must be numbers, got dtype {actions.dtype}")
    if actions.dtype.kind == "f" and not np.isfinite(actions).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(actions).reshape(num_envs, -1))[:, 0]})
        raise ValueError(f"actions of copies {bad} are not finite (NaN or inf); nothing was stepped")
    if isinstance(action_space, gymnasium.spaces.Discrete):
        low, high = int(action_space.start), int(action_space.start + action_space.n - 1)
        wrong = (actions != np.round(actions)) | (actions < low) | (actions > high)
        if wrong.any():
            bad = np.flatnonzero(wrong)
            raise ValueError(f"action {actions[bad[0]].item()!r} of copy {int(bad[0])} is not a valid choice: "
                             f"actions are integers {low}..{high}; nothing was stepped")
        actions = actions.astype(np.int64)
    return actions


def true_next_obs(obs: Obs, info: dict[str, Any]) -> Obs:
    """The real next observations (N, ...) of a same-step-autoreset vector step: for copies whose episode ended,
    `obs` already holds the next episode's first observation, so take info["final_obs"] (masked by
    info["_final_obs"] (N,), leaves shaped like obs) there."""
    if "_final_obs" not in info:
        return obs
    done, final = info["_final_obs"], info["final_obs"]
    if not isinstance(done, np.ndarray) and type(done).__module__ == "torch":  # backend="mjx": torch, on its device
        import torch  # not at module level: `import envs` stays free of torch

        def merge(new: Any, last: Any) -> Any:
            return torch.where(done.reshape(-1, *[1] * (new.dim() - 1)), last, new)
    else:
        done = np.asarray(done)

        def merge(new: Any, last: Any) -> Any:
            return np.where(done.reshape(-1, *[1] * (np.ndim(new) - 1)), last, new)

    if isinstance(obs, dict):
        return {k: merge(obs[k], final[k]) for k in obs}
    return merge(obs, final)


GOAL_KEYS = frozenset({"observation", "achieved_goal", "desired_goal"})


def _goal_reward(task: BatchedTask, space: gymnasium.Space, name: str) -> Callable[[np.ndarray, np.ndarray, Any], np.ndarray]:
    """The task's compute_reward if the env is a goal env (Dict observations with GOAL_KEYS), else AttributeError,
    so that `hasattr(env, "compute_reward")` tells a GoalEnv as gymnasium-robotics and SB3 expect."""
    goal_env = isinstance(space, gymnasium.spaces.Dict) and GOAL_KEYS <= set(space.spaces)
    if not goal_env or not hasattr(task, "compute_reward"):
        raise AttributeError(f"{name} is not a goal env: it has no compute_reward")
    return task.compute_reward


class vector_entry_point:  # noqa: N801  (used like a function in registrations)
    """The registered vector constructor of a crlab env: `path` ("module:Class") built with the make_vec kwargs, plus
    `autoreset_mode="same_step" | "next_step"`; imported on first use, so `import envs` stays quick. A class, not a
    closure, so that env specs (and envs holding them) pickle. `backends` names other simulators' forms of the env
    ("mjx": "module:Class"), chosen with `backend=...` (default "mujoco", the C MuJoCo form at `path`)."""

    def __init__(self, path: str, **backends: str) -> None:
        self.path, self.backends = path, backends

    def __call__(self, *, autoreset_mode: str = "same_step", backend: str = "mujoco", **kwargs: Any) -> Any:
        if backend != "mujoco":
            if backend not in self.backends:
                raise ValueError(f"backend={backend!r} is not one of {['mujoco', *self.backends]} for this env")
            if str(getattr(autoreset_mode, "value", autoreset_mode)).replace("_", "").lower() != "samestep":
                raise ValueError(f"backend={backend!r} autoresets in the same step only (got autoreset_mode={autoreset_mode!r})")
            module, name = self.backends[backend].split(":")
            return getattr(importlib.import_module(module), name)(**kwargs)
        module, name = self.path.split(":")
        env = getattr(importlib.import_module(module), name)(**kwargs)
        env.set_autoreset_mode(autoreset_mode)
        return env

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.backends.items())
        return f"vector_entry_point({self.path!r}{extra})"


class VectorMetadata(dict):
    """A vector env's metadata. Gymnasium's observation wrappers (FlattenObservation, NormalizeObservation, ...) refuse
    a same-step env with "Expected autoreset_mode to be NEXT_STEP or DISABLED"; when one of them reads the mode, this
    raises crlab's one-line error naming the option instead (docs/notes/autoreset.md)."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if key == "autoreset_mode" and value == AutoresetMode.SAME_STEP and sys._getframe(1).f_code in _next_step_only():
            raise ValueError("this crlab vector env autoresets in the same step (crlab's default); gymnasium's observation "
                             "wrappers need next-step: gymnasium.make_vec(..., autoreset_mode=\"next_step\")")
        return value


def _next_step_only() -> set[Any]:
    """The code of gymnasium's wrapper constructors that refuse same-step autoreset."""
    from gymnasium.vector import VectorObservationWrapper
    from gymnasium.wrappers.vector import NormalizeObservation

    return {VectorObservationWrapper.__init__.__code__, NormalizeObservation.__init__.__code__}


def _index(obs: Obs, i: int) -> Obs:
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


def is_positive_int(value: Any) -> bool:
    """An env size (copies, frame pixels, stacked frames): a Python or numpy integer >= 1, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def check_frame_size(task: BatchedTask) -> None:
    """ValueError naming a frame `width` / `height` that is not a positive integer (None: the task's default)."""
    for name in ("width", "height"):
        value = getattr(task, name, None)
        if value is not None and not is_positive_int(value):
            raise ValueError(f"{name}={value!r} must be a positive integer (frame size in pixels)")


class BatchedEnv(gymnasium.Env):
    """A single Gymnasium env backed by a `BatchedTask` of one copy."""

    def __init__(self, task: BatchedTask, render_mode: str | None = None) -> None:
        check_not_importing_main()
        if render_mode not in (None, *task.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r} is not supported; choose from {task.metadata['render_modes']}")
        check_frame_size(task)
        self.task = task
        self.metadata = {**self.metadata, **task.metadata}
        self.render_mode = render_mode
        self.observation_space = task.observation_space
        self.action_space = task.action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Obs, dict]:
        """Start a new episode (seeding the task's generator when `seed` is given); the first observation and {}."""
        super().reset(seed=seed)
        if seed is not None:
            self.task.seed(seed)
        self.task.reset_copies(np.array([0]))
        return _index(self.task.observe(), 0), {}

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict]:
        """One step of `action` (*action_shape), checked first (`check_actions`): observation, reward, terminated,
        truncated (always False: time limits are the registered `max_episode_steps`' wrapper's) and info."""
        if np.shape(action) != self.action_space.shape:
            raise ValueError(f"action has shape {np.shape(action)}; this env takes {self.action_space.shape}")
        reward, terminated, info = self.task.step(check_actions(np.asarray(action)[None], 1, self.action_space))
        return (
            _index(self.task.observe(), 0),
            float(reward[0]),
            bool(terminated[0]),
            False,
            {k: v[0] for k, v in info.items()},
        )

    def render(self) -> np.ndarray | None:
        """The (H, W, 3) uint8 frame of the current state with `render_mode="rgb_array"`, else None."""
        return self.task.render(0) if self.render_mode == "rgb_array" else None

    def describe(self) -> str:
        """A short English description of the current state."""
        return self.task.describe(0)

    @property
    def compute_reward(self) -> Callable[[np.ndarray, np.ndarray, Any], np.ndarray]:
        """Vectorized goal reward `(achieved_goal, desired_goal, info) -> (*batch,)`, as in gymnasium-robotics (used
        by HER); only goal envs have it (SB3 and HER tell a GoalEnv by its presence)."""
        return _goal_reward(self.task, self.observation_space, type(self).__name__)

    def close(self) -> None:
        self.task.close()


class BatchedVectorEnv(VectorEnv):
    """Gymnasium `VectorEnv` stepping all copies of a `BatchedTask` in one call.

    Autoreset is same-step by default (crlab's own loops use it): when copy i ends, the returned observation is
    already the first one of its next episode; the last observation is in `info["final_obs"]` (masked by
    `info["_final_obs"]`) and the ending step's info in `info["final_info"]`. `render()` / `describe()` after such
    a step also show the new episode; `request_final_views` adds the ended state's frame / text to `info` as well.

    `autoreset_mode="next_step"` (`gymnasium.make_vec(..., autoreset_mode="next_step")`) is gymnasium's default
    convention, which its vector wrappers (FlattenObservation, NormalizeObservation, RecordEpisodeStatistics, ...)
    require: an ended copy returns its last observation, and the next step resets it (its action is ignored; reward
    0, not terminated, not truncated). Every info entry carries its `_key` mask, as gymnasium's own vector envs.
    """

    FINAL_VIEWS = ("frames", "text")

    def __init__(self, task: BatchedTask, max_episode_steps: int | None = None, render_mode: str | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP) -> None:
        check_not_importing_main()
        if render_mode not in (None, *task.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r} is not supported; choose from {task.metadata['render_modes']}")
        check_frame_size(task)
        self.task = task
        self.num_envs = task.num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.metadata = VectorMetadata(task.metadata)
        self.set_autoreset_mode(autoreset_mode)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)  # next-step mode: copies that ended last step
        self.single_observation_space = task.observation_space
        self.single_action_space = task.action_space
        self.observation_space = batch_space(task.observation_space, self.num_envs)
        self.action_space = batch_space(task.action_space, self.num_envs)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self.final_views: frozenset[str] = frozenset()

    def set_autoreset_mode(self, mode: str | AutoresetMode) -> None:
        """Choose same-step (crlab's loops) or next-step (gymnasium's vector wrappers) autoreset; before a reset."""
        modes = {"samestep": AutoresetMode.SAME_STEP, "nextstep": AutoresetMode.NEXT_STEP}
        key = str(getattr(mode, "value", mode)).replace("_", "").lower()
        if key not in modes:
            raise ValueError(f"autoreset_mode={mode!r} is not one of ['same_step', 'next_step']")
        self.autoreset_mode = modes[key]
        self.metadata = VectorMetadata({**self.metadata, "autoreset_mode": self.autoreset_mode})

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
        """Start a new episode in every copy (copy i seeded `seed + i` when `seed` is given); observations (N, ...)
        and {}."""
        if seed is not None:
            self._np_random_seed = seed
            self.task.seed(seed)
        self.task.reset_copies(np.arange(self.num_envs))
        self.elapsed_steps[:] = 0
        self._needs_reset[:] = False
        return self.task.observe(), {}

    def step(self, actions: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step every copy with `actions` (N, *action_shape), checked first (`check_actions`): observations
        (N, ...), rewards (N,), terminated (N,), truncated (N,) (at `max_episode_steps`) and info, with the ended
        copies autoreset as the class doc describes."""
        reward, terminated, info = self.task.step(check_actions(actions, self.num_envs, self.single_action_space))
        self.elapsed_steps += 1
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = (self.elapsed_steps >= self.max_episode_steps) & ~terminated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            return self._next_step_autoreset(reward, terminated, truncated, info)
        obs = self.task.observe()
        done = terminated | truncated
        info = {**info, **{f"_{k}": np.ones(self.num_envs, dtype=bool) for k in info}}  # gymnasium's masks
        if done.any():
            copies = np.flatnonzero(done)
            info = {**info, "final_obs": obs, "_final_obs": done, "final_info": dict(info), "_final_info": done}
            info.update(self._final_views(copies))
            self.task.reset_copies(copies)
            self.elapsed_steps[copies] = 0
            obs = self.task.observe()
        return obs, reward, terminated, truncated, info

    def _next_step_autoreset(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                             info: dict[str, np.ndarray]) -> tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Copies that ended last step are reset now (the step just taken from their last state is discarded: all
        copies step together); their reward is 0 and their info entries are masked out."""
        reset = np.flatnonzero(self._needs_reset)
        live = ~self._needs_reset
        if len(reset):
            self.task.reset_copies(reset)
            self.elapsed_steps[reset] = 0
            reward = np.where(live, reward, 0.0)
            terminated, truncated = terminated & live, truncated & live
        self._needs_reset = terminated | truncated
        info = {**info, **{f"_{k}": live.copy() for k in info}}
        return self.task.observe(), reward, terminated, truncated, info

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
        """One (H, W, 3) uint8 frame per copy with `render_mode="rgb_array"`, else None."""
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.task.render(i) for i in range(self.num_envs))

    def describe(self) -> list[str]:
        """One English description per copy."""
        return [self.task.describe(i) for i in range(self.num_envs)]

    @property
    def compute_reward(self) -> Callable[[np.ndarray, np.ndarray, Any], np.ndarray]:
        """Vectorized goal reward over any leading batch shape; only goal envs have it."""
        return _goal_reward(self.task, self.single_observation_space, type(self).__name__)

    def close_extras(self, **kwargs: Any) -> None:
        self.task.close()
