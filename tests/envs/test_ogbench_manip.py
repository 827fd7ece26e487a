"""OGBench cube-single, cube-double and scene as crlab goal envs: their five evaluation tasks, OGBench's success as
the goal reward, and datasets collected with OGBench's own oracles."""

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs.ogbench_manip import CENTER, CUBE, SCALE, collect_ogbench, cube_positions


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


def test_cube_double_needs_both_cubes_at_their_goals():
    env = gymnasium.make("crlab/OGBenchCubeDouble-v0", task_id=3)
    obs, _ = env.reset(seed=0)
    suite = env.unwrapped.task.envs[0]
    assert env.spec.max_episode_steps == 500 and obs["observation"].shape == (37,) and obs["desired_goal"].shape == (6,)
    targets = np.stack([suite._data.mocap_pos[suite._cube_target_mocap_ids[i]] for i in range(2)])
    np.testing.assert_allclose(obs["desired_goal"], ((targets - CENTER) * SCALE).reshape(-1))
    np.testing.assert_array_equal(obs["achieved_goal"], np.r_[obs["observation"][19:22], obs["observation"][28:31]])
    suite._data.joint("object_joint_0").qpos[:3] = targets[0]  # one cube home: OGBench's task is not done
    obs, reward, terminated, _, info = env.step(np.zeros(5))
    assert not info["is_success"] and not terminated and reward == -1.0
    suite._data.joint("object_joint_1").qpos[:3] = targets[1]
    obs, reward, terminated, _, info = env.step(np.zeros(5))
    assert info["is_success"] and terminated and reward == 0.0
    # compute_reward, batched: both cubes within the radius or -1
    goal = obs["desired_goal"]
    near, one_off = goal + 0.1, goal + np.r_[0.0, 0.0, 0.0, 0.5, 0.0, 0.0]
    np.testing.assert_array_equal(env.unwrapped.compute_reward(np.stack([near, one_off]), np.stack([goal, goal]), None),
                                  [0.0, -1.0])
    env.close()


def test_cube_double_collection_has_both_cubes_as_achieved_goals():
    data = collect_ogbench("noisy", episodes=1, seed=0, episode_steps=30, name="cube-double-v0")
    assert data["observations"].shape == (30, 37) and data["achieved_goals"].shape == (30, 6)
    np.testing.assert_array_equal(data["achieved_goals"], cube_positions(data["observations"], 2))
    with pytest.raises(ValueError, match=r"name='cube-triple-v0' .*cube-single-v0 \| cube-double-v0 \| scene-v0"):
        collect_ogbench("noisy", episodes=1, seed=0, name="cube-triple-v0")
    with pytest.raises(ValueError, match=r"cubes=3 .*\[1, 2\]"):
        gymnasium.make("crlab/OGBenchCubeDouble-v0", cubes=3)


def test_scene_goal_is_oracle_representation_and_success_needs_every_part():
    env = gymnasium.make("crlab/OGBenchScene-v0", task_id=3)  # rearrange: cube moved, a button, drawer, window
    obs, _ = env.reset(seed=0)
    suite = env.unwrapped.task.envs[0]
    assert env.spec.max_episode_steps == 750 and obs["observation"].shape == (40,) and obs["desired_goal"].shape == (7,)
    suite._use_oracle_rep = True  # OGBench's own oracle representation of this state: the achieved goal
    np.testing.assert_allclose(obs["achieved_goal"], suite.compute_oracle_observation())
    goal = suite.cur_task_info["goal"]
    np.testing.assert_allclose(obs["desired_goal"], np.r_[(goal["block_xyzs"][0] - CENTER) * SCALE, goal["button_states"],
                                                          goal["drawer_pos"] * 18, goal["window_pos"] * 15])
    # known answers: each part alone off its goal by just over its tolerance fails; just under, succeeds
    g = obs["desired_goal"]
    off = {"cube": [0.41, 0, 0, 0, 0, 0, 0], "button": [0, 0, 0, 0, 1, 0, 0], "drawer": [0, 0, 0, 0, 0, 0.73, 0],
           "window": [0, 0, 0, 0, 0, 0, 0.61]}
    near = np.array([0.39, 0, 0, 0, 0, 0.71, 0.59])
    rewards = env.unwrapped.compute_reward(np.stack([g + np.array(v) for v in off.values()] + [g + near]),
                                           np.stack([g] * 5), None)
    np.testing.assert_array_equal(rewards, [-1, -1, -1, -1, 0])
    # the task in OGBench's own terms: not solved at the start; set to the goal state, solved, and the episode ends
    _, reward, terminated, _, info = env.step(np.zeros(5))
    assert reward == -1.0 and not terminated and not info["is_success"]
    suite._data.joint("object_joint_0").qpos[:3] = goal["block_xyzs"][0]
    suite._data.joint("drawer_slide").qpos[0], suite._data.joint("window_slide").qpos[0] = goal["drawer_pos"], goal["window_pos"]
    suite._cur_button_states = goal["button_states"].copy()
    obs, reward, terminated, _, info = env.step(np.zeros(5))
    assert info["is_success"] and terminated and reward == 0.0
    assert "nothing else" in env.unwrapped.task.describe(0)
    env.close()


def test_scene_collection_switches_oracles_and_keeps_oracle_goals():
    data = collect_ogbench("play", episodes=1, seed=0, episode_steps=300, name="scene-v0")
    assert data["observations"].shape == (300, 40) and data["achieved_goals"].shape == (300, 7)
    np.testing.assert_array_equal(data["achieved_goals"], data["observations"][:, [19, 20, 21, 29, 33, 36, 38]])
    # the play oracles change more than the cube in 300 steps: a button, the drawer or the window moved
    assert np.ptp(data["achieved_goals"][:, 3:], axis=0).max() > 0.5
