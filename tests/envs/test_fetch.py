import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401
from envs.fetch import scripted_reach_action


def _success_rate(env, policy, episodes, seed=0):
    successes = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            done = terminated or truncated
        successes.append(bool(info["is_success"]))
    return np.mean(successes)


def test_spaces_and_episode_length():
    env = gymnasium.make("crlab/FetchPush-v0")
    obs, _ = env.reset(seed=0)
    assert {k: v.shape for k, v in obs.items()} == {"observation": (25,), "achieved_goal": (3,), "desired_goal": (3,)}
    assert env.action_space.shape == (4,) and env.spec.max_episode_steps == 50
    assert env.metadata["render_fps"] == 25  # 20 substeps of 0.002 s


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_vectorized_compute_reward_matches_step_reward(reward_type):
    env = gymnasium.make("crlab/FetchPush-v0", reward_type=reward_type)
    obs, _ = env.reset(seed=1)
    achieved, desired, rewards = [], [], []
    for action in np.random.default_rng(0).uniform(-1, 1, (30, 4)).astype(np.float32):
        obs, reward, *_ = env.step(action)
        achieved.append(obs["achieved_goal"]), desired.append(obs["desired_goal"]), rewards.append(reward)
    batch = env.unwrapped.compute_reward(np.array(achieved), np.array(desired), [{}] * 30)
    np.testing.assert_allclose(batch, rewards)
    if reward_type == "sparse":
        at_goal = env.unwrapped.compute_reward(np.array(desired), np.array(desired), None)
        np.testing.assert_array_equal(at_goal, 0.0)


def test_scripted_reach_beats_random():
    env = gymnasium.make("crlab/FetchReach-v0")
    scripted = _success_rate(env, lambda o: scripted_reach_action(o["observation"][None], o["desired_goal"][None])[0], 5)
    rng = np.random.default_rng(0)
    random = _success_rate(env, lambda o: rng.uniform(-1, 1, 4).astype(np.float32), 5)
    assert scripted == 1.0 and random <= 0.4


def test_describe_names_the_block_and_goal():
    env = gymnasium.make("crlab/FetchPickAndPlace-v0")
    obs, _ = env.reset(seed=0)
    text = env.unwrapped.describe()
    assert f"{np.linalg.norm(obs['desired_goal'] - obs['achieved_goal']):.2f} m from the red goal" in text


def test_unknown_task_lists_the_choices():
    with pytest.raises(ValueError, match="Reach"):
        gymnasium.make("crlab/FetchPush-v0", task="Pick")
