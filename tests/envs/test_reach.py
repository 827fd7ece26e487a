import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.reach import SUCCESS_DISTANCE, ReachVectorEnv


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return out


def test_check_env_and_spaces():
    env = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert env.metadata["render_fps"] == 25  # 0.01 s physics step x frame_skip 4
    assert env.spec.max_episode_steps == 50


def test_seeding_is_deterministic():
    actions = np.random.default_rng(1).uniform(-1, 1, (30, 2)).astype(np.float32)
    a = rollout(gymnasium.make("crlab/Reach-v0"), 7, actions)
    b = rollout(gymnasium.make("crlab/Reach-v0"), 7, actions)
    c = rollout(gymnasium.make("crlab/Reach-v0"), 8, actions)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["observation"], y["observation"])
    assert not np.allclose(a[0]["desired_goal"], c[0]["desired_goal"])


def test_vectorized_compute_reward_matches_step_reward():
    for reward_type in ("sparse", "dense"):
        env = gymnasium.make("crlab/Reach-v0", reward_type=reward_type)
        obs, _ = env.reset(seed=3)
        achieved, desired, rewards = [], [], []
        for _ in range(40):
            obs, r, *_ = env.step(env.action_space.sample())
            achieved.append(obs["achieved_goal"]), desired.append(obs["desired_goal"]), rewards.append(r)
        batch = env.unwrapped.compute_reward(np.array(achieved), np.array(desired), {})
        np.testing.assert_allclose(batch, rewards)


def test_success_flag_and_sparse_reward_at_goal():
    env = gymnasium.make("crlab/Reach-v0").unwrapped
    env.reset(seed=0)
    task = env.task
    task.goal[0] = task.fingertip()[0] + [SUCCESS_DISTANCE * 0.5, 0.0]  # put the goal next to the fingertip
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert info["is_success"] and reward == 0.0 and not terminated
    task.goal[0] = task.fingertip()[0] + [SUCCESS_DISTANCE * 2.0, 0.0]
    obs, reward, _, _, info = env.step(np.zeros(2, np.float32))
    assert not info["is_success"] and reward == -1.0


def test_vector_copy_i_equals_single_env_seeded_seed_plus_i():
    n, seed = 4, 11
    actions = np.random.default_rng(0).uniform(-1, 1, (20, n, 2)).astype(np.float32)
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=n)
    assert isinstance(vec.unwrapped, ReachVectorEnv)
    vec_obs = rollout(vec, seed, actions)
    for i in range(n):
        single = rollout(gymnasium.make("crlab/Reach-v0"), seed + i, actions[:, i])
        for v, s in zip(vec_obs, single):
            np.testing.assert_allclose(v["observation"][i], s["observation"], atol=1e-12)
            np.testing.assert_array_equal(v["desired_goal"][i], s["desired_goal"])


def test_vector_autoreset_same_step_returns_final_obs():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=3)
    obs, _ = vec.reset(seed=0)
    for t in range(50):
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all()
    # the returned obs already belongs to the next episode (new goal), the final one is kept in info
    assert not np.allclose(obs["desired_goal"], info["final_obs"]["desired_goal"])


def test_sync_mode_gives_sync_vector_env():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, vectorization_mode="sync")
    assert isinstance(vec, gymnasium.vector.SyncVectorEnv)


def test_render_and_describe():
    env = gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    assert "goal" in env.unwrapped.describe()


def test_bad_reward_type_names_choices():
    with pytest.raises(ValueError, match="sparse"):
        gymnasium.make("crlab/Reach-v0", reward_type="shaped")


@pytest.mark.parametrize("make, kwargs, expected", [
    (gymnasium.make, {"width": -1}, "width=-1 must be a positive integer"),  # was accepted
    (gymnasium.make, {"height": 0, "render_mode": "rgb_array"}, "height=0 must be a positive integer"),  # rendered
    (gymnasium.make_vec, {"num_envs": 0}, "num_envs=0 must be an integer >= 1"),  # named an internal num_copies
])
def test_bad_frame_sizes_and_copy_counts_are_refused(make, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        make("crlab/Reach-v0", **kwargs)


def test_sb3_sac_her_runs():
    from stable_baselines3 import SAC, HerReplayBuffer

    env = gymnasium.make("crlab/Reach-v0")
    model = SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
                learning_starts=100, batch_size=32, policy_kwargs={"net_arch": [32, 32]}, seed=0, verbose=0)
    model.learn(300)
    assert model.replay_buffer.size() > 0 and model.num_timesteps == 300
