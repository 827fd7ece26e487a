import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.dmc import CURL_ACTION_REPEAT, TASKS, DMCVectorEnv

SMALL = {"render_size": 16, "image_size": 16}  # rendering dominates the cost; tests do not need 100x100


def env_id(domain, task):
    return f"crlab/DMC-{domain}-{task}-v0"


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out, rewards = [obs], []
    for a in actions:
        obs, reward, *_ = env.step(a)
        out.append(obs), rewards.append(reward)
    return out, rewards


@pytest.mark.parametrize("domain,task", [("cartpole", "swingup"), ("reacher", "easy")])
def test_check_env(domain, task):
    env = gymnasium.make(env_id(domain, task), render_mode="rgb_array", **SMALL)
    check_env(env.unwrapped, skip_render_check=False)
    assert env.spec.max_episode_steps is None  # the env truncates itself at dm_control's time limit


@pytest.mark.parametrize("domain,task", TASKS)
def test_default_spaces_action_repeat_and_describe(domain, task):
    env = gymnasium.make(env_id(domain, task), render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (9, 100, 100), np.uint8)
    assert obs.shape == (9, 100, 100) and obs.dtype == np.uint8 and obs.std() > 0
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
    task_ = env.unwrapped.task
    assert task_.image_size == 84 and task_.action_repeat == CURL_ACTION_REPEAT[domain]
    assert task_.episode_steps == 1000 // CURL_ACTION_REPEAT[domain]
    frame = env.render()
    assert frame.shape == (100, 100, 3) and frame.dtype == np.uint8
    assert isinstance(env.unwrapped.describe(), str) and len(env.unwrapped.describe()) > 10
    env.close()


def test_frame_stack_is_oldest_first_and_render_is_newest_frame():
    env = gymnasium.make(env_id("reacher", "easy"), render_mode="rgb_array", **SMALL)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[0:3], obs[3:6]), np.testing.assert_array_equal(obs[3:6], obs[6:9])
    prev = obs
    for _ in range(2):
        obs, *_ = env.step(np.ones(2, np.float32))  # the arm moves, so frames differ
        np.testing.assert_array_equal(obs[:6], prev[3:])
        assert not np.array_equal(obs[6:], prev[6:])
        np.testing.assert_array_equal(env.render(), obs[6:].transpose(1, 2, 0))
        prev = obs
    big = gymnasium.make(env_id("reacher", "easy"), render_mode="rgb_array", width=48, height=32, **SMALL)
    big.reset(seed=0)
    assert big.render().shape == (32, 48, 3)


def test_episode_is_1000_over_repeat_steps_and_truncated_never_terminated():
    env = gymnasium.make(env_id("cartpole", "swingup"), **SMALL)  # CURL repeat 8 -> 125 steps
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(125)]
    assert not any(term for term, _ in flags)
    assert [trunc for _, trunc in flags] == [False] * 124 + [True]
    # a repeat that does not divide 1000: the last step repeats fewer times
    env = gymnasium.make(env_id("reacher", "easy"), action_repeat=300, **SMALL)
    env.reset(seed=0)
    assert [env.step(env.action_space.sample())[3] for _ in range(4)] == [False, False, False, True]


def test_rewards_are_summed_over_repeats():
    action = np.array([0.7], np.float32)
    _, one = rollout(gymnasium.make(env_id("cartpole", "swingup"), action_repeat=1, **SMALL), 3, [action] * 8)
    _, four = rollout(gymnasium.make(env_id("cartpole", "swingup"), action_repeat=4, **SMALL), 3, [action] * 2)
    np.testing.assert_allclose(four, [sum(one[:4]), sum(one[4:])], rtol=1e-12)


def test_seeding_is_deterministic():
    actions = np.random.default_rng(1).uniform(-1, 1, (10, 2)).astype(np.float32)
    make = lambda: gymnasium.make(env_id("reacher", "easy"), **SMALL)  # noqa: E731
    (a, ra), (b, rb), (c, _) = rollout(make(), 7, actions), rollout(make(), 7, actions), rollout(make(), 8, actions)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert ra == rb
    assert not np.array_equal(a[0], c[0])  # another seed puts the target elsewhere


def test_vector_copy_i_equals_single_env_seeded_seed_plus_i():
    n, seed = 3, 11
    actions = np.random.default_rng(0).uniform(-1, 1, (8, n, 2)).astype(np.float32)
    vec = gymnasium.make_vec(env_id("reacher", "easy"), num_envs=n, **SMALL)
    assert isinstance(vec.unwrapped, DMCVectorEnv)
    vec_obs, vec_rewards = rollout(vec, seed, actions)
    for i in range(n):
        single = gymnasium.make(env_id("reacher", "easy"), **SMALL)
        single_obs, single_rewards = rollout(single, seed + i, actions[:, i])
        for v, s in zip(vec_obs, single_obs):
            np.testing.assert_array_equal(v[i], s)
        np.testing.assert_allclose(np.array(vec_rewards)[:, i], single_rewards, rtol=1e-12)
    assert len(set(vec.unwrapped.describe())) == n


def test_vector_truncates_at_time_limit_with_same_step_autoreset():
    # repeat 100 -> 10-step episodes; a longer max_episode_steps (as a config may pass) cannot outlast dm_control
    vec = gymnasium.make_vec(env_id("reacher", "easy"), num_envs=2, action_repeat=100, max_episode_steps=500, **SMALL)
    assert vec.unwrapped.max_episode_steps == 10
    vec.reset(seed=0)
    for t in range(10):
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
        assert not terminated.any() and truncated.all() == (t == 9)
    assert info["_final_obs"].all()
    np.testing.assert_array_equal(obs[:, :3], obs[:, 6:])  # already the first (stacked) frame of the next episode
    assert not np.array_equal(obs, info["final_obs"])


def test_bad_task_and_crop_larger_than_render_raise():
    from envs.dmc import DMCEnv

    with pytest.raises(ValueError, match="cartpole-swingup"):
        DMCEnv("cartpole", "balance")
    with pytest.raises(ValueError, match="render_size"):
        gymnasium.make(env_id("cartpole", "swingup"), render_size=64)  # image_size 84 cannot be cropped from 64


def cartpole_swingup_policy(physics) -> np.ndarray:
    """Energy pumping far from upright, a linear balance near it (gains tuned for action repeat 8)."""
    x, angle = physics.data.qpos
    x_dot, angle_dot = physics.data.qvel
    angle = (angle + np.pi) % (2 * np.pi) - np.pi  # 0 = upright
    if np.cos(angle) > 0.85:
        action = 10.0 * angle + 2.3 * angle_dot + 2.3 * x + 1.1 * x_dot
    else:
        energy = 0.5 * angle_dot**2 + 9.81 / 0.5 * (np.cos(angle) - 1.0)  # 0 when balanced upright
        action = energy * np.sign(angle_dot * np.cos(angle)) - 0.2 * x
    return np.clip([action], -1.0, 1.0).astype(np.float32)


def test_scripted_swingup_beats_random():
    env = gymnasium.make(env_id("cartpole", "swingup"), **SMALL)
    env.action_space.seed(0)
    physics = env.unwrapped.task.physics(0)
    returns = {}
    for name in ("scripted", "random"):
        env.reset(seed=0)
        total, done = 0.0, False
        while not done:
            action = cartpole_swingup_policy(physics) if name == "scripted" else env.action_space.sample()
            _, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        returns[name] = total
    print(f"cartpole-swingup returns, seed 0: {returns}")
    assert returns["scripted"] > 500 and returns["scripted"] > returns["random"] + 300  # random: ~50-200
