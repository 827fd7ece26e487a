"""Reward-swapping env wrappers: module reward out, env reward in info["gt_reward"], true next obs on autoreset."""

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from rewards.base import RewardModule
from rewards.wrapper import RewardWrapper, VectorRewardWrapper


class NegativeDistance(RewardModule):
    """−‖achieved − desired‖ of s': the same as Reach's dense reward."""

    def forward(self, batch):
        next_obs = batch["next_obs"]
        return -torch.linalg.norm(next_obs["achieved_goal"] - next_obs["desired_goal"], dim=-1)


class Recorder(RewardModule):
    """Keeps every batch it is given; rewards 0."""

    needs = frozenset({"frames", "text", "prev_text"})

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, batch):
        self.batches.append(batch)
        return torch.zeros(len(batch["text"]))


def test_single_env_reward_is_swapped_and_gt_kept():
    env = RewardWrapper(gymnasium.make("crlab/Reach-v0"), NegativeDistance())  # sparse env reward
    twin = gymnasium.make("crlab/Reach-v0")
    env.reset(seed=3)
    twin.reset(seed=3)
    for _ in range(5):
        action = env.action_space.sample()
        obs, reward, *_, info = env.step(action)
        _, twin_reward, *_ = twin.step(action)
        assert info["gt_reward"] == twin_reward == -1.0
        assert reward == pytest.approx(-np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]), abs=1e-6)


def test_vector_env_uses_final_obs_on_autoreset():
    # dense Reach reward = −distance of the true s', so module and env must agree at every step, autoresets included
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=4, max_episode_steps=3, reward_type="dense")
    env = VectorRewardWrapper(vec, NegativeDistance())
    env.reset(seed=0)
    ended = 0
    for _ in range(7):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward.shape == info["gt_reward"].shape == (4,)
        np.testing.assert_allclose(reward, info["gt_reward"], rtol=1e-5, atol=1e-6)
        if "_final_obs" in info:
            ended += info["_final_obs"].sum()
            # the returned obs are the next episode's: computed from them, the reward would differ
            restart = -np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"], axis=-1)
            assert not np.allclose(restart[info["_final_obs"]], reward[info["_final_obs"]])
    assert ended == 8


def test_vector_env_supplies_frames_and_text():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=3, render_mode="rgb_array", width=32, height=24)
    recorder = Recorder()
    env = VectorRewardWrapper(vec, recorder)
    env.reset(seed=0)
    texts = [vec.describe()]
    for _ in range(2):
        env.step(env.action_space.sample())
        texts.append(vec.describe())
    for t, batch in enumerate(recorder.batches):
        assert batch["frames"].shape == (3, 24, 32, 3) and batch["frames"].dtype == torch.uint8
        assert batch["text"] == texts[t + 1] and batch["prev_text"] == texts[t]
        assert batch["action"].shape == (3, 2) and batch["terminated"].dtype == torch.bool


def test_single_env_supplies_frames_and_text():
    recorder = Recorder()
    env = RewardWrapper(gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=32, height=24), recorder)
    env.reset(seed=0)
    first = env.unwrapped.describe()
    env.step(env.action_space.sample())
    batch = recorder.batches[0]
    assert batch["frames"].shape == (1, 24, 32, 3)
    assert batch["prev_text"] == [first] and batch["text"] == [env.unwrapped.describe()]
    assert batch["obs"]["observation"].shape == (1, 8)


def test_frames_need_rgb_array_rendering_and_next_step_autoreset_is_refused():
    with pytest.raises(ValueError, match="render_mode"):
        RewardWrapper(gymnasium.make("crlab/Reach-v0"), Recorder())
    next_step = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("crlab/Reach-v0")] * 2)
    with pytest.raises(ValueError, match="autoreset"):
        VectorRewardWrapper(next_step, NegativeDistance())


def test_ended_copies_get_their_final_frame_and_text():
    # episodes of 2 steps: at step 2 every copy ends; the batch must show the ended state, not the next start
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=2, render_mode="rgb_array", width=32,
                             height=24)
    recorder = Recorder()
    env = VectorRewardWrapper(vec, recorder)
    assert vec.unwrapped.final_views == {"frames", "text"}  # asked for by the wrapper
    twin = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=3, render_mode="rgb_array", width=32,
                              height=24)  # same copies, one step longer: shows the state before the reset
    env.reset(seed=5)
    twin.reset(seed=5)
    for _ in range(2):
        action = env.action_space.sample()
        _, _, _, truncated, info = env.step(action)
        twin.step(action)
    assert truncated.all() and info["_final_obs"].all()
    ended, restart = recorder.batches[-1], vec.describe()
    assert ended["text"] == twin.describe() != restart
    np.testing.assert_array_equal(ended["frames"].numpy(), np.stack(twin.render()))
    env.step(env.action_space.sample())  # the next transition starts from the new episode's first state
    assert recorder.batches[-1]["prev_text"] == restart


def test_final_views_are_off_unless_asked_and_checked():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=1)
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(vec.action_space.sample())
    assert "_final_obs" in info and "final_frames" not in info and "final_text" not in info
    vec.unwrapped.request_final_views("text")
    _, _, _, _, info = vec.step(vec.action_space.sample())
    assert info["final_text"].shape == (2,) and info["final_text"][0].startswith("The ")
    with pytest.raises(ValueError, match="rgb_array"):
        vec.unwrapped.request_final_views("frames")
    with pytest.raises(ValueError, match="unknown final views"):
        vec.unwrapped.request_final_views("sound")


def test_true_next_obs_takes_final_obs_where_episodes_ended():
    from envs.batched import true_next_obs

    obs = {"x": np.zeros((3, 2))}
    info = {"final_obs": {"x": np.ones((3, 2))}, "_final_obs": np.array([False, True, False])}
    np.testing.assert_array_equal(true_next_obs(obs, info)["x"], [[0, 0], [1, 1], [0, 0]])
    np.testing.assert_array_equal(true_next_obs(np.zeros(3), {"final_obs": np.ones(3), "_final_obs": info["_final_obs"]}), [0, 1, 0])
    assert true_next_obs(obs, {}) is obs
    import torch  # an env that steps torch tensors (backend="mjx"): the same merge, in torch
    merged = true_next_obs({"x": torch.zeros(3, 2)}, {"final_obs": {"x": torch.ones(3, 2)},
                                                      "_final_obs": torch.tensor([False, True, False])})
    assert merged["x"].tolist() == [[0, 0], [1, 1], [0, 0]]


class Watcher:
    """An observer that keeps what the wrapper shows it."""

    needs = frozenset({"text"})

    def __init__(self):
        self.seen = []

    def record(self, batch, gt_reward, done):
        self.seen.append((batch, gt_reward, done))


def test_observer_sees_batches_with_its_needs_and_the_gt_reward():
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=2)
    watcher = Watcher()
    env = VectorRewardWrapper(vec, NegativeDistance(), observer=watcher)
    env.reset(seed=0)
    for _ in range(2):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
    batch, gt_reward, done = watcher.seen[-1]
    assert len(batch["text"]) == 2 and batch["obs"]["observation"].shape == (2, 8)
    np.testing.assert_array_equal(gt_reward, info["gt_reward"])
    np.testing.assert_array_equal(done, terminated | truncated)
