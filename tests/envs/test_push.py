import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.push import SUCCESS_DISTANCE, PushVectorEnv, scripted_action


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return out


def test_check_env_and_spaces():
    env = gymnasium.make("crlab/Push-v0", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert {k: v.shape for k, v in obs.items()} == {"observation": (19,), "achieved_goal": (2,), "desired_goal": (2,)}
    assert env.action_space.shape == (2,)
    assert env.metadata["render_fps"] == 25  # 0.005 s physics step x frame_skip 8
    assert env.spec.max_episode_steps == 100


def test_reset_places_block_on_table_and_goal_away_from_it():
    env = gymnasium.make("crlab/Push-v0")
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        block, goal = obs["achieved_goal"], obs["desired_goal"]
        assert np.abs(block).max() <= 0.1 and np.abs(goal).max() <= 0.2
        assert np.linalg.norm(goal - block) >= 2 * SUCCESS_DISTANCE
        np.testing.assert_allclose(obs["observation"][2:4], block)


def test_seeding_is_deterministic():
    actions = np.random.default_rng(1).uniform(-1, 1, (30, 2)).astype(np.float32)
    a = rollout(gymnasium.make("crlab/Push-v0"), 7, actions)
    b = rollout(gymnasium.make("crlab/Push-v0"), 7, actions)
    c = rollout(gymnasium.make("crlab/Push-v0"), 8, actions)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["observation"], y["observation"])
    assert not np.allclose(a[0]["desired_goal"], c[0]["desired_goal"])


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_vectorized_compute_reward_matches_step_reward(reward_type):
    env = gymnasium.make("crlab/Push-v0", reward_type=reward_type)
    obs, _ = env.reset(seed=3)
    achieved, desired, rewards = [], [], []
    for _ in range(40):
        action = scripted_action(obs["observation"][None], obs["desired_goal"][None])[0]
        obs, r, *_ = env.step(action)
        achieved.append(obs["achieved_goal"]), desired.append(obs["desired_goal"]), rewards.append(r)
    # infos as SB3's HerReplayBuffer passes them by default (copy_info_dict=False): empty dicts
    batch = env.unwrapped.compute_reward(np.array(achieved), np.array(desired), [{}] * len(rewards))
    np.testing.assert_allclose(batch, rewards)
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=3, reward_type=reward_type)
    vec.reset(seed=0)
    obs, reward, _, _, info = vec.step(vec.action_space.sample())
    np.testing.assert_allclose(vec.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info), reward)


def test_success_flag_and_rewards_at_goal():
    env = gymnasium.make("crlab/Push-v0", reward_type="dense").unwrapped
    env.reset(seed=0)
    task = env.task
    task.goal[0] = task.block()[0] + [SUCCESS_DISTANCE * 0.5, 0.0]
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert info["is_success"] and not terminated
    assert reward == pytest.approx(-info["distance"]) and info["pusher_distance"] > 0
    env.task.reward_type = "sparse"
    assert env.compute_reward(task.block(), task.goal, info) == 0.0
    assert env.compute_reward(task.block(), task.block() + [SUCCESS_DISTANCE * 2, 0.0], info) == -1.0


def test_vector_copy_i_matches_single_env_seeded_seed_plus_i():
    """Each copy is its own constraint island, so copies match a one-copy model up to the rounding of contact
    geometry away from the origin: ~1e-9 m in positions and ~1e-6 in the resting block's velocities (tolerances
    below). Over long contact-rich pushes that rounding grows chaotically (as a 1e-12 m nudge does in one model)."""
    n, seed = 4, 11
    actions = np.random.default_rng(0).uniform(-1, 1, (20, n, 2)).astype(np.float32)
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=n)
    assert isinstance(vec.unwrapped, PushVectorEnv)
    vec_obs = rollout(vec, seed, actions)
    for i in range(n):
        single = rollout(gymnasium.make("crlab/Push-v0"), seed + i, actions[:, i])
        for v, s in zip(vec_obs, single):
            np.testing.assert_array_equal(v["desired_goal"][i], s["desired_goal"])
            np.testing.assert_allclose(v["achieved_goal"][i], s["achieved_goal"], atol=1e-7)
            np.testing.assert_allclose(v["observation"][i], s["observation"], atol=1e-5)


def test_copies_only_touch_themselves():
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=9)
    sim = vec.unwrapped.task.sim
    copy_of_geom = np.array([int(sim.model.geom(g).name.split("/")[0][1:]) for g in range(sim.model.ngeom)])
    obs, _ = vec.reset(seed=0)
    contacts = 0
    for _ in range(60):
        obs, *_ = vec.step(scripted_action(obs["observation"], obs["desired_goal"]))
        pairs = np.stack([sim.data.contact.geom1, sim.data.contact.geom2])[:, : sim.data.ncon]
        np.testing.assert_array_equal(copy_of_geom[pairs[0]], copy_of_geom[pairs[1]])
        contacts += sim.data.ncon
    assert contacts > 0


def test_vector_autoreset_same_step_returns_final_obs():
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=3)
    vec.reset(seed=0)
    for _ in range(100):
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert truncated.all() and not terminated.any() and info["_final_obs"].all()
    assert not np.allclose(obs["desired_goal"], info["final_obs"]["desired_goal"])


def success_rate(policy, n=16, seed=0):
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=n)
    obs, _ = vec.reset(seed=seed)
    vec.action_space.seed(seed)
    for _ in range(100):
        obs, _, _, truncated, info = vec.step(policy(vec, obs))
    assert truncated.all()
    return info["final_info"]["is_success"].mean()


def test_scripted_policy_clearly_beats_random():
    scripted = success_rate(lambda vec, obs: scripted_action(obs["observation"], obs["desired_goal"]))
    random = success_rate(lambda vec, obs: vec.action_space.sample())
    assert scripted >= 0.9 and random <= 0.2, (scripted, random)


def test_render_and_describe():
    env = gymnasium.make("crlab/Push-v0", render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    text = env.unwrapped.describe()
    assert "block" in text and "goal" in text
    vec = gymnasium.make_vec("crlab/Push-v0", num_envs=2)
    vec.reset(seed=0)
    assert all("block" in t for t in vec.unwrapped.describe())


def test_bad_reward_type_names_choices():
    with pytest.raises(ValueError, match="sparse"):
        gymnasium.make("crlab/Push-v0", reward_type="shaped")


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_sb3_sac_her_runs(reward_type):
    from stable_baselines3 import SAC, HerReplayBuffer

    env = gymnasium.make("crlab/Push-v0", reward_type=reward_type)
    model = SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
                learning_starts=100, batch_size=32, policy_kwargs={"net_arch": [32, 32]}, seed=0, verbose=0)
    model.learn(300)
    assert model.replay_buffer.size() > 0 and model.num_timesteps == 300
