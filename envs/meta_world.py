"""MetaWorld (v3 tasks of metaworld 3.1.1) as crlab envs: the CPL / RL-VLM-F benchmark.

Two forms of each task, both with MetaWorld's own physics, reset and success flag:
- `crlab/MetaWorld-{task}-v0`: the plain env. Observation (39,) as MetaWorld gives it (hand, gripper, two objects,
  the previous frame of those, the goal), MetaWorld's dense reward (0-10), success from its own `info["success"]`.
- `crlab/MetaWorldGoal-{task}-v0`: goal-conditioned. Dict observation `{observation (36,): the plain observation
  without the goal, achieved_goal (3,): the object's position (obs[4:7], MetaWorld's "obj"), desired_goal (3,):
  the target position}`; `compute_reward` is vectorized and decides success with MetaWorld's own criterion for
  the task (`SUCCESS`: which coordinates, which threshold), so it equals `info["success"]` at every step
  (tests/envs/test_meta_world.py); sparse 0 / -1 or dense minus that distance.

Goals (`goal_mode`), as MetaWorld's MT1 benchmark defines them: MT1 draws 50 task variations (object and goal
positions) with the benchmark seed `task_seed`. `fixed`: variation `task_id` every episode; `mt1`: a variation drawn
at random each reset (MetaWorld's RandomTaskSelectWrapper); `random`: fresh object and goal positions from the
task's own range at each reset, drawn from the env's seeded generator. Episodes are 500 steps (MetaWorld's
max_path_length).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import gymnasium
import metaworld
import metaworld.policies
import mujoco
import numpy as np
from gymnasium import spaces

from envs.batched import BatchedEnv, BatchedVectorEnv, Obs
from envs.pixels import make_task
from envs.subprocess_task import SubprocessTask
from envs.suite import GoalImageMixin, SuiteTask

EPISODE_STEPS = 500
GOAL_MODES = ("fixed", "mt1", "random")
# MetaWorld's success test per task, read from its evaluate_state: |obj - target| over these coordinates <= threshold
SUCCESS = {
    "bin-picking-v3": ((0, 1, 2), 0.05),
    "button-press-topdown-v3": ((2,), 0.024),
    "door-open-v3": ((0,), 0.08),
    "drawer-open-v3": ((0, 1, 2), 0.03),
    "plate-slide-v3": ((0, 1, 2), 0.07),
    "push-v3": ((0, 1, 2), 0.05),
    "sweep-into-v3": ((0, 1), 0.05),
}
TASKS = tuple(SUCCESS)
FREE_OBJECT_TASKS = ("bin-picking-v3", "push-v3", "sweep-into-v3")  # the object is a free body: goal images work


@lru_cache(maxsize=None)
def _mt1(task: str, seed: int) -> metaworld.MT1:
    """MetaWorld's MT1 benchmark of `task` (its 50 variations cost 50 resets to draw: drawn once per process)."""
    return metaworld.MT1(task, seed=seed)


def _check_task(task: str) -> None:
    if task not in SUCCESS:
        raise ValueError(f"task={task!r} is not a crlab MetaWorld task; choose from {TASKS}")


def success_distance(task: str, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """MetaWorld's success distance of `task` for object positions and targets (..., 3) -> (...)."""
    dims, _ = SUCCESS[task]
    return np.linalg.norm(achieved_goal[..., dims] - desired_goal[..., dims], axis=-1)


class MetaWorldTask(SuiteTask):
    """N copies of one MetaWorld task, plain or goal-conditioned."""

    camera = "corner"
    rotate_frames = True  # MetaWorld's corner camera is mounted upside down: its frames are turned back upright
    success_key = "success"

    def __init__(self, num_envs: int = 1, task: str = "push-v3", goal_conditioned: bool = False,
                 goal_mode: str = "fixed", task_id: int = 0, task_seed: int = 0, reward_type: str = "sparse",
                 threads: int | None = None, width: int = 480, height: int = 480) -> None:
        _check_task(task)
        if goal_mode not in GOAL_MODES:
            raise ValueError(f"goal_mode={goal_mode!r} is not one of {GOAL_MODES}")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type={reward_type!r} is not one of ('sparse', 'dense')")
        benchmark = _mt1(task, task_seed)
        self.variations = benchmark.train_tasks
        if not 0 <= task_id < len(self.variations):
            raise ValueError(f"task_id={task_id} is out of range; MT1 has variations 0..{len(self.variations) - 1}")
        self.task_name, self.goal_mode, self.reward_type = task, goal_mode, reward_type
        self.goal_conditioned = goal_conditioned
        env_cls = benchmark.train_classes[task]

        def make_env() -> gymnasium.Env:
            env = env_cls()
            env.set_task(self.variations[task_id])
            if goal_mode == "random":  # MetaWorld's own sampling of object / goal positions, from env.np_random
                env._freeze_rand_vec, env.seeded_rand_vec = False, True
            return env

        super().__init__(num_envs, make_env, threads, width, height)
        for env in self.envs:  # 4096^2 shadow maps for 3 lights: 68 ms a frame on a CPU; 1024^2: 41 ms, same picture
            env.model.vis.quality.shadowsize = min(env.model.vis.quality.shadowsize, 1024)
        # MetaWorld's env.observation_space is the goal-hidden one it was built with (goal bounds 0); after
        # set_task makes the goal visible, sawyer_observation_space is the space its observations are clipped to.
        self.observation_space = box = self.envs[0].sawyer_observation_space
        if goal_conditioned:
            self.observation_space = spaces.Dict({
                "observation": spaces.Box(box.low[:36], box.high[:36], dtype=np.float64),
                "achieved_goal": spaces.Box(box.low[4:7], box.high[4:7], dtype=np.float64),
                "desired_goal": spaces.Box(box.low[36:39], box.high[36:39], dtype=np.float64),
            })

    def reset_env(self, copy: int, seed: int | None) -> Obs:
        env = self.envs[copy]
        if seed is not None:
            env.seed(seed)
        if self.goal_mode == "mt1":
            env.set_task(self.variations[self.rngs[copy].integers(len(self.variations))])
        obs, _ = env.reset()
        return self.convert_obs(obs)

    def convert_obs(self, obs: np.ndarray) -> Obs:
        if not self.goal_conditioned:
            return obs
        return {"observation": obs[:36].copy(), "achieved_goal": obs[4:7].copy(), "desired_goal": obs[36:39].copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        reward, terminated, info = super().step(actions)
        if self.goal_conditioned:
            obs = self.observe()
            reward = self.compute_reward(obs["achieved_goal"], obs["desired_goal"], None)
        return reward, terminated, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Sparse: 0 where MetaWorld's success test passes, else -1; dense: minus its distance. Any leading batch
        shape; `info` is not read (HER relabelling with empty infos is exact)."""
        if not self.goal_conditioned:
            raise AttributeError("compute_reward exists on the goal-conditioned form (crlab/MetaWorldGoal-*) only")
        distance = success_distance(self.task_name, achieved_goal, desired_goal)
        if self.reward_type == "dense":
            return -distance
        return -(distance > SUCCESS[self.task_name][1]).astype(np.float64)

    def frame_data(self, copy: int, goal: bool) -> mujoco.MjData:
        data = super().frame_data(copy, goal)
        for name, pos in self.envs[copy]._target_site_config:  # MetaWorld places its goal markers after forward
            data.site(name).xpos = pos
        return data

    def describe(self, copy: int) -> str:
        env = self.envs[copy]
        hand, obj, target = env.tcp_center, env._get_pos_objects()[:3], env._target_pos  # read-only accessors
        distance = float(success_distance(self.task_name, obj, target))
        done = "solved" if distance <= SUCCESS[self.task_name][1] else "not solved yet"
        return (f"{self.task_name}: the gripper is {np.linalg.norm(obj - hand):.2f} m from the object; the object is "
                f"{distance:.2f} m from its target; the task is {done}.")


class MetaWorldObjectTask(GoalImageMixin, MetaWorldTask):
    """Tasks whose object is a free body: a goal image shows the object at the target."""

    def pose_at_goal(self, copy: int, data: mujoco.MjData) -> None:
        data.qpos[9:12] = self.envs[copy]._target_pos  # MetaWorld's own _set_obj_xyz writes these


def _task_cls(task: str) -> type[MetaWorldTask]:
    return MetaWorldObjectTask if task in FREE_OBJECT_TASKS else MetaWorldTask


def scripted_policy(task: str) -> Any:
    """MetaWorld's own scripted policy for `task`: `.get_action(obs (39,)) -> (4,)`."""
    _check_task(task)
    return metaworld.policies.ENV_POLICY_MAP[task]()


class MetaWorldEnv(BatchedEnv):
    """`crlab/MetaWorld{,Goal}-{task}-v0`: one MetaWorld env; `task_kwargs` may hold pixel options."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str = "push-v3", goal_conditioned: bool = False, render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        _check_task(task)
        super().__init__(make_task(_task_cls(task), 1, task=task, goal_conditioned=goal_conditioned, **task_kwargs),
                         render_mode)


class MetaWorldVectorEnv(BatchedVectorEnv):
    """Vector form of a crlab MetaWorld env: MetaWorld's step is mostly Python, so copies are stepped in worker
    processes, one per core (envs/subprocess_task.py); `workers=0` keeps them in this process."""

    def __init__(self, num_envs: int = 1, task: str = "push-v3", goal_conditioned: bool = False,
                 max_episode_steps: int | None = EPISODE_STEPS, render_mode: str | None = None,
                 workers: int | None = None, **task_kwargs: Any) -> None:
        _check_task(task)
        kwargs = {"task": task, "goal_conditioned": goal_conditioned, **task_kwargs}
        if workers == 0 or num_envs == 1:
            task_obj = make_task(_task_cls(task), num_envs, **kwargs)
        else:
            task_obj = SubprocessTask(partial(make_task, _task_cls(task)), num_envs, workers, **kwargs)
        super().__init__(task_obj, max_episode_steps, render_mode)
