"""Environments of the standard suites (gymnasium-robotics Fetch and mazes, MetaWorld) as crlab batched tasks.

`SuiteTask` holds N unmodified copies of a suite's own env and steps them as one batch, so a suite env gets what
every crlab env has: both Gymnasium faces (`BatchedEnv`, `BatchedVectorEnv`), pixels / frame stacks / goal images
(envs/pixels.py), `describe()`, and the recorder. Nothing in the simulation changes: at every step the
observation, reward and success are the suite env's own, for the same seed (tests/envs/test_suites.py).

Batching: MuJoCo's Python bindings release the GIL inside `mj_step`, so the copies are stepped in contiguous
chunks on a thread pool, one thread per core by default: on the 2-core CPU, FetchPush x8 steps at 1.6x one env
(1,622 vs 1,007 env-steps/s, docs/benchmarks/records/throughput/suites.json). Where the step is mostly Python,
threads only add overhead: PointMaze sets `threads=1`, and MetaWorld's vector form puts its copies in worker processes instead (envs/subprocess_task.py).

Seeding follows `SyncVectorEnv`: after `seed(s)` copy i's next reset is `reset(seed=s + i)`; later autoresets
are unseeded, so vector copy i replays the single env seeded s + i.
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import gymnasium
import mujoco
import numpy as np

from envs.attribute_pickle import pickle_by_attributes
from envs.batched import BatchedTask, Obs
from envs.mujoco_batch import RendererCache

Camera = dict[str, Any] | str  # a free camera (distance, azimuth, elevation, lookat) or a camera of the model


def _free_camera(settings: dict[str, Any]) -> mujoco.MjvCamera:
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    for key, value in settings.items():
        if key == "lookat":
            camera.lookat[:] = value
        else:
            setattr(camera, key, value)
    return camera


class SuiteTask(BatchedTask):
    """N copies of one suite env, made by `make_env()`, stepped together.

    Subclasses set `camera`, `success_key` (the info key the suite reports success under), and implement
    `describe`; goal suites implement `compute_reward`, and `pose_at_goal` where a goal image makes sense.
    """

    camera: Camera = {"distance": 2.5, "azimuth": 90.0, "elevation": -30.0, "lookat": (0.0, 0.0, 0.0)}
    success_key = "is_success"
    default_threads: int | None = None  # None: one per core (physics-bound suites); 1: step in a plain loop
    rotate_frames = False  # turn frames by 180 degrees (a camera mounted upside down in the suite's model)

    def __init__(self, num_envs: int, make_env: Callable[[], gymnasium.Env], threads: int | None = None,
                 width: int = 480, height: int = 480) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        super().__init__(num_envs)
        self.envs = [make_env() for _ in range(num_envs)]
        first = self.envs[0]
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": first.metadata["render_fps"]}
        self.width, self.height = width, height
        self._next_seeds: list[int | None] = [None] * num_envs
        self._obs: list[Obs] = [None] * num_envs  # type: ignore[list-item]
        self._results: list[tuple] = [()] * num_envs
        threads = self.default_threads if threads is None else threads
        threads = min(num_envs, threads or os.cpu_count() or 1)
        self._chunks = [c for c in np.array_split(np.arange(num_envs), threads) if len(c)]
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self._renderers = RendererCache()  # one per (copy, width, height); a pickled or copied task starts without
        self._scratch: dict[int, mujoco.MjData] = {}

    def __getstate__(self) -> dict:
        """Pickle / deepcopy: the suite envs as `pickle_by_attributes` writes them, no thread pool (its threads and
        locks cannot be copied), no scratch data."""
        return {**self.__dict__, "envs": pickle_by_attributes(self.envs), "_pool": None, "_scratch": {}}

    def __setstate__(self, state: dict) -> None:
        # Why bytes inside the state: the suite envs need a pickler of their own (envs/attribute_pickle.py: classes
        # made per call carried by value, views into MjData kept views), and the outer pickler is the caller's
        # (pickle.dumps, copy.deepcopy, multiprocessing), whose per-type hooks cannot reach either. The bytes are the
        # ones __getstate__ put inside the pickle being loaded now, so loading them trusts nothing the outer
        # unpickling did not; crlab's files (checkpoints, rollouts, datasets) are never pickles.
        self.__dict__.update({**state, "envs": pickle.loads(state["envs"])})  # noqa: S301
        threads = len(self._chunks)
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    # --- the suite env of a copy ---------------------------------------------------------------------------
    def model(self, copy: int) -> mujoco.MjModel:
        return self.envs[copy].unwrapped.model

    def data(self, copy: int) -> mujoco.MjData:
        return self.envs[copy].unwrapped.data

    def reset_env(self, copy: int, seed: int | None) -> Obs:
        """Reset one copy's suite env (seeded when `seed` is not None); returns its first observation."""
        obs, _ = self.envs[copy].reset(seed=seed)
        return self.convert_obs(obs)

    def convert_obs(self, obs: Obs) -> Obs:
        """The crlab observation of a suite observation (the same by default)."""
        return obs

    # --- BatchedTask ---------------------------------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        super().seed(seed)
        self._next_seeds = [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            self._obs[i] = self.reset_env(int(i), self._next_seeds[i])
            self._next_seeds[i] = None

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions)  # checked at the env boundary (envs/batched.py check_actions)

        def run(chunk: np.ndarray) -> None:
            for i in chunk:
                self._results[i] = self.envs[i].step(actions[i])

        if self._pool is None:
            run(np.arange(self.num_envs))
        else:
            for future in [self._pool.submit(run, c) for c in self._chunks]:
                future.result()
        for i, (obs, *_rest) in enumerate(self._results):
            self._obs[i] = self.convert_obs(obs)
        reward = np.array([r[1] for r in self._results], dtype=np.float64)
        terminated = np.array([r[2] for r in self._results], dtype=bool)
        info = self._batch_info([r[4] for r in self._results])
        return reward, terminated, info

    def _batch_info(self, infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """The suite's numeric info keys as (N,) arrays, plus `is_success` (N,) bool from `success_key`."""
        out = {k: np.array([info[k] for info in infos], dtype=np.float64)
               for k, v in infos[0].items() if np.isscalar(v) and not isinstance(v, str)}
        out["is_success"] = np.array([bool(info[self.success_key]) for info in infos])
        return out

    def observe(self) -> Obs:
        if isinstance(self._obs[0], dict):
            return {k: np.stack([o[k] for o in self._obs]) for k in self._obs[0]}
        return np.stack(self._obs)

    # --- rendering -----------------------------------------------------------------------------------------
    def render(self, copy: int) -> np.ndarray:
        return self.render_images(np.array([copy]), self.width, self.height)[0]

    def render_images(self, copies: np.ndarray, width: int, height: int) -> np.ndarray:
        """(K, height, width, 3) uint8 frames of `copies` in their current state."""
        return np.stack([self._render(int(i), width, height, goal=False) for i in copies])

    def _render(self, copy: int, width: int, height: int, goal: bool) -> np.ndarray:
        renderer = self._renderers.get((copy, width, height), self.model(copy), width, height)
        camera = self.camera if isinstance(self.camera, str) else _free_camera(self.camera)
        renderer.update_scene(self.frame_data(copy, goal), camera=camera)
        frame = renderer.render()
        return np.ascontiguousarray(frame[::-1, ::-1]) if self.rotate_frames else frame.copy()

    def frame_data(self, copy: int, goal: bool) -> mujoco.MjData:
        """The state a frame shows: a scratch copy of the copy's data (posed at its goal if `goal`), so rendering
        never touches the simulation."""
        model, scratch = self.model(copy), self._scratch.get(copy)
        if scratch is None:
            scratch = self._scratch[copy] = mujoco.MjData(model)
        live = self.data(copy)
        for field in ("qpos", "qvel", "act", "mocap_pos", "mocap_quat"):  # all that positions depend on
            getattr(scratch, field)[:] = getattr(live, field)
        if goal:
            self.pose_at_goal(copy, scratch)
        mujoco.mj_forward(model, scratch)
        return scratch

    def pose_at_goal(self, copy: int, data: mujoco.MjData) -> None:
        """Write the goal into `data` (what the achieved goal would be at success); goal suites override."""
        raise NotImplementedError

    def close(self) -> None:
        self._renderers.close()
        if self._pool is not None:
            self._pool.shutdown()
        for env in self.envs:
            env.close()


class GoalImageMixin:
    """Adds `render_goal_image` (what envs/pixels.py looks for) to a suite task that implements `pose_at_goal`."""

    def render_goal_image(self, copy: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) frame of one copy posed at its goal."""
        return self._render(copy, width, height, goal=True)  # type: ignore[attr-defined]


def unwrapped_maker(env_id: str, **kwargs: Any) -> Callable[[], gymnasium.Env]:
    """A factory of the suite env `env_id` without Gymnasium's wrappers (crlab adds its own time limit)."""
    return lambda: gymnasium.make(env_id, disable_env_checker=True, **kwargs).unwrapped
