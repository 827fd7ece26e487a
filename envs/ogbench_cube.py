"""OGBench's cube-single and cube-double (Park et al. 2024, `ogbench` 1.2.2) as crlab goal envs,
`crlab/OGBenchCubeSingle-v0` and `crlab/OGBenchCubeDouble-v0` (`cubes=1 | 2`), and their offline datasets generated
locally with OGBench's own oracles (`collect_ogbench`).

A UR5e arm with a Robotiq gripper moves one or two cubes on a table. Observation `{observation (19 + 9 x cubes,):
OGBench's state observation (arm joints and velocities, effector position / yaw, gripper; per cube its position,
quaternion, yaw), achieved_goal (3 x cubes,): the cubes' positions in OGBench's scaled coordinates
((xyz - (0.425, 0, 0)) x 10, its "oracle representation"), desired_goal (3 x cubes,): the evaluation task's goals in
the same coordinates}`. Success is OGBench's own (every cube within 0.04 m of its goal, 0.4 scaled units), and an
episode ends there (terminate_at_goal, as OGBench evaluates); the reward is sparse 0 / -1 on it (`compute_reward`,
vectorized, for HER). Copy i plays OGBench evaluation task ((task_id - 1 + i) mod 5) + 1, so an evaluation env of 5k
copies covers the five tasks equally (`task_id=None`: a random one of the five per episode). Episodes are OGBench's:
200 steps (single), 500 (double).

OGBench itself conditions on whole goal observations; crlab's agents condition on the cube position, the oracle
representation that OGBench provides for analysis. Data (`collect_ogbench`) follow data_gen_scripts/
generate_manipspace.py: episodes of 1001 steps in `data_collection` mode, a new target whenever the oracle is done
(cube-double: a stacking target with probability p_stack ~ U(0, 0.25) per episode);
`play` uses the plan oracle (noise 0.1, smoothing 0.5), `noisy` the Markov oracle with per-episode noise
xi ~ U(0, 0.1) on (x, y, z, yaw x 3, gripper x 10) and 10 % random actions.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from tqdm import tqdm

from envs.batched import BatchedEnv, BatchedVectorEnv, Obs
from envs.mujoco_batch import load_triton_first
from envs.pixels import make_task
from envs.suite import SuiteTask

CENTER, SCALE = np.array([0.425, 0.0, 0.0]), 10.0  # OGBench's observation scaling of positions
PROPRIO, PER_CUBE = 19, 9  # OGBench's observation: 19 arm / gripper entries, then 9 per cube (position first)
CUBE = slice(PROPRIO, PROPRIO + 3)  # the first cube's scaled position
SUCCESS_RADIUS = 0.04 * SCALE
NUM_TASKS = 5
# crlab id -> (OGBench env, cubes, evaluation episode steps: OGBench's)
OGBENCH_ENVS = {"crlab/OGBenchCubeSingle-v0": ("cube-single-v0", 1, 200),
                "crlab/OGBenchCubeDouble-v0": ("cube-double-v0", 2, 500)}
CUBES = {cubes: name for name, cubes, _ in OGBENCH_ENVS.values()}  # cubes -> OGBench env
EPISODE_STEPS = {cubes: steps for _, cubes, steps in OGBENCH_ENVS.values()}  # cubes -> evaluation episode steps
DATA_EPISODE_STEPS = 1001  # OGBench's dataset episodes


def cube_positions(observations: np.ndarray, cubes: int) -> np.ndarray:
    """The cubes' scaled positions (..., 3 x cubes) out of OGBench observations (..., 19 + 9 x cubes)."""
    return np.concatenate([observations[..., PROPRIO + PER_CUBE * i:PROPRIO + PER_CUBE * i + 3] for i in range(cubes)],
                          axis=-1)


def _check_cubes(cubes: int) -> str:
    if cubes not in CUBES:
        raise ValueError(f"cubes={cubes} is not an OGBench cube env crlab has: {sorted(CUBES)}")
    return CUBES[cubes]


def _ogbench_env(mode: str, cubes: int = 1, **kwargs: Any) -> gymnasium.Env:
    load_triton_first()  # ogbench's manipspace imports dm_control, which opens a Mesa EGL display at import
    import ogbench.manipspace  # noqa: F401  (registers cube-single-v0, cube-double-v0)

    env = gymnasium.make(_check_cubes(cubes), mode=mode, disable_env_checker=True, **kwargs).unwrapped
    env.metadata = {**env.metadata, "render_fps": 20}  # OGBench's control step is 0.05 s
    return env


class OGBenchCubeTask(SuiteTask):
    """N copies of OGBench's cube-single (`cubes=1`) or cube-double (`cubes=2`) in task mode, with goal-env
    observations."""

    camera = {"distance": 1.2, "azimuth": 180.0, "elevation": -35.0, "lookat": (0.425, 0.0, 0.05)}
    success_key = "success"
    default_threads = 1

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, cubes: int = 1, threads: int | None = None,
                 width: int = 480, height: int = 480) -> None:
        name = _check_cubes(cubes)
        if task_id is not None and not 1 <= task_id <= NUM_TASKS:
            raise ValueError(f"task_id={task_id} is not an OGBench {name} task: 1..{NUM_TASKS} or None (random)")
        self.task_id, self.cubes = task_id, cubes
        # OGBench sizes the model's offscreen framebuffer from width / height (200 x 200 by default): pass crlab's
        super().__init__(num_envs, lambda: _ogbench_env("task", cubes, terminate_at_goal=True, width=width,
                                                        height=height), threads, width, height)
        box = lambda n: spaces.Box(-np.inf, np.inf, (n,), np.float64)  # noqa: E731
        self.observation_space = spaces.Dict({"observation": box(PROPRIO + PER_CUBE * cubes),
                                              "achieved_goal": box(3 * cubes), "desired_goal": box(3 * cubes)})

    def reset_env(self, copy: int, seed: int | None) -> Obs:
        env = self.envs[copy]
        options = None if self.task_id is None else {"task_id": (self.task_id - 1 + copy) % NUM_TASKS + 1}
        obs, _ = env.reset(seed=seed, options=options)
        return self.convert_obs(obs, copy)

    def convert_obs(self, obs: Obs, copy: int | None = None) -> Obs:
        return goal_obs(np.asarray(obs, dtype=np.float64), self.envs[0 if copy is None else copy], self.cubes)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        _, terminated, info = super().step(actions)
        for i, result in enumerate(self._results):  # each copy's desired goal is its own task's
            self._obs[i] = goal_obs(np.asarray(result[0], dtype=np.float64), self.envs[i], self.cubes)
        obs = self.observe()  # the goal-env reward (0 / -1), as compute_reward gives it for the same goals
        return self.compute_reward(obs["achieved_goal"], obs["desired_goal"], None), terminated, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """OGBench's success as a sparse reward: 0 when every cube is within SUCCESS_RADIUS of its goal else -1, any
        leading batch shape."""
        return -(self._distances(achieved_goal, desired_goal) > SUCCESS_RADIUS).any(-1).astype(np.float64)

    def _distances(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        """Each cube's distance to its goal (..., cubes), in scaled units."""
        gap = (np.asarray(achieved_goal) - np.asarray(desired_goal)).reshape(*np.shape(achieved_goal)[:-1], self.cubes, 3)
        return np.linalg.norm(gap, axis=-1)

    def describe(self, copy: int) -> str:
        obs = self._obs[copy]
        metres = ", ".join(f"{d / SCALE:.2f}" for d in self._distances(obs["achieved_goal"], obs["desired_goal"]))
        return f"The cube{'s are' if self.cubes > 1 else ' is'} {metres} m from {'their goals' if self.cubes > 1 else 'its goal'}."


def goal_obs(observation: np.ndarray, env: gymnasium.Env, cubes: int = 1) -> dict[str, np.ndarray]:
    """OGBench's observation -> the goal-env dict, the desired goals read from the env's target markers (the mocap
    bodies OGBench measures success against: cube i's goal, whatever order the task permuted the cubes into)."""
    targets = np.asarray([env._data.mocap_pos[env._cube_target_mocap_ids[i]] for i in range(cubes)])
    return {"observation": observation, "achieved_goal": cube_positions(observation, cubes),
            "desired_goal": ((targets - CENTER) * SCALE).reshape(-1)}


class OGBenchCubeEnv(BatchedEnv):
    """`crlab/OGBenchCubeSingle-v0` / `crlab/OGBenchCubeDouble-v0`: one copy (a batch of one)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, task_id: int | None = 1, cubes: int = 1, render_mode: str | None = None,
                 **task_kwargs: Any) -> None:
        super().__init__(make_task(OGBenchCubeTask, 1, task_id=task_id, cubes=cubes, **task_kwargs), render_mode)


class OGBenchCubeVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/OGBenchCubeSingle-v0` / `crlab/OGBenchCubeDouble-v0`."""

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, cubes: int = 1,
                 max_episode_steps: int | None = None, render_mode: str | None = None, **task_kwargs: Any) -> None:
        steps = EPISODE_STEPS[cubes] if max_episode_steps is None and cubes in EPISODE_STEPS else max_episode_steps
        super().__init__(make_task(OGBenchCubeTask, num_envs, task_id=task_id, cubes=cubes, **task_kwargs), steps,
                         render_mode)


def collect_ogbench(kind: str, episodes: int, seed: int, noise: float = 0.1, p_random_action: float | None = None,
                    episode_steps: int = DATA_EPISODE_STEPS, cubes: int = 1,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """OGBench's data collection for cube-single / cube-double (generate_manipspace.py): `kind` play | noisy;
    returns the agents.goal_dataset step fields, achieved goals being the cubes' scaled positions."""
    load_triton_first()  # as _ogbench_env: before dm_control's EGL display
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

    if kind not in ("play", "noisy"):
        raise ValueError(f"kind={kind!r} is not an OGBench dataset kind: play | noisy")
    name = _check_cubes(cubes)
    p_random = (0.1 if kind == "noisy" else 0.0) if p_random_action is None else p_random_action
    np.random.seed(seed)  # OGBench's oracles and its collection loop draw from numpy's global generator
    env = gymnasium.make(name, terminate_at_goal=False, mode="data_collection",
                         max_episode_steps=episode_steps, disable_env_checker=True)
    env.action_space.seed(seed)
    oracle = (CubeMarkovOracle(env=env, min_norm=0.4) if kind == "noisy"
              else CubePlanOracle(env=env, noise=noise, noise_smoothing=0.5))
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "next_observations", "terminals")}
    for episode in tqdm(range(episodes), unit="episode", desc=f"{name[:-3]} {kind}", disable=not progress):
        ob, info = env.reset(seed=seed + episode)
        p_stack = 0.0 if cubes == 1 else np.random.uniform(0.0, 0.25)  # OGBench's, per episode (double)
        xi = np.random.uniform(0, noise) if kind == "noisy" else 0.0
        oracle.reset(ob, info)
        done = False
        while not done:
            if np.random.rand() < p_random:
                action = env.action_space.sample()
            else:
                action = np.array(oracle.select_action(ob, info))
                if kind == "noisy":
                    action = action + np.random.normal(0, [xi, xi, xi, xi * 3, xi * 10], action.shape)
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if oracle.done:
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=p_stack)
                oracle.reset(agent_ob, agent_info)
            for key, value in (("observations", ob), ("actions", action), ("next_observations", next_ob),
                               ("terminals", done)):
                rows[key].append(np.asarray(value))
            ob = next_ob
    env.close()
    data = {k: np.stack(v) for k, v in rows.items()}
    data["achieved_goals"] = cube_positions(data["observations"], cubes)
    data["next_achieved_goals"] = cube_positions(data["next_observations"], cubes)
    return data
