"""Fetch Reach / Push / PickAndPlace / Slide (gymnasium-robotics v4) as crlab envs: `crlab/Fetch{Task}-v0`.

The HER and Contrastive-RL benchmark: a 7-DoF Fetch arm, actions (4,) in [-1, 1] (gripper xyz motion, finger
opening), GoalEnv dict observations `{observation (10,) or (25,), achieved_goal (3,), desired_goal (3,)}` and
gymnasium-robotics' own vectorized `compute_reward` (sparse 0 / -1 or dense -distance, success within 0.05 m).
Episodes are 50 steps. Push, PickAndPlace and Slide have goal images (the block drawn at the goal); Reach has none
(the achieved goal is the gripper, which only the arm's dynamics can move there).
"""

from __future__ import annotations

from typing import Any

import gymnasium_robotics  # noqa: F401  (registers the Fetch ids)
import mujoco
import numpy as np
from gymnasium_robotics.envs.fetch.fetch_env import DEFAULT_CAMERA_CONFIG

from envs.batched import BatchedEnv, BatchedVectorEnv
from envs.pixels import make_task
from envs.suite import GoalImageMixin, SuiteTask, unwrapped_maker

TASKS = ("Reach", "Push", "PickAndPlace", "Slide")
EPISODE_STEPS = 50


class FetchTask(SuiteTask):
    """N copies of gymnasium-robotics' `Fetch{task}-v4`."""

    camera = {k: (tuple(v) if k == "lookat" else v) for k, v in DEFAULT_CAMERA_CONFIG.items()}

    def __init__(self, num_envs: int = 1, task: str = "Push", reward_type: str = "sparse", threads: int | None = None,
                 width: int = 480, height: int = 480) -> None:
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not a Fetch task; choose from {TASKS}")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type={reward_type!r} is not one of ('sparse', 'dense')")
        self.task_name = task
        super().__init__(num_envs, unwrapped_maker(f"Fetch{task}-v4", reward_type=reward_type), threads, width,
                         height)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """gymnasium-robotics' own reward, any leading batch shape (HER relabelling)."""
        return self.envs[0].compute_reward(achieved_goal, desired_goal, info)

    def frame_data(self, copy: int, goal: bool) -> mujoco.MjData:
        # As gymnasium-robotics' _render_callback: draw the target site at the goal (a visual-only model field), placed
        # in its body's frame: the site's own world position is stale until the next physics step, so a second frame
        # without a step between would move the marker.
        model, data, env = self.model(copy), self.data(copy), self.envs[copy]
        target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "target0")
        body = model.site_bodyid[target]
        model.site_pos[target] = data.xmat[body].reshape(3, 3).T @ (env.goal - data.xpos[body])
        return super().frame_data(copy, goal)

    def describe(self, copy: int) -> str:
        obs = self._obs[copy]
        grip, goal = obs["observation"][:3], obs["desired_goal"]
        if self.task_name == "Reach":
            return f"The gripper is {np.linalg.norm(goal - grip):.2f} m from the red goal."
        block = obs["achieved_goal"]
        lifted = block[2] - self.envs[copy].height_offset
        height = f", {lifted:.2f} m above the table" if lifted > 0.01 else ""
        return (f"The block is {np.linalg.norm(goal - block):.2f} m from the red goal{height}; "
                f"the gripper is {np.linalg.norm(block - grip):.2f} m from the block.")


class FetchObjectTask(GoalImageMixin, FetchTask):
    """Fetch tasks whose achieved goal is the block: a goal image shows the block at the goal."""

    effector_indices = (0, 1, 2)  # observation[0:3]: the gripper's x, y, z (the effector slots of envs/goal_space.py)
    behind_offset = 0.05  # block half-size 0.025 + finger half-width ~0.02, + 5 mm

    def pose_at_goal(self, copy: int, data: mujoco.MjData) -> None:
        model = self.model(copy)
        adr = model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "object0:joint")]
        data.qpos[adr : adr + 3] = self.envs[copy].goal


def _task_cls(task: str) -> type[FetchTask]:
    return FetchTask if task == "Reach" else FetchObjectTask


def scripted_reach_action(observation: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """A proportional controller for FetchReach: (B, 10) observations, (B, 3) goals -> (B, 4) actions."""
    move = np.clip(10.0 * (desired_goal - observation[:, :3]), -1.0, 1.0)
    return np.concatenate([move, np.zeros((len(move), 1))], axis=1).astype(np.float32)


class FetchEnv(BatchedEnv):
    """`crlab/Fetch{task}-v0`: one Fetch env (a batch of one); `task_kwargs` may hold pixel options."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, task: str = "Push", reward_type: str = "sparse", render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        super().__init__(make_task(_task_cls(task), 1, task=task, reward_type=reward_type, **task_kwargs), render_mode)


class FetchVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/Fetch{task}-v0`: the copies stepped on a thread pool (see envs/suite.py)."""

    def __init__(self, num_envs: int = 1, task: str = "Push", reward_type: str = "sparse",
                 max_episode_steps: int | None = EPISODE_STEPS, render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        task_obj = make_task(_task_cls(task), num_envs, task=task, reward_type=reward_type, **task_kwargs)
        super().__init__(task_obj, max_episode_steps, render_mode)
