"""OGBench's PointMaze (Park et al. 2024, `ogbench` 1.2.2), medium and large, as crlab goal envs
(`crlab/OGBenchPointMaze-Medium-v0`, `crlab/OGBenchPointMaze-Large-v0`, `maze=medium | large`), and its locomaze
dataset protocols, "navigate" and "stitch", generated locally with OGBench's own BFS oracle (`collect_locomaze`).

A point mass in a maze of 4 x 4 cells: the action (2,) in [-1, 1] moves it by 0.2 x action per step (walls stop it).
Observation `{observation (2,): OGBench's observation, the point's xy; achieved_goal (2,): the same xy;
desired_goal (2,): the evaluation task's goal xy}`. OGBench's goals are whole observations, which here are the xy
position, so crlab's goals are OGBench's own. Success is OGBench's (within 1.0 of the goal, checked after the step)
and ends the episode (terminate_at_goal, as OGBench evaluates); the reward is sparse 0 / -1 on it (`compute_reward`,
vectorized, for HER). Copy i plays OGBench evaluation task ((task_id - 1 + i) mod 5) + 1, so an evaluation env of 5k
copies covers the five tasks equally (`task_id=None`: a random one of the five per episode). Start and goal are the
task's cells plus OGBench's uniform jitter of a quarter cell in x and y, drawn from the copy's seeded generator.
Episodes are OGBench's 1,000 steps.

Data (`collect_locomaze`) follow data_gen_scripts/generate_locomaze.py: OGBench's point expert moves toward the next
cell of the BFS shortest path (`get_oracle_subgoal`) at full speed, plus N(0, noise^2) on each action entry (noise
0.5 for PointMaze, data_gen_scripts/commands.sh), clipped to [-1, 1]. `navigate`: 1,001-step episodes from a random
free cell toward a random junction cell (a free cell that is not a straight corridor), a new junction goal each
time the current one is reached; OGBench makes 1,000 of them (1M steps). `stitch`: 201-step episodes from a random
free cell to a random cell 4 BFS steps away, staying there once reached; OGBench makes 5,000 of them (1M steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces
from tqdm import tqdm

from envs.batched import BatchedEnv, BatchedVectorEnv, Obs
from envs.mujoco_batch import load_triton_first
from envs.ogbench_manip import TaskGoalStep
from envs.pixels import make_task
from envs.suite import GoalImageMixin, SuiteTask

MAZES = {"medium": "pointmaze-medium-v0", "large": "pointmaze-large-v0"}  # crlab maze -> OGBench env
LOCOMAZE_ENVS = {"crlab/OGBenchPointMaze-Medium-v0": "pointmaze-medium-v0",  # crlab id -> OGBench env
                 "crlab/OGBenchPointMaze-Large-v0": "pointmaze-large-v0"}
EPISODE_STEPS = 1000  # OGBench's evaluation episodes (its registration of pointmaze-*-v0)
NUM_TASKS = 5
SUCCESS_RADIUS = 1.0  # OGBench's goal tolerance for the point (0.5 for the ant and humanoid)
# OGBench's locomaze protocols for the point: episode steps and episodes (data_gen_scripts/commands.sh)
PROTOCOLS = {"navigate": {"episode_steps": 1001, "episodes": 1000}, "stitch": {"episode_steps": 201, "episodes": 5000}}
NOISE = 0.5  # OGBench's action noise for PointMaze data
STITCH_CELLS = 4  # a stitch episode's goal is this many BFS steps from its start cell


def _check_maze(maze: str) -> str:
    if maze not in MAZES:
        raise ValueError(f"maze={maze!r} is not an OGBench PointMaze crlab has: {' | '.join(MAZES)}")
    return MAZES[maze]


def make_ogbench_maze(name: str, **kwargs: Any) -> gymnasium.Env:
    """OGBench's maze env `name` as `gymnasium.make` gives it (`.unwrapped` is the maze itself), its temporary model
    file removed once loaded."""
    load_triton_first()  # importing ogbench imports its manipspace, whose dm_control opens a Mesa EGL display
    import ogbench.locomaze  # noqa: F401  (registers pointmaze-*-v0)

    env = gymnasium.make(name, disable_env_checker=True, **kwargs)
    # OGBench writes each copy's maze XML to the temp folder and keeps it there; the model is loaded, so drop it
    Path(env.unwrapped.fullpath).unlink(missing_ok=True)
    return env


def jittered_cell(maze: Any, cell: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The centre of maze cell (row, col) plus OGBench's uniform noise (add_noise: up to a quarter cell in x and y),
    drawn from `rng`; returns xy (2,)."""
    spread = maze._noise * maze._maze_unit / 4
    return np.asarray(maze.ij_to_xy(cell), dtype=np.float64) + rng.uniform(-spread, spread, 2)


def oracle_direction(maze: Any) -> np.ndarray:
    """OGBench's point expert: the unit direction (2,) from the point toward the next cell of the BFS shortest path to
    the maze's current goal (`get_oracle_subgoal`; the goal cell's centre once inside it)."""
    here = maze.get_xy()
    subgoal, _ = maze.get_oracle_subgoal(here, np.asarray(maze.cur_goal_xy))
    step = subgoal - here
    return step / (np.linalg.norm(step) + 1e-6)


def free_cells(maze_map: np.ndarray) -> list[tuple[int, int]]:
    """Every free cell (row, col) of a maze map (1: wall, 0: free), row by row."""
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(maze_map == 0))]


def junction_cells(maze_map: np.ndarray) -> list[tuple[int, int]]:
    """The free cells that are not straight corridor cells (OGBench's "vertex cells", navigate's goals)."""
    def corridor(i: int, j: int) -> bool:
        up, down, left, right = maze_map[i - 1, j], maze_map[i + 1, j], maze_map[i, j - 1], maze_map[i, j + 1]
        return (up == down == 0 and left == right == 1) or (left == right == 0 and up == down == 1)
    return [cell for cell in free_cells(maze_map) if not corridor(*cell)]


def bfs_steps(maze: Any, start: tuple[int, int]) -> np.ndarray:
    """BFS steps (rows, cols) from cell `start` to every cell, -1 for walls (OGBench's own BFS)."""
    xy = np.asarray(maze.ij_to_xy(start), dtype=np.float64)
    return np.asarray(maze.get_oracle_subgoal(xy, xy)[1])


class OGBenchPointMazeTask(TaskGoalStep, GoalImageMixin, SuiteTask):
    """N copies of OGBench's pointmaze-medium (`maze=medium`) or pointmaze-large (`maze=large`) with goal-env
    observations."""

    success_key = "success"
    default_threads = 1  # the point's step is mostly Python: threads would only add overhead

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, maze: str = "medium", threads: int | None = None,
                 width: int = 480, height: int = 480) -> None:
        name = _check_maze(maze)
        if task_id is not None and not 1 <= task_id <= NUM_TASKS:
            raise ValueError(f"task_id={task_id} is not an OGBench {name} task: 1..{NUM_TASKS} or None (random)")
        self.name, self.task_id = name, task_id
        # OGBench sizes the model's offscreen framebuffer from width / height (200 x 200 by default): pass crlab's
        super().__init__(num_envs, lambda: make_ogbench_maze(name, terminate_at_goal=True, width=width,
                                                         height=height).unwrapped, threads, width, height)
        box = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        rows, cols = self.envs[0].maze_map.shape  # OGBench's own top-down view of the whole maze
        self.camera = {"distance": 5.0 * (cols - 2), "azimuth": 90.0, "elevation": -90.0,
                       "lookat": (2.0 * (cols - 3), 2.0 * (rows - 3), 0.0)}

    def reset_env(self, copy: int, seed: int | None) -> Obs:
        env, rng = self.envs[copy], self.rngs[copy]
        task = (self.task_id - 1 + copy) % NUM_TASKS + 1 if self.task_id is not None else int(rng.integers(1, 6))
        env.reset(seed=seed, options={"task_id": task})
        # OGBench jitters start and goal with numpy's global generator; draw the same jitter from the copy's own
        info = env.task_infos[task - 1]
        env.set_goal(goal_xy=jittered_cell(env, info["goal_ij"], rng))
        env.set_xy(jittered_cell(env, info["init_ij"], rng))
        return self.convert_obs(env.get_ob(), copy)

    def convert_obs(self, obs: Obs, copy: int | None = None) -> Obs:
        xy = np.asarray(obs, dtype=np.float64)
        goal = np.asarray(self.envs[0 if copy is None else copy].cur_goal_xy, dtype=np.float64)
        return {"observation": xy, "achieved_goal": xy.copy(), "desired_goal": goal}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """OGBench's success as a sparse reward: 0 within SUCCESS_RADIUS of the goal else -1, any leading batch
        shape (..., 2)."""
        gap = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
        return -(gap > SUCCESS_RADIUS).astype(np.float64)

    def pose_at_goal(self, copy: int, data: mujoco.MjData) -> None:
        data.qpos[:2] = self.envs[copy].cur_goal_xy

    def describe(self, copy: int) -> str:
        env, obs = self.envs[copy], self._obs[copy]
        here, goal = obs["achieved_goal"], obs["desired_goal"]
        cell, goal_cell = env.xy_to_ij(here), env.xy_to_ij(goal)
        steps = int(bfs_steps(env, goal_cell)[cell])
        return (f"The point is in cell ({cell[0]}, {cell[1]}), {np.linalg.norm(goal - here):.2f} from the goal in cell "
                f"({goal_cell[0]}, {goal_cell[1]}), {steps} cells away along the corridors.")


class OGBenchPointMazeEnv(BatchedEnv):
    """`crlab/OGBenchPointMaze-Medium-v0` / `crlab/OGBenchPointMaze-Large-v0`: one copy (a batch of one)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task_id: int | None = 1, maze: str = "medium", render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        super().__init__(make_task(OGBenchPointMazeTask, 1, task_id=task_id, maze=maze, **task_kwargs), render_mode)


class OGBenchPointMazeVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/OGBenchPointMaze-Medium-v0` / `crlab/OGBenchPointMaze-Large-v0`."""

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, maze: str = "medium",
                 max_episode_steps: int | None = None, render_mode: str | None = None, **task_kwargs: Any) -> None:
        steps = EPISODE_STEPS if max_episode_steps is None else max_episode_steps
        super().__init__(make_task(OGBenchPointMazeTask, num_envs, task_id=task_id, maze=maze, **task_kwargs), steps,
                         render_mode)


def collect_locomaze(kind: str, episodes: int, seed: int, name: str = "pointmaze-medium-v0", noise: float = NOISE,
                     episode_steps: int | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """OGBench's locomaze data collection (generate_locomaze.py) on PointMaze `name`, `kind` navigate | stitch;
    returns the agents.goal_dataset step fields (achieved goals: the xy positions) plus `commanded_goals` (T, 2), the
    goal the expert was heading for at each step (not part of the dataset layout)."""
    if kind not in PROTOCOLS:
        raise ValueError(f"kind={kind!r} is not an OGBench locomaze protocol crlab has: {' | '.join(PROTOCOLS)}")
    if name not in MAZES.values():
        raise ValueError(f"name={name!r} is not an OGBench PointMaze crlab has: {' | '.join(MAZES.values())}")
    steps = PROTOCOLS[kind]["episode_steps"] if episode_steps is None else episode_steps
    rng = np.random.default_rng(seed)
    env = make_ogbench_maze(name, terminate_at_goal=False, max_episode_steps=steps)
    maze = env.unwrapped
    starts, junctions = free_cells(maze.maze_map), junction_cells(maze.maze_map)
    fields = ("observations", "actions", "next_observations", "terminals", "commanded_goals")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in fields}
    for episode in tqdm(range(episodes), unit="episode", desc=f"{name[:-3]} {kind}", disable=not progress):
        start = starts[rng.integers(len(starts))]
        if kind == "navigate":
            goal = junctions[rng.integers(len(junctions))]
        else:  # a cell exactly STITCH_CELLS BFS steps away (the start itself where there is none, as OGBench)
            around = np.argwhere(bfs_steps(maze, start) == STITCH_CELLS)
            goal = tuple(int(v) for v in around[rng.integers(len(around))]) if len(around) else start
        env.reset(seed=seed if episode == 0 else None, options={"task_info": {"init_ij": start, "goal_ij": goal}})
        maze.set_goal(goal_xy=jittered_cell(maze, goal, rng))  # OGBench's jitter, from our own generator
        maze.set_xy(jittered_cell(maze, start, rng))
        ob, done = maze.get_ob(), False
        while not done:
            commanded = np.asarray(maze.cur_goal_xy, dtype=np.float64)
            action = np.clip(oracle_direction(maze) + rng.normal(0.0, noise, 2), -1.0, 1.0)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if kind == "navigate" and info["success"]:  # reached: head for a new junction from here
                maze.set_goal(goal_xy=jittered_cell(maze, junctions[rng.integers(len(junctions))], rng))
            for key, value in zip(fields, (ob, action, next_ob, done, commanded)):
                rows[key].append(np.asarray(value))
            ob = next_ob
    env.close()
    data = {k: np.stack(v) for k, v in rows.items()}
    data["achieved_goals"], data["next_achieved_goals"] = data["observations"].copy(), data["next_observations"].copy()
    return data
