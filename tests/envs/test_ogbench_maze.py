"""OGBench's PointMaze medium and large as crlab goal envs (its five evaluation tasks, its success rule as the goal
reward, its BFS oracle reaching every task), and its locomaze data protocols, navigate and stitch."""

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from agents.goal_dataset import episode_bounds
from envs.ogbench_maze import SUCCESS_RADIUS, bfs_steps, collect_locomaze, junction_cells, make_ogbench_maze, oracle_direction

IDS = {"medium": "crlab/OGBenchPointMaze-Medium-v0", "large": "crlab/OGBenchPointMaze-Large-v0"}


@pytest.fixture(scope="module")
def medium():
    """A bare OGBench pointmaze-medium, for its cell geometry and BFS."""
    env = make_ogbench_maze("pointmaze-medium-v0")
    yield env.unwrapped
    env.close()


@pytest.mark.parametrize("maze", ["medium", "large"])
def test_copies_cover_the_five_tasks_and_spaces_hold(maze):
    env = gymnasium.make_vec(IDS[maze], num_envs=5)
    obs, _ = env.reset(seed=0)
    suites = env.unwrapped.task.envs
    assert [s.cur_task_id for s in suites] == [1, 2, 3, 4, 5] and env.unwrapped.spec.max_episode_steps == 1000
    for i, suite in enumerate(suites):  # OGBench's jitter: within a quarter cell (1.0) of the task's cell centres
        task = suite.task_infos[i]
        assert np.abs(obs["desired_goal"][i] - task["goal_xy"]).max() <= 1.0
        assert np.abs(obs["observation"][i] - task["init_xy"]).max() <= 1.0
        np.testing.assert_array_equal(obs["desired_goal"][i], suite.cur_goal_xy)
    np.testing.assert_array_equal(obs["achieved_goal"], obs["observation"])
    space = env.single_observation_space
    assert all(space[k].shape == (2,) for k in ("observation", "achieved_goal", "desired_goal"))
    assert env.single_action_space.shape == (2,) and env.single_action_space.high.max() == 1.0
    again, _ = env.reset(seed=0)  # seeded: the jitter comes from each copy's own generator
    np.testing.assert_array_equal(again["desired_goal"], obs["desired_goal"])
    other, _ = env.reset(seed=1)
    assert not np.array_equal(other["observation"], obs["observation"])
    env.close()


def test_reward_is_ogbench_success_within_one_unit_batched():
    env = gymnasium.make(IDS["medium"])
    goal = np.zeros((2, 3, 2))
    achieved = np.zeros((2, 3, 2))
    achieved[0, :, 0] = [0.0, 0.99, 1.01]
    achieved[1, :, 1] = [-1.01, 0.5, 2.0]
    np.testing.assert_array_equal(env.unwrapped.compute_reward(achieved, goal, None), [[0, 0, -1], [-1, 0, -1]])
    env.close()


@pytest.mark.parametrize("maze", ["medium", "large"])
def test_the_oracle_reaches_every_evaluation_task(maze):
    for task_id in range(1, 6):
        env = gymnasium.make(IDS[maze], task_id=task_id)
        obs, _ = env.reset(seed=task_id)
        suite = env.unwrapped.task.envs[0]
        _, reward, terminated, _, info = env.step(np.zeros(2))  # standing still at the start is no success
        assert reward == -1.0 and not terminated and not info["is_success"]
        for step in range(1, 1000):
            obs, reward, terminated, truncated, info = env.step(oracle_direction(suite))
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and reward == 0.0, (maze, task_id, step)
        assert np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]) <= SUCCESS_RADIUS
        env.close()


def test_render_describe_and_goal_image():
    env = gymnasium.make(IDS["medium"], task_id=1, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (480, 480, 3) and frame.std() > 0
    task = env.unwrapped.task
    # the point drawn at its goal: a different picture of the same maze
    assert (task.render_goal_image(0, 64, 64) != task.render_images(np.array([0]), 64, 64)[0]).any()
    assert env.unwrapped.describe().startswith("The point is in cell (1, 1)")
    assert "in cell (6, 6), 10 cells away" in env.unwrapped.describe()
    with pytest.raises(ValueError, match=r"maze='giant' .*medium \| large"):
        gymnasium.make(IDS["medium"], maze="giant")
    env.close()


def test_stitch_episodes_are_201_steps_toward_a_cell_four_steps_away(medium):
    data = collect_locomaze("stitch", episodes=30, seed=0)
    bounds = episode_bounds(data["terminals"])
    assert len(bounds) == 30 and (bounds[:, 1] - bounds[:, 0] == 201).all()
    settled = 0
    for start, end in bounds:
        goals = data["commanded_goals"][start:end]
        assert (goals == goals[0]).all()  # one goal per episode: reach it and stay
        steps = bfs_steps(medium, medium.xy_to_ij(data["observations"][start]))
        assert steps[medium.xy_to_ij(goals[0])] == 4
        visited = {medium.xy_to_ij(xy) for xy in data["observations"][start:end]}
        assert max(steps[c] for c in visited) <= 5  # a short segment: a few cells, never across the maze
        settled += medium.xy_to_ij(data["next_observations"][end - 1]) == medium.xy_to_ij(goals[0])
    assert settled >= 27  # the noisy expert ends in its goal cell nearly always
    np.testing.assert_array_equal(data["achieved_goals"], data["observations"])


def test_navigate_episodes_are_1001_steps_that_keep_reaching_junction_goals(medium):
    data = collect_locomaze("navigate", episodes=3, seed=0)
    bounds = episode_bounds(data["terminals"])
    assert (bounds[:, 1] - bounds[:, 0] == 1001).all()
    junctions = set(junction_cells(medium.maze_map))
    goals = data["commanded_goals"]
    for start, end in bounds:
        switches = start + np.flatnonzero((goals[start + 1:end] != goals[start:end - 1]).any(1))
        assert len(switches) >= 4  # long trajectories through several goals, not one
        # a goal changes exactly when the point has reached it (OGBench's success radius)
        gaps = np.linalg.norm(data["next_observations"][switches] - goals[switches], axis=1)
        assert (gaps <= SUCCESS_RADIUS).all()
        assert {medium.xy_to_ij(g) for g in goals[start:end]} <= junctions


def oracle_directions(maze, data):
    """The expert's direction (T, 2) at every row of `data`, recomputed from its position and commanded goal."""
    directions = []
    for xy, goal in zip(data["observations"], data["commanded_goals"]):
        maze.set_goal(goal_xy=goal)
        maze.set_xy(xy)
        directions.append(oracle_direction(maze))
    return np.stack(directions)


def test_actions_are_the_bfs_oracle_plus_gaussian_noise(medium):
    exact = collect_locomaze("stitch", episodes=2, seed=3, noise=0.0)
    np.testing.assert_allclose(exact["actions"], oracle_directions(medium, exact), atol=1e-6)
    noisy = collect_locomaze("navigate", episodes=1, seed=3)
    np.testing.assert_array_equal(collect_locomaze("navigate", episodes=1, seed=3)["actions"], noisy["actions"])
    residual = noisy["actions"] - oracle_directions(medium, noisy)
    assert np.abs(noisy["actions"]).max() <= 1.0
    assert 0.3 < residual.std() <= 0.5  # N(0, 0.5^2), shrunk only where clipping at +-1 cut it
    with pytest.raises(ValueError, match=r"kind='explore' .*navigate \| stitch"):
        collect_locomaze("explore", episodes=1, seed=0)
