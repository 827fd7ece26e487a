from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium_robotics.envs.maze import maps

import envs  # noqa: F401
from envs.maze import shortest_cell_path, shortest_path_action


def test_shortest_cell_path_on_the_u_maze():
    # U_MAZE: free cells (1,1) (1,2) (1,3) / (2,3) / (3,1) (3,2) (3,3): around the U from one arm to the other
    path = shortest_cell_path(maps.U_MAZE, (1, 1), (3, 1))
    assert path == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    assert shortest_cell_path(maps.U_MAZE, (1, 1), (1, 1)) == [(1, 1)]
    assert shortest_cell_path(maps.U_MAZE, (1, 1), (0, 0)) == [(1, 1)]  # a wall: no path


def _success_rate(env, policy, episodes):
    successes = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        reached = False
        for _ in range(env.spec.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            reached |= bool(info["is_success"])
            if terminated or truncated:
                break
        successes.append(reached)
    return np.mean(successes)


def test_shortest_path_policy_solves_the_medium_maze_and_random_does_not():
    env = gymnasium.make("crlab/PointMaze-Medium-v0", continuing_task=False)
    maze = env.unwrapped.task.envs[0].maze
    scripted = _success_rate(env, lambda o: shortest_path_action(maze, o["observation"], o["desired_goal"]), 4)
    rng = np.random.default_rng(0)
    random = _success_rate(env, lambda o: rng.uniform(-1, 1, 2).astype(np.float32), 4)
    assert scripted == 1.0 and random <= 0.25


def test_compute_reward_is_vectorized_and_sparse_one_at_the_goal():
    env = gymnasium.make("crlab/PointMaze-UMaze-v0").unwrapped
    goal = np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(env.compute_reward(goal, goal + [[0.1, 0.0], [1.0, 0.0]], None), [1.0, 0.0])


def test_ant_maze_goal_image_puts_the_ant_on_the_goal():
    env = gymnasium.make("crlab/AntMaze-UMaze-v0", obs_type="state+pixels", image_size=48, goal_image=True)
    obs, _ = env.reset(seed=0)
    assert obs["observation"].shape == env.observation_space["observation"].shape
    assert not np.array_equal(obs["pixels"], obs["goal_image"])
    assert "ant" in env.unwrapped.describe()


def test_unknown_maze_lists_the_choices():
    with pytest.raises(ValueError, match="PointMaze-UMaze"):
        gymnasium.make("crlab/PointMaze-UMaze-v0", maze="PointMaze-Huge")


def test_maze_leaves_no_xml_in_the_temp_folder():
    # gymnasium-robotics writes every maze copy's model to a temp XML; crlab removes it once the model is loaded
    env = gymnasium.make_vec("crlab/PointMaze-UMaze-v0", num_envs=2)
    paths = [copy.tmp_xml_file_path for copy in env.unwrapped.task.envs]
    assert len(paths) == 2 and not any(Path(path).exists() for path in paths)
    env.reset(seed=0)
    env.step(env.action_space.sample())  # the loaded model still steps
