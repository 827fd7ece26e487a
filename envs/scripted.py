"""Hand-written policies of crlab's envs, for recording reference rollouts (`scripts.record policy=scripted|noisy`)
and for datasets: one function per env family, looked up from the env itself.

    Reach          damped least-squares inverse kinematics (envs/reach.py)
    Push           go behind the block, push it along the block-to-goal line (envs/push.py)
    FetchReach     proportional control of the gripper (envs/fetch.py)
    PointMaze-*    a PD controller along the shortest corridor path (envs/maze.py)
    MetaWorld*     MetaWorld's own scripted policy of the task (metaworld.policies)
    text games     the oracle action under the hidden reward

Every policy maps one observation of a single (state-observation) env to one action; `noisy_policy` adds Gaussian
noise to Box actions (clipped to the bounds) or, for Discrete actions, a uniformly random action with probability
`noise` (epsilon-greedy).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium
import numpy as np

Policy = Callable[[Any], Any]  # one observation -> one action
HAS_SCRIPTED = ("crlab/Reach-v0", "crlab/Push-v0", "crlab/FetchReach-v0", "crlab/PointMaze-*", "crlab/MetaWorld*",
                "crlab/Negotiation-v0", "crlab/FlightPreference-v0", "crlab/InstructionFeedback-v0")


def _batch(x: np.ndarray) -> np.ndarray:
    return np.asarray(x)[None]


def scripted_policy(env: gymnasium.Env) -> Policy:
    """The hand-written policy of a single crlab env; ValueError naming the envs that have one otherwise."""
    from envs.fetch import FetchEnv, scripted_reach_action
    from envs.maze import MazeEnv, shortest_path_action
    from envs.meta_world import MetaWorldEnv
    from envs.meta_world import scripted_policy as meta_world_policy
    from envs.push import PushEnv
    from envs.push import scripted_action as push_action
    from envs.reach import ReachEnv
    from envs.reach import scripted_action as reach_action
    from envs.text_game import TextGameEnv

    base = env.unwrapped
    name = env.spec.id if env.spec is not None else type(base).__name__
    if isinstance(env.observation_space, gymnasium.spaces.Dict) and "pixels" in env.observation_space.spaces:
        raise ValueError(f"policy=scripted reads state observations; {name} gives pixels (use obs_type=state)")
    task = getattr(base, "task", None)
    if isinstance(base, ReachEnv):
        return lambda o: reach_action(_batch(o["observation"]), _batch(o["achieved_goal"]), _batch(o["desired_goal"]))[0]
    if isinstance(base, PushEnv):
        # the block's goal: the first two coordinates of a desired goal in any goal space (envs/goal_space.py)
        return lambda o: push_action(_batch(o["observation"]), _batch(o["desired_goal"][:2]))[0]
    if isinstance(base, FetchEnv) and task.task_name == "Reach":
        return lambda o: scripted_reach_action(_batch(o["observation"]), _batch(o["desired_goal"]))[0]
    if isinstance(base, MazeEnv) and task.maze_name.startswith("PointMaze"):
        maze = task.envs[0].maze
        return lambda o: shortest_path_action(maze, o["observation"], o["desired_goal"])
    if isinstance(base, MetaWorldEnv):
        policy = meta_world_policy(task.task_name)
        if task.goal_conditioned:  # the goal form splits MetaWorld's (39,) observation: put it back together
            return lambda o: policy.get_action(np.concatenate([o["observation"], o["desired_goal"]])).astype(np.float32)
        return lambda o: policy.get_action(o).astype(np.float32)
    if isinstance(base, TextGameEnv):
        return lambda o: base.oracle_action()
    raise ValueError(f"{name} has no scripted policy; envs with one: {', '.join(HAS_SCRIPTED)}")


def noisy_policy(policy: Policy, action_space: gymnasium.Space, noise: float, rng: np.random.Generator) -> Policy:
    """`policy` with exploration noise: N(0, noise²) added to Box actions (clipped to the bounds), or a uniformly
    random Discrete action with probability `noise`."""
    if isinstance(action_space, gymnasium.spaces.Discrete):
        def discrete(obs: Any) -> Any:
            if rng.random() < noise:
                return int(action_space.start + rng.integers(action_space.n))
            return policy(obs)
        return discrete
    if isinstance(action_space, gymnasium.spaces.Box):
        def box(obs: Any) -> np.ndarray:
            action = np.asarray(policy(obs), dtype=np.float32)
            return np.clip(action + noise * rng.standard_normal(action.shape), action_space.low,
                           action_space.high).astype(action_space.dtype)
        return box
    raise ValueError(f"noisy policies need Box or Discrete actions, not {action_space}")


def random_policy(action_space: gymnasium.Space, seed: int) -> Policy:
    """Uniformly random actions from the action space, seeded."""
    action_space.seed(seed)
    return lambda obs: action_space.sample()
