"""What the MuJoCo goal-reaching tasks share: the batched sim, GoalEnv spaces, the goal array, and the
vectorized sparse / dense goal reward of gymnasium-robotics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.batched import BatchedTask
from envs.mujoco_batch import BatchedMujoco

SUCCESS_DISTANCE = 0.05
REWARD_TYPES = ("sparse", "dense")


def goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis, any leading shape."""
    return np.linalg.norm(achieved_goal - desired_goal, axis=-1)


class MujocoGoalTask(BatchedTask):
    """N copies of a MuJoCo scene with dict observations {observation (obs_dim,), achieved_goal, desired_goal}
    and 2-D actions in [-1, 1] mapped onto the actuators' control ranges."""

    def __init__(self, asset: Path, num_envs: int, reward_type: str, frame_skip: int, width: int, height: int,
                 obs_dim: int, goal_dim: int = 2) -> None:
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type={reward_type!r} is not one of {REWARD_TYPES}")
        super().__init__(num_envs)
        self.reward_type = reward_type
        self.frame_skip = frame_skip
        self.width, self.height = width, height
        self.sim = BatchedMujoco(asset, num_envs)
        dt = self.sim.model.opt.timestep * frame_skip
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1.0 / dt))}
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64),
                "achieved_goal": spaces.Box(-np.inf, np.inf, (goal_dim,), np.float64),
                "desired_goal": spaces.Box(-np.inf, np.inf, (goal_dim,), np.float64),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (self.sim.nu,), np.float32)
        self.goal = np.zeros((num_envs, goal_dim))

    def control(self, actions: np.ndarray) -> np.ndarray:
        """Actions (N, nu) in [-1, 1] -> controls spanning each actuator's ctrlrange."""
        a = np.clip(actions, -1.0, 1.0)
        return self.sim.ctrl_low + 0.5 * (a + 1.0) * (self.sim.ctrl_high - self.sim.ctrl_low)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Sparse: 0 on success, -1 otherwise. Dense: minus the goal distance. Any leading batch shape; `info` is
        not read, so HER relabelling with empty infos is exact."""
        distance = goal_distance(achieved_goal, desired_goal)
        if self.reward_type == "sparse":
            return -(distance >= SUCCESS_DISTANCE).astype(np.float64)
        return -distance

    def close(self) -> None:
        self.sim.close()
