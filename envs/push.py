"""Push: a round pusher on x/y slides pushes a block across a walled table to a goal position.

GoalEnv convention (gymnasium-robotics), as in reach: observations are dicts
`{observation (19,), achieved_goal (2,), desired_goal (2,)}` where the goals are the block's centre on the table
plane (x, y) in metres, `compute_reward` is vectorized (dense: minus the block-to-goal distance; a pusher-to-block
term is left out because SB3's HER relabels with empty infos: it is in `info["pusher_distance"]` for shaping), and success is a block-to-goal distance below
`SUCCESS_DISTANCE`. Actions (2,) in [-1, 1] set the pusher's target velocity (x, y), up to 0.5 m/s.
`observation` = [qpos (9): pusher x, y, block position (3) and quaternion (4); qvel (8): pusher (2), block (6);
block - pusher (x, y) (2)]. Pixel observations, frame stacking and action repeat: see `envs/pixels.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.batched import BatchedEnv, BatchedVectorEnv
from envs.goal_task import SUCCESS_DISTANCE, MujocoGoalTask, goal_distance
from envs.pixels import make_task

ASSET = Path(__file__).parent / "assets" / "push.xml"
BLOCK_HALF_SIZE = 0.025
BLOCK_RANGE = 0.1  # block starts uniform in [-0.1, 0.1]^2
GOAL_RANGE = 0.2  # goal uniform in [-0.2, 0.2]^2, at least MIN_GOAL_DISTANCE from the block
MIN_GOAL_DISTANCE = 0.1
PUSHER_RANGE = 0.25  # pusher starts uniform in [-0.25, 0.25]^2, at least MIN_PUSHER_DISTANCE from the block
MIN_PUSHER_DISTANCE = 0.08


class PushTask(MujocoGoalTask):
    """N push tables in one MuJoCo model."""

    effector_indices = (0, 1)  # observation[0:2]: the pusher's x, y (the effector slots of envs/goal_space.py)
    behind_offset = 0.05  # where a straight push leaves the pusher: block half-size 0.025 + pusher radius 0.02, + 5 mm

    def __init__(self, num_envs: int = 1, reward_type: str = "sparse", frame_skip: int = 8, width: int = 240,
                 height: int = 240) -> None:
        super().__init__(ASSET, num_envs, reward_type, frame_skip, width, height, obs_dim=19)

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            rng = self.rngs[i]
            block = rng.uniform(-BLOCK_RANGE, BLOCK_RANGE, 2)
            goal = rng.uniform(-GOAL_RANGE, GOAL_RANGE, 2)
            while np.linalg.norm(goal - block) < MIN_GOAL_DISTANCE:
                goal = rng.uniform(-GOAL_RANGE, GOAL_RANGE, 2)
            pusher = rng.uniform(-PUSHER_RANGE, PUSHER_RANGE, 2)
            while np.linalg.norm(pusher - block) < MIN_PUSHER_DISTANCE:
                pusher = rng.uniform(-PUSHER_RANGE, PUSHER_RANGE, 2)
            qpos = np.array([*pusher, *block, BLOCK_HALF_SIZE, 1.0, 0.0, 0.0, 0.0])  # block upright on the table
            self.sim.qpos[i] = qpos + self.sim.qpos_origin[i]
            self.goal[i] = goal
        self.sim.qvel[copies] = 0.0
        self.sim.set_mocap_pos("goal", np.pad(self.goal[copies], ((0, 0), (0, 1))), copies)
        self.sim.forward()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        self.sim.step(self.control(actions), self.frame_skip)
        block = self.block()
        distance = goal_distance(block, self.goal)
        info = {
            "is_success": distance < SUCCESS_DISTANCE,
            "distance": distance,
            "pusher_distance": goal_distance(self.pusher(), block),
        }
        return self.compute_reward(block, self.goal, info), np.zeros(self.num_envs, dtype=bool), info

    def block(self) -> np.ndarray:
        """(N, 2) block centre on the table plane."""
        return self.sim.qpos[:, 2:4] - self.sim.qpos_origin[:, 2:4]

    def pusher(self) -> np.ndarray:
        """(N, 2) pusher centre."""
        return self.sim.qpos[:, 0:2].copy()

    def observe(self) -> dict[str, np.ndarray]:
        qpos, block = self.sim.qpos - self.sim.qpos_origin, self.block()
        return {
            "observation": np.concatenate([qpos, self.sim.qvel, block - self.pusher()], axis=1),
            "achieved_goal": block,
            "desired_goal": self.goal.copy(),
        }

    def render(self, copy: int) -> np.ndarray:
        return self.sim.render(copy, "top", self.width, self.height)

    def render_images(self, copies: np.ndarray, width: int, height: int) -> np.ndarray:
        """(K, height, width, 3) frames of `copies` from the top camera (pixel observations)."""
        return self.sim.render_copies(copies, "top", width, height)

    def render_goal_image(self, copy: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) frame of one copy with the block set square on its goal (the pusher stays put)."""
        qpos = self.sim.qpos[copy] - self.sim.qpos_origin[copy]
        qpos[2:9] = [*self.goal[copy], BLOCK_HALF_SIZE, 1.0, 0.0, 0.0, 0.0]
        return self.sim.render(copy, "top", width, height, qpos=qpos)

    def describe(self, copy: int) -> str:
        block, goal, pusher = self.block()[copy], self.goal[copy], self.pusher()[copy]
        distance = float(np.linalg.norm(goal - block))
        gap = max(float(np.linalg.norm(block - pusher)) - BLOCK_HALF_SIZE - 0.02, 0.0)  # 0.02: pusher radius
        contact = "the blue pusher touches it" if gap < 0.01 else f"the blue pusher is {gap:.2f} m from it"
        if distance < SUCCESS_DISTANCE:
            return f"The red block is on the green goal ({distance:.2f} m away); {contact}."
        return f"The green goal is {distance:.2f} m away, {_direction(goal - block)} the red block; {contact}."


def _direction(offset: np.ndarray) -> str:
    """'above and to the left of' for an (x, y) offset seen from the top camera (y up, x right)."""
    side = ("right" if offset[0] > 0 else "left") if abs(offset[0]) > 0.02 else ""
    height = ("above" if offset[1] > 0 else "below") if abs(offset[1]) > 0.02 else ""
    return " and ".join([height] * bool(height) + [f"to the {side} of"] * bool(side)) or "next to"


def scripted_action(observation: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """A hand-written pushing policy for a batch of `observation` (B, 19) and `desired_goal` (B, 2): go around to
    the block's side away from the goal, then push it along the block-to-goal line. Returns actions (B, 2)."""
    pusher, block = observation[:, 0:2], observation[:, 2:4]
    to_goal = desired_goal - block
    remaining = np.linalg.norm(to_goal, axis=1, keepdims=True)
    direction = to_goal / np.maximum(remaining, 1e-9)
    # pusher position in the block's frame: `along` the push line (negative: behind the block) and across it
    along = np.sum((pusher - block) * direction, axis=1, keepdims=True)
    across = (pusher - block) - along * direction
    offset = np.linalg.norm(across, axis=1, keepdims=True)
    perpendicular = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    side = np.where(offset < 1e-6, perpendicular, across / np.maximum(offset, 1e-9))  # pass on the pusher's side
    # not behind yet: head for a point beside and behind the block (a path that does not cut through it), then
    # for the contact point behind it; once there, push toward the goal while centring on the push line
    behind = block - 0.055 * direction  # block half-size 0.025 + pusher radius 0.02 + 0.01
    target = np.where(along > -0.04, block + 0.1 * side - 0.06 * direction, behind)
    velocity = 10.0 * (target - pusher)  # m/s, saturating at the 0.5 m/s actuator limit
    push = np.minimum(1.0, 10.0 * remaining) * 0.5 * direction - 10.0 * across
    velocity = np.where((along < -0.035) & (offset < 0.015), push, velocity)
    velocity = np.where(remaining < 0.02, 0.0, velocity)
    return np.clip(velocity / 0.5, -1.0, 1.0).astype(np.float32)


class PushEnv(BatchedEnv):
    """`crlab/Push-v0`: a single push table (a batch of one). `task_kwargs` may hold pixel options (envs/pixels.py)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # frame_skip=8 at 0.005 s; instances update it

    def __init__(self, reward_type: str = "sparse", render_mode: str | None = None, **task_kwargs: Any) -> None:
        super().__init__(make_task(PushTask, 1, reward_type=reward_type, **task_kwargs), render_mode)


class PushVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/Push-v0`: all tables in one MuJoCo model, stepped by one call."""

    def __init__(
        self,
        num_envs: int = 1,
        reward_type: str = "sparse",
        max_episode_steps: int | None = 100,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        task = make_task(PushTask, num_envs, reward_type=reward_type, **task_kwargs)
        super().__init__(task, max_episode_steps, render_mode)
