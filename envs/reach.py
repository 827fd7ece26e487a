"""Reach: a planar two-link MuJoCo arm moves its fingertip to a goal position.

GoalEnv convention (gymnasium-robotics): observations are dicts
`{observation (8,), achieved_goal (2,), desired_goal (2,)}`; `compute_reward` is vectorized; success is a
fingertip-to-goal distance below `SUCCESS_DISTANCE`. Actions (2,) in [-1, 1] set the target joint speeds.
Pixel observations, frame stacking and action repeat: see `envs/pixels.py` (`obs_type="pixels"`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.batched import BatchedEnv, BatchedVectorEnv
from envs.goal_task import SUCCESS_DISTANCE, MujocoGoalTask, goal_distance
from envs.pixels import make_task

ASSET = Path(__file__).parent / "assets" / "reach.xml"
GOAL_RADIUS = (0.06, 0.28)  # the arm reaches 0.30 m; goals lie in this annulus around the shoulder
JOINT_RANGES = ((-np.pi, np.pi), (-2.5, 2.5))  # shoulder, elbow angles at reset (rad)
LINK_LENGTHS = (0.15, 0.15)  # as in reach.xml


class ReachTask(MujocoGoalTask):
    """N reach arms in one MuJoCo model."""

    def __init__(self, num_envs: int = 1, reward_type: str = "sparse", frame_skip: int = 4, width: int = 240,
                 height: int = 240) -> None:
        super().__init__(ASSET, num_envs, reward_type, frame_skip, width, height, obs_dim=8)

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            rng = self.rngs[i]
            self.sim.qpos[i] = [rng.uniform(*bounds) for bounds in JOINT_RANGES]
            radius, angle = rng.uniform(*GOAL_RADIUS), rng.uniform(-np.pi, np.pi)
            self.goal[i] = radius * np.cos(angle), radius * np.sin(angle)
        self.sim.qvel[copies] = 0.0
        self.sim.set_mocap_pos("goal", np.pad(self.goal[copies], ((0, 0), (0, 1))), copies)
        self.sim.forward()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        self.sim.step(self.control(actions), self.frame_skip)
        achieved = self.fingertip()
        distance = goal_distance(achieved, self.goal)
        reward = self.compute_reward(achieved, self.goal, None)
        info = {"is_success": distance < SUCCESS_DISTANCE, "distance": distance}
        return reward, np.zeros(self.num_envs, dtype=bool), info

    def fingertip(self) -> np.ndarray:
        """(N, 2) fingertip position in the arm's plane."""
        return self.sim.site_pos("fingertip")[:, :2]

    def observe(self) -> dict[str, np.ndarray]:
        q, qd, tip = self.sim.qpos, self.sim.qvel, self.fingertip()
        return {
            "observation": np.concatenate([np.cos(q), np.sin(q), qd, tip], axis=1),
            "achieved_goal": tip.copy(),
            "desired_goal": self.goal.copy(),
        }

    def render(self, copy: int) -> np.ndarray:
        return self.sim.render(copy, "top", self.width, self.height)

    def render_images(self, copies: np.ndarray, width: int, height: int) -> np.ndarray:
        """(K, height, width, 3) frames of `copies` from the top camera (pixel observations)."""
        return self.sim.render_copies(copies, "top", width, height)

    def render_goal_image(self, copy: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) frame of one copy with the fingertip on its goal (inverse kinematics, same elbow side)."""
        (l1, l2), (x, y) = LINK_LENGTHS, self.goal[copy]
        cos_elbow = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
        elbow = np.copysign(np.arccos(cos_elbow), np.sin(self.sim.qpos[copy, 1]))
        shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
        return self.sim.render(copy, "top", width, height, qpos=np.array([shoulder, elbow]))

    def describe(self, copy: int) -> str:
        tip, goal = self.fingertip()[copy], self.goal[copy]
        offset = goal - tip
        distance = float(np.linalg.norm(offset))
        if distance < SUCCESS_DISTANCE:
            return f"The fingertip is on the green goal ({distance:.2f} m away)."
        side = ("right" if offset[0] > 0 else "left") if abs(offset[0]) > 0.02 else ""
        height = ("above" if offset[1] > 0 else "below") if abs(offset[1]) > 0.02 else ""
        where = " and ".join([height] * bool(height) + [f"to the {side} of"] * bool(side))
        return f"The green goal is {distance:.2f} m away, {where} the fingertip."


REACH_LINKS = (0.15, 0.15)  # link lengths (m) of assets/reach.xml


def scripted_action(observation: np.ndarray, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """Actions (N, 2) moving the fingertip to its goal: damped least-squares inverse kinematics on the joint angles
    read from `observation` (N, obs_dim) (cos, sin of each joint at 0..3), fingertip and goal (N, 2)."""
    o = observation
    q1, q2 = np.arctan2(o[:, 2], o[:, 0]), np.arctan2(o[:, 3], o[:, 1])
    (l1, l2), s1, s12, c1, c12 = REACH_LINKS, np.sin(q1), np.sin(q1 + q2), np.cos(q1), np.cos(q1 + q2)
    jacobian = np.stack([np.stack([-l1 * s1 - l2 * s12, -l2 * s12], -1), np.stack([l1 * c1 + l2 * c12, l2 * c12], -1)], 1)
    error = desired_goal - achieved_goal
    jjt = jacobian @ jacobian.transpose(0, 2, 1) + 1e-3 * np.eye(2)
    joint_step = (jacobian.transpose(0, 2, 1) @ np.linalg.solve(jjt, error[..., None]))[..., 0]
    speed = joint_step / 0.2  # close the gap in ~5 env steps of 0.04 s; actions map [-1, 1] to [-4, 4] rad/s
    return np.clip(speed / 4.0, -1.0, 1.0).astype(np.float32)


class ReachEnv(BatchedEnv):
    """`crlab/Reach-v0`: a single reach arm (a batch of one). `task_kwargs` may hold pixel options (envs/pixels.py)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # frame_skip=4 at 0.01 s; instances update it

    def __init__(self, reward_type: str = "sparse", render_mode: str | None = None, **task_kwargs: Any) -> None:
        super().__init__(make_task(ReachTask, 1, reward_type=reward_type, **task_kwargs), render_mode)


class ReachVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/Reach-v0`: all copies in one MuJoCo model, stepped by one call."""

    def __init__(
        self,
        num_envs: int = 1,
        reward_type: str = "sparse",
        max_episode_steps: int | None = 50,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        task = make_task(ReachTask, num_envs, reward_type=reward_type, **task_kwargs)
        super().__init__(task, max_episode_steps, render_mode)
