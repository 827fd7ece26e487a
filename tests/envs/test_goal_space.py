"""Goal spaces (envs/goal_space.py): extended goals, the task's own reward and success, commands per step."""

import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from envs.goal_space import GOAL_SPACES, GoalSpace, goal_space_of


def test_push_behind_asks_for_the_effector_short_of_the_goal_on_the_line_from_the_block():
    space = GoalSpace("push_behind", 2, (0, 1), 0.05)
    desired, block = np.array([[0.3, 0.4], [0.1, 0.1]]), np.array([[0.0, 0.0], [0.1, 0.1]])
    np.testing.assert_allclose(space.command(desired, block), [[0.3, 0.4, 0.27, 0.36], [0.1, 0.1, 0.1, 0.1]])
    torch.testing.assert_close(space.command(torch.tensor(desired), torch.tensor(block)),
                               torch.tensor([[0.3, 0.4, 0.27, 0.36], [0.1, 0.1, 0.1, 0.1]], dtype=torch.float64))
    both = GoalSpace("object_and_effector", 2, (0, 1))
    np.testing.assert_allclose(both.command(desired, block), desired[:, [0, 1, 0, 1]])
    obs = np.arange(10.0)[None].repeat(2, 0)
    np.testing.assert_allclose(both.achieved(obs, block), [[0.0, 0.0, 0.0, 1.0], [0.1, 0.1, 0.0, 1.0]])
    assert GoalSpace("object", 2).command(desired, block) is desired


@pytest.mark.parametrize("env_id, task_dim", [("crlab/Push-v0", 2), ("crlab/FetchPush-v0", 3)])
@pytest.mark.parametrize("name", GOAL_SPACES)
def test_a_goal_space_keeps_the_task_reward_and_success(env_id, task_dim, name):
    """Same seed, same actions: the extended env's reward, success and task goals equal the plain env's; its
    compute_reward on hand-built extended goals reads the task part only (effector slots never earn reward)."""
    plain, extended = gymnasium.make(env_id), gymnasium.make(env_id, goal_space=name)
    o1, _ = plain.reset(seed=3)
    o2, _ = extended.reset(seed=3)
    width = task_dim if name == "object" else 2 * task_dim
    assert extended.observation_space["desired_goal"].shape == (width,) == o2["desired_goal"].shape
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, plain.action_space.shape).astype(np.float32)
        o1, r1, _, _, i1 = plain.step(a)
        o2, r2, _, _, i2 = extended.step(a)
        assert r1 == r2 and i1["is_success"] == i2["is_success"]
        np.testing.assert_allclose(o2["achieved_goal"][:task_dim], o1["achieved_goal"])
        np.testing.assert_allclose(o2["desired_goal"][:task_dim], o1["desired_goal"])
    goal = o2["desired_goal"]
    near, far = goal.copy(), goal.copy()
    near[:task_dim] += 0.01
    far[:task_dim] += 0.2
    if width > task_dim:
        near[task_dim:] += 1.0  # a far-off effector slot changes nothing
    rewards = extended.unwrapped.compute_reward(np.stack([near, far]), np.stack([goal, goal]), {})
    np.testing.assert_array_equal(rewards, [0.0, -1.0])


def test_a_push_behind_command_follows_the_block_at_every_step():
    env = gymnasium.make_vec("crlab/Push-v0", num_envs=2, goal_space="push_behind")
    space = goal_space_of(env)
    assert space is not None and space.name == "push_behind" and space.effector_indices == (0, 1)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        obs, *_ = env.step(np.ones((2, 2), dtype=np.float32))
        block, goal = obs["achieved_goal"][:, :2], obs["desired_goal"][:, :2]
        np.testing.assert_allclose(obs["desired_goal"], space.command(goal, block))
        np.testing.assert_allclose(obs["achieved_goal"][:, 2:], obs["observation"][:, 0:2])
    env.close()


def test_an_env_without_an_effector_offers_the_object_space_only():
    with pytest.raises(ValueError, match="goal_space='push_behind' needs an env that declares its effector"):
        gymnasium.make("crlab/Reach-v0", goal_space="push_behind")
    with pytest.raises(ValueError, match="goal_space='sideways' is not one of"):
        gymnasium.make("crlab/Push-v0", goal_space="sideways")
    assert goal_space_of(gymnasium.make("crlab/Push-v0")) is None


def test_every_goal_agent_sees_the_same_spaces_on_a_goal_space_env():
    from scripts.run_setup import agent_from_config, compose_config, give_goal_space, make_envs

    seen = {}
    for agent in ("crl", "sb3_sac", "sb3_tqc"):
        cfg = compose_config("train", [f"agent={agent}", "env=push", "env.num_envs=2"])
        env = make_envs(cfg, 2)
        built = agent_from_config(cfg, env.single_observation_space, env.single_action_space, 2, torch.device("cpu"))
        give_goal_space(built, env)
        seen[agent] = env.single_observation_space
        env.close()
    assert seen["crl"] == seen["sb3_sac"] == seen["sb3_tqc"]
    assert seen["crl"]["desired_goal"].shape == (4,)  # env=push: goal_space=push_behind for every agent


def test_the_env_modules_import_without_torch():
    """A worker process that steps envs (MetaWorld's vector form, AsyncVectorEnv's workers) imports an env module;
    torch's import cost each such worker 2-3 s on a 2-core machine while goal spaces imported it. Goal spaces take
    tensors all the same (above). Only the MJX env and the tensor / text-embedding helpers need torch."""
    modules = ["envs.dmc", "envs.fetch", "envs.flight_preference", "envs.instruction_feedback", "envs.maze",
               "envs.meta_world", "envs.negotiation", "envs.ogbench_manip", "envs.ogbench_maze", "envs.push", "envs.reach",
               "envs.recorder", "envs.scripted", "envs.subprocess_task", "envs.vector"]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["False"], (result.stdout, result.stderr[-2000:])
