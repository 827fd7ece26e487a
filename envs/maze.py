"""PointMaze (U-maze, medium, large) and AntMaze (U-maze) from gymnasium-robotics as crlab envs.

`crlab/PointMaze-{UMaze,Medium,Large}-v0` wrap `PointMaze_*-v3` (a force-driven ball, actions (2,), observation
(4,) = position and velocity); `crlab/AntMaze-UMaze-v0` wraps `AntMaze_UMaze-v5` (a quadruped, actions (8,),
observation (105,)). GoalEnv dict observations; the goal is an xy position, success within 0.45 of it; rewards and
episode ends are gymnasium-robotics' own (`reward_type` sparse: 1 at the goal, dense: exp(-distance);
`continuing_task`, `reset_target` pass through). Goal images show the agent at the goal, seen from above.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium_robotics  # noqa: F401  (registers the maze ids)
import mujoco
import numpy as np

from envs.batched import BatchedEnv, BatchedVectorEnv
from envs.pixels import make_task
from envs.suite import GoalImageMixin, SuiteTask, unwrapped_maker

MAZES = {  # crlab name -> (suite id, episode steps)
    "PointMaze-UMaze": ("PointMaze_UMaze-v3", 300),
    "PointMaze-Medium": ("PointMaze_Medium-v3", 600),
    "PointMaze-Large": ("PointMaze_Large-v3", 800),
    "AntMaze-UMaze": ("AntMaze_UMaze-v5", 700),
}


class MazeTask(GoalImageMixin, SuiteTask):
    """N copies of one gymnasium-robotics maze."""

    success_key = "success"

    def __init__(self, num_envs: int = 1, maze: str = "PointMaze-UMaze", threads: int | None = None,
                 width: int = 480, height: int = 480, **maze_kwargs: Any) -> None:
        if maze not in MAZES:
            raise ValueError(f"maze={maze!r} is not one of {sorted(MAZES)}")
        self.maze_name = maze
        # The point's step is mostly Python: threads would only add overhead. The ant's physics dominates.
        self.default_threads = 1 if maze.startswith("PointMaze") else None
        super().__init__(num_envs, unwrapped_maker(MAZES[maze][0], **maze_kwargs), threads, width, height)
        for env in self.envs:  # gymnasium-robotics writes each copy's maze XML to the temp folder and keeps it there
            Path(env.tmp_xml_file_path).unlink(missing_ok=True)  # the model is loaded: the file is no longer read
        layout = self.envs[0].maze
        extent = max(layout.map_length, layout.map_width) * layout.maze_size_scaling
        self.camera = {"distance": 1.2 * extent, "azimuth": 90.0, "elevation": -90.0, "lookat": (0.0, 0.0, 0.0)}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """gymnasium-robotics' own reward, any leading batch shape (HER relabelling)."""
        return self.envs[0].compute_reward(achieved_goal, desired_goal, info)

    def frame_data(self, copy: int, goal: bool) -> mujoco.MjData:
        self.envs[copy].update_target_site_pos()  # the goal marker follows the goal (a visual-only model field)
        return super().frame_data(copy, goal)

    def pose_at_goal(self, copy: int, data: mujoco.MjData) -> None:
        data.qpos[:2] = self.envs[copy].goal  # the ball's slides / the ant's free joint start with x, y

    def describe(self, copy: int) -> str:
        env, obs = self.envs[copy], self._obs[copy]
        agent = "ball" if self.maze_name.startswith("PointMaze") else "ant"
        here, goal = obs["achieved_goal"], obs["desired_goal"]
        cell, goal_cell = env.maze.cell_xy_to_rowcol(here), env.maze.cell_xy_to_rowcol(goal)
        steps = len(shortest_cell_path(env.maze.maze_map, tuple(cell), tuple(goal_cell))) - 1
        return (f"The {agent} is in cell ({cell[0]}, {cell[1]}), {np.linalg.norm(goal - here):.2f} m from the goal "
                f"in cell ({goal_cell[0]}, {goal_cell[1]}), {steps} cells away along the corridors.")


def shortest_cell_path(maze_map: list[list[Any]], start: tuple[int, int], goal: tuple[int, int]) -> list[tuple]:
    """Breadth-first shortest path of free cells (row, col) from `start` to `goal`, both included ([start] if
    there is none)."""
    parent: dict[tuple, tuple | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = [cell]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            return path[::-1]
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in parent and 0 <= nxt[0] < len(maze_map) and 0 <= nxt[1] < len(maze_map[0]) \
                    and maze_map[nxt[0]][nxt[1]] != 1:
                parent[nxt] = cell
                queue.append(nxt)
    return [start]


def shortest_path_action(maze: Any, observation: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """A PD controller for PointMaze along the shortest corridor path: `maze` is the env's `Maze`, observation
    (4,) position and velocity, goal (2,). Returns the (2,) action."""
    here, velocity = observation[:2], observation[2:4]
    path = shortest_cell_path(maze.maze_map, tuple(maze.cell_xy_to_rowcol(here)),
                              tuple(maze.cell_xy_to_rowcol(desired_goal)))
    target = desired_goal if len(path) <= 1 else maze.cell_rowcol_to_xy(np.array(path[1]))
    return np.clip(10.0 * (target - here) - 1.0 * velocity, -1.0, 1.0).astype(np.float32)


class MazeEnv(BatchedEnv):
    """`crlab/{PointMaze,AntMaze}-*-v0`: one maze (a batch of one); `task_kwargs` may hold pixel options."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, maze: str = "PointMaze-UMaze", render_mode: str | None = None, **task_kwargs: Any) -> None:
        super().__init__(make_task(MazeTask, 1, maze=maze, **task_kwargs), render_mode)


class MazeVectorEnv(BatchedVectorEnv):
    """Vector form of a crlab maze (see envs/suite.py)."""

    def __init__(self, num_envs: int = 1, maze: str = "PointMaze-UMaze", max_episode_steps: int | None = None,
                 render_mode: str | None = None, **task_kwargs: Any) -> None:
        steps = MAZES[maze][1] if max_episode_steps is None and maze in MAZES else max_episode_steps
        super().__init__(make_task(MazeTask, num_envs, maze=maze, **task_kwargs), steps, render_mode)
