"""OGBench cube-single as a crlab goal env: its five evaluation tasks, OGBench's success as the goal reward, and
datasets collected with OGBench's own oracles."""

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs.ogbench_cube import CENTER, CUBE, SCALE, collect_ogbench


def test_copies_cover_the_five_tasks_and_spaces_hold():
    env = gymnasium.make_vec("crlab/OGBenchCubeSingle-v0", num_envs=5)
    obs, _ = env.reset(seed=0)
    tasks = env.unwrapped.task.envs
    goals = np.stack([(t.cur_task_info["goal_xyzs"][0] - CENTER) * SCALE for t in tasks])
    np.testing.assert_allclose(obs["desired_goal"], goals)
    assert sorted(t.cur_task_id for t in tasks) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"][:, CUBE])
    assert env.single_observation_space["observation"].shape == (28,) and env.single_action_space.shape == (5,)
    env.close()


def test_cube_at_its_goal_is_a_success_with_reward_zero_and_ends_the_episode():
    env = gymnasium.make("crlab/OGBenchCubeSingle-v0", task_id=2)
    obs, _ = env.reset(seed=0)
    suite = env.unwrapped.task.envs[0]
    _, reward, terminated, _, info = env.step(np.zeros(5))
    assert reward == -1.0 and not terminated and not info["is_success"]
    suite._data.joint("object_joint_0").qpos[:3] = suite.cur_task_info["goal_xyzs"][0]
    obs, reward, terminated, _, info = env.step(np.zeros(5))
    assert info["is_success"] and terminated and reward == 0.0
    assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], None)
    env.close()


def test_ogbench_collection_writes_whole_episodes_of_the_oracle():
    data = collect_ogbench("noisy", episodes=2, seed=0, episode_steps=40)
    assert data["actions"].shape == (80, 5) and data["terminals"].nonzero()[0].tolist() == [39, 79]
    np.testing.assert_array_equal(data["achieved_goals"], data["observations"][:, CUBE])
    np.testing.assert_array_equal(data["next_observations"][:39], data["observations"][1:40])
    assert np.abs(data["actions"]).max() <= 1.0
    with pytest.raises(ValueError, match="play | noisy"):
        collect_ogbench("expert", episodes=1, seed=0)


def test_render_at_crlab_size():
    # OGBench's model has a 200 x 200 offscreen framebuffer unless told otherwise: crlab's 480 x 480 frame must fit
    env = gymnasium.make("crlab/OGBenchCubeSingle-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.std() > 0
