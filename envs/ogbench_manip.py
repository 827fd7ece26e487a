"""OGBench's manipulation envs (Park et al. 2024, `ogbench` 1.2.2) as crlab goal envs: cube-single and cube-double
(`crlab/OGBenchCubeSingle-v0`, `crlab/OGBenchCubeDouble-v0`, `cubes=1 | 2`) and scene (`crlab/OGBenchScene-v0`), and
their offline datasets generated locally with OGBench's own oracles (`collect_ogbench`).

A UR5e arm with a Robotiq gripper moves one or two cubes on a table. Observation `{observation (19 + 9 x cubes,):
OGBench's state observation (arm joints and velocities, effector position / yaw, gripper; per cube its position,
quaternion, yaw), achieved_goal (3 x cubes,): the cubes' positions in OGBench's scaled coordinates
((xyz - (0.425, 0, 0)) x 10, its "oracle representation"), desired_goal (3 x cubes,): the evaluation task's goals in
the same coordinates}`. Success is OGBench's own (every cube within 0.04 m of its goal, 0.4 scaled units), and an
episode ends there (terminate_at_goal, as OGBench evaluates); the reward is sparse 0 / -1 on it (`compute_reward`,
vectorized, for HER). Copy i plays OGBench evaluation task ((task_id - 1 + i) mod 5) + 1, so an evaluation env of 5k
copies covers the five tasks equally (`task_id=None`: a random one of the five per episode). Episodes are OGBench's:
200 steps (single), 500 (double), 750 (scene).

Scene adds two lock buttons, a drawer and a window to one cube: observation (40,), goals (7,) in OGBench's oracle
representation (cube position, the two buttons' states 0 / 1, drawer x 18, window x 15), success all of OGBench's
rules at once (cube within 0.04 m, both buttons in their goal states, drawer and window within 0.04 m).

OGBench itself conditions on whole goal observations; crlab's agents condition on the oracle representation that
OGBench provides for analysis. Data (`collect_ogbench`) follow data_gen_scripts/generate_manipspace.py: episodes of
1001 steps in `data_collection` mode, a new target whenever the oracle is done (cube-double: a stacking target with
probability p_stack ~ U(0, 0.25) per episode; scene: a random one of cube / button / drawer / window, each with its own
oracle, and an episode in which the cube leaves the visible table is collected again); `play` uses the plan oracles
(noise 0.1, smoothing 0.5), `noisy` the Markov oracles with per-episode noise xi ~ U(0, 0.1) on
(x, y, z, yaw x 3, gripper x 10) and 10 % random actions.
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
# crlab id -> (OGBench env, evaluation episode steps: OGBench's)
OGBENCH_ENVS = {"crlab/OGBenchCubeSingle-v0": ("cube-single-v0", 200),
                "crlab/OGBenchCubeDouble-v0": ("cube-double-v0", 500),
                "crlab/OGBenchScene-v0": ("scene-v0", 750)}
CUBES = {1: "cube-single-v0", 2: "cube-double-v0"}  # cubes -> OGBench cube env
EPISODE_STEPS = dict(OGBENCH_ENVS.values())  # OGBench env -> evaluation episode steps
DATA_EPISODE_STEPS = 1001  # OGBench's dataset episodes
# Scene's observation (40,) holds its oracle representation at these entries: the cube's scaled position, each
# button's state (the 1-entry of its one-hot), the drawer (x 18) and the window (x 15); success (OGBench's
# _compute_successes) is each part within its tolerance in those units
SCENE_OBS, SCENE_GOAL = 40, [19, 20, 21, 29, 33, 36, 38]
DRAWER_SCALE, WINDOW_SCALE = 18.0, 15.0
SCENE_TOLERANCE = np.array([0.5, 0.5, 0.04 * DRAWER_SCALE, 0.04 * WINDOW_SCALE])  # buttons, drawer, window


def cube_positions(observations: np.ndarray, cubes: int) -> np.ndarray:
    """The cubes' scaled positions (..., 3 x cubes) out of OGBench observations (..., 19 + 9 x cubes)."""
    return np.concatenate([observations[..., PROPRIO + PER_CUBE * i:PROPRIO + PER_CUBE * i + 3] for i in range(cubes)],
                          axis=-1)


def oracle_goals(observations: np.ndarray, name: str) -> np.ndarray:
    """OGBench's oracle goal representation (..., goal_dim) of observations (..., obs_dim) of OGBench env `name`."""
    if name == "scene-v0":
        return observations[..., SCENE_GOAL]
    return cube_positions(observations, {v: k for k, v in CUBES.items()}[name])


def _check_cubes(cubes: int) -> str:
    if cubes not in CUBES:
        raise ValueError(f"cubes={cubes} is not an OGBench cube env crlab has: {sorted(CUBES)}")
    return CUBES[cubes]


def _ogbench_env(name: str, mode: str, **kwargs: Any) -> gymnasium.Env:
    load_triton_first()  # ogbench's manipspace imports dm_control, which opens a Mesa EGL display at import
    import ogbench.manipspace  # noqa: F401  (registers cube-single-v0, cube-double-v0, scene-v0)

    env = gymnasium.make(name, mode=mode, disable_env_checker=True, **kwargs).unwrapped
    env.metadata = {**env.metadata, "render_fps": 20}  # OGBench's control step is 0.05 s
    return env


class TaskGoalStep:
    """OGBench tasks as goal envs: after each step every copy's observation is converted with its own task's goal,
    and the reward is the goal-env reward (0 / -1) that compute_reward gives for the same goals."""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        _, terminated, info = super().step(actions)
        for i, result in enumerate(self._results):  # each copy's desired goal is its own task's
            self._obs[i] = self.convert_obs(result[0], i)
        obs = self.observe()  # the goal-env reward (0 / -1), as compute_reward gives it for the same goals
        return self.compute_reward(obs["achieved_goal"], obs["desired_goal"], None), terminated, info


class OGBenchCubeTask(TaskGoalStep, SuiteTask):
    """N copies of OGBench's cube-single (`cubes=1`) or cube-double (`cubes=2`) in task mode, with goal-env
    observations."""

    camera = {"distance": 1.2, "azimuth": 180.0, "elevation": -35.0, "lookat": (0.425, 0.0, 0.05)}
    success_key = "success"
    default_threads = 1

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, cubes: int = 1, threads: int | None = None,
                 width: int = 480, height: int = 480) -> None:
        self.cubes = cubes
        self._make_copies(_check_cubes(cubes), PROPRIO + PER_CUBE * cubes, 3 * cubes, num_envs, task_id, threads,
                          width, height)

    def _make_copies(self, name: str, obs_dim: int, goal_dim: int, num_envs: int, task_id: int | None,
                     threads: int | None, width: int, height: int) -> None:
        if task_id is not None and not 1 <= task_id <= NUM_TASKS:
            raise ValueError(f"task_id={task_id} is not an OGBench {name} task: 1..{NUM_TASKS} or None (random)")
        self.name, self.task_id = name, task_id
        # OGBench sizes the model's offscreen framebuffer from width / height (200 x 200 by default): pass crlab's
        super().__init__(num_envs, lambda: _ogbench_env(name, "task", terminate_at_goal=True, width=width,
                                                        height=height), threads, width, height)
        box = lambda n: spaces.Box(-np.inf, np.inf, (n,), np.float64)  # noqa: E731
        self.observation_space = spaces.Dict({"observation": box(obs_dim), "achieved_goal": box(goal_dim),
                                              "desired_goal": box(goal_dim)})

    def reset_env(self, copy: int, seed: int | None) -> Obs:
        env = self.envs[copy]
        options = None if self.task_id is None else {"task_id": (self.task_id - 1 + copy) % NUM_TASKS + 1}
        obs, _ = env.reset(seed=seed, options=options)
        return self.convert_obs(obs, copy)

    def convert_obs(self, obs: Obs, copy: int | None = None) -> Obs:
        observation = np.asarray(obs, dtype=np.float64)
        return {"observation": observation, "achieved_goal": oracle_goals(observation, self.name),
                "desired_goal": self.desired_goal(self.envs[0 if copy is None else copy])}

    def desired_goal(self, env: gymnasium.Env) -> np.ndarray:
        """The task's goal (goal_dim,), read from the env's target markers (the mocap bodies OGBench measures success
        against: cube i's goal, whatever order the task permuted the cubes into)."""
        targets = np.asarray([env._data.mocap_pos[env._cube_target_mocap_ids[i]] for i in range(self.cubes)])
        return ((targets - CENTER) * SCALE).reshape(-1)

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


class OGBenchSceneTask(OGBenchCubeTask):
    """N copies of OGBench's scene in task mode: goals (7,) are the cube's position, the buttons' states, the drawer
    and the window, in OGBench's oracle representation."""

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, threads: int | None = None, width: int = 480,
                 height: int = 480) -> None:
        self.cubes = 1
        self._make_copies("scene-v0", SCENE_OBS, len(SCENE_GOAL), num_envs, task_id, threads, width, height)

    def desired_goal(self, env: gymnasium.Env) -> np.ndarray:
        """The task's goal (7,): cube target marker, target button states, target drawer and window positions."""
        return np.r_[super().desired_goal(env), env._target_button_states, env._target_drawer_pos * DRAWER_SCALE,
                     env._target_window_pos * WINDOW_SCALE].astype(np.float64)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """OGBench's scene success as a sparse reward: 0 when the cube, both buttons, the drawer and the window are
        each at their goal (within tolerance) else -1, any leading batch shape."""
        achieved_goal, desired_goal = np.asarray(achieved_goal), np.asarray(desired_goal)
        cube_ok = self._distances(achieved_goal[..., :3], desired_goal[..., :3])[..., 0] <= SUCCESS_RADIUS
        rest_ok = (np.abs(achieved_goal[..., 3:] - desired_goal[..., 3:]) <= SCENE_TOLERANCE).all(-1)
        return -(~(cube_ok & rest_ok)).astype(np.float64)

    def describe(self, copy: int) -> str:
        obs = self._obs[copy]
        achieved, goal = obs["achieved_goal"], obs["desired_goal"]
        cube = self._distances(achieved[:3], goal[:3])[0] / SCALE
        wrong = [f"button {i}" for i in (0, 1) if abs(achieved[3 + i] - goal[3 + i]) > 0.5]
        wrong += [part for part, i in (("drawer", 5), ("window", 6)) if abs(achieved[i] - goal[i]) > SCENE_TOLERANCE[i - 3]]
        return f"The cube is {cube:.2f} m from its goal; {', '.join(wrong) or 'nothing else'} not at its goal."


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
        steps = EPISODE_STEPS.get(CUBES.get(cubes)) if max_episode_steps is None else max_episode_steps
        super().__init__(make_task(OGBenchCubeTask, num_envs, task_id=task_id, cubes=cubes, **task_kwargs), steps,
                         render_mode)


class OGBenchSceneEnv(BatchedEnv):
    """`crlab/OGBenchScene-v0`: one copy (a batch of one)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, task_id: int | None = 1, render_mode: str | None = None, **task_kwargs: Any) -> None:
        super().__init__(make_task(OGBenchSceneTask, 1, task_id=task_id, **task_kwargs), render_mode)


class OGBenchSceneVectorEnv(BatchedVectorEnv):
    """Vector form of `crlab/OGBenchScene-v0`."""

    def __init__(self, num_envs: int = 1, task_id: int | None = 1, max_episode_steps: int | None = None,
                 render_mode: str | None = None, **task_kwargs: Any) -> None:
        steps = EPISODE_STEPS["scene-v0"] if max_episode_steps is None else max_episode_steps
        super().__init__(make_task(OGBenchSceneTask, num_envs, task_id=task_id, **task_kwargs), steps, render_mode)


def _oracles(name: str, kind: str, env: gymnasium.Env, noise: float) -> dict[str, Any]:
    """OGBench's oracles for env `name` by target task, as generate_manipspace.py builds them: Markov (noisy) or plan
    (play)."""
    from ogbench.manipspace.oracles.markov import button_markov, cube_markov, drawer_markov, window_markov
    from ogbench.manipspace.oracles.plan import button_plan, cube_plan, drawer_plan, window_plan

    if kind == "noisy":
        if name != "scene-v0":
            return {"cube": cube_markov.CubeMarkovOracle(env=env, min_norm=0.4)}
        return {"cube": cube_markov.CubeMarkovOracle(env=env, min_norm=0.4, max_step=100),
                "button": button_markov.ButtonMarkovOracle(env=env, min_norm=0.4),
                "drawer": drawer_markov.DrawerMarkovOracle(env=env, min_norm=0.4),
                "window": window_markov.WindowMarkovOracle(env=env, min_norm=0.4)}
    plans = {"cube": cube_plan.CubePlanOracle, "button": button_plan.ButtonPlanOracle,
             "drawer": drawer_plan.DrawerPlanOracle, "window": window_plan.WindowPlanOracle}
    return {task: plan(env=env, noise=noise, noise_smoothing=0.5)
            for task, plan in plans.items() if name == "scene-v0" or task == "cube"}


def _scene_healthy(qpos: np.ndarray) -> bool:
    """generate_manipspace.py's check of a scene episode (qpos (T, nq)): the cube stays on the visible table (not too
    far right; too far left only inside the drawer)."""
    cube = qpos[:, 14:17]
    return not ((cube[:, 1] >= 0.29).any() or ((cube[:, 1] <= -0.3) & ((cube[:, 2] < 0.06) | (cube[:, 2] > 0.08))).any())


def collect_ogbench(kind: str, episodes: int, seed: int, noise: float = 0.1, p_random_action: float | None = None,
                    episode_steps: int = DATA_EPISODE_STEPS, name: str = "cube-single-v0",
                    progress: bool = False) -> dict[str, np.ndarray]:
    """OGBench's data collection (generate_manipspace.py) for OGBench env `name` (cube-single-v0 | cube-double-v0 |
    scene-v0), `kind` play | noisy; returns the agents.goal_dataset step fields, achieved goals being the oracle
    representation."""
    load_triton_first()  # as _ogbench_env: before dm_control's EGL display
    import ogbench.manipspace  # noqa: F401  (registers the envs)

    if kind not in ("play", "noisy"):
        raise ValueError(f"kind={kind!r} is not an OGBench dataset kind: play | noisy")
    if name not in EPISODE_STEPS:
        raise ValueError(f"name={name!r} is not an OGBench env crlab has: {' | '.join(EPISODE_STEPS)}")
    p_random = (0.1 if kind == "noisy" else 0.0) if p_random_action is None else p_random_action
    np.random.seed(seed)  # OGBench's oracles and its collection loop draw from numpy's global generator
    env = gymnasium.make(name, terminate_at_goal=False, mode="data_collection",
                         max_episode_steps=episode_steps, disable_env_checker=True)
    env.action_space.seed(seed)
    oracles = _oracles(name, kind, env, noise)
    fields = ("observations", "actions", "next_observations", "terminals")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in fields}
    retries = 0
    for episode in tqdm(range(episodes), unit="episode", desc=f"{name[:-3]} {kind}", disable=not progress):
        while True:  # scene: an episode whose cube leaves the visible table is collected again, as OGBench does
            ob, info = env.reset(seed=seed + episode + 100_000 * retries)
            # OGBench's stacking probability per episode: none for one cube, U(0, 0.25) for two, 0.5 otherwise
            p_stack = 0.0 if name == "cube-single-v0" else np.random.uniform(0.0, 0.25) if name == "cube-double-v0" else 0.5
            xi = np.random.uniform(0, noise) if kind == "noisy" else 0.0
            oracle = oracles[info["privileged/target_task"]]
            oracle.reset(ob, info)
            episode_rows: dict[str, list[np.ndarray]] = {k: [] for k in fields}
            qpos = []
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
                    oracle = oracles[agent_info["privileged/target_task"]]
                    oracle.reset(agent_ob, agent_info)
                for key, value in zip(fields, (ob, action, next_ob, done)):
                    episode_rows[key].append(np.asarray(value))
                qpos.append(info["prev_qpos"])
                ob = next_ob
            if name != "scene-v0" or _scene_healthy(np.asarray(qpos)):
                break
            retries += 1
        for key in fields:
            rows[key] += episode_rows[key]
    env.close()
    data = {k: np.stack(v) for k, v in rows.items()}
    data["achieved_goals"] = oracle_goals(data["observations"], name)
    data["next_achieved_goals"] = oracle_goals(data["next_observations"], name)
    return data
