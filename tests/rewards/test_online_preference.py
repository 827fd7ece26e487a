"""Online (PEBBLE-style) preference learning: segment window, feedback schedule, and learning from the env's reward."""

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from rewards.online_preference import OnlinePreferenceLearning, SegmentWindow
from rewards.preference import PreferenceRewardModel, SyntheticLabeler, preference_accuracy
from rewards.wrapper import VectorRewardWrapper


def test_window_segments_stay_within_one_episode_across_the_ring():
    window = SegmentWindow(capacity=7)
    lengths = [3, 5]  # copy 0: episodes of 3 steps, copy 1: of 5
    for t in range(20):  # wraps the ring twice
        done = np.array([(t + 1) % n == 0 for n in lengths])
        obs = torch.tensor([[t, 0.0], [t, 1.0]])
        window.add({"obs": obs, "action": torch.zeros(2, 1), "next_obs": obs + 1}, torch.tensor([t, -t], dtype=torch.float32), done)
    segments = window.sample_segments(200, 3, torch.Generator().manual_seed(0))
    t, copy = segments["obs"][..., 0], segments["obs"][..., 1]  # (200, 3)
    assert segments["obs"].shape == (200, 3, 2) and segments["action"].shape == (200, 3, 1)
    assert (t[:, 1:] - t[:, :-1] == 1).all() and (copy == copy[:, :1]).all()  # consecutive steps of one copy
    assert t.min() >= 20 - 7  # only the last `capacity` steps
    start = t[:, 0].long()
    episode_of = lambda step, n: (step // n)  # noqa: E731
    for s, c in zip(start.tolist(), copy[:, 0].long().tolist()):
        assert episode_of(s, lengths[c]) == episode_of(s + 2, lengths[c])
    torch.testing.assert_close(segments["reward"], torch.where(copy == 0, t, -t))
    assert window.sample_segments(5, 6, torch.Generator()) is None  # no episode is 6 steps long


def test_schedule_and_label_budget():
    model = PreferenceRewardModel(2, 1, ensemble_size=2, hidden_dim=8, num_layers=1)
    learner = OnlinePreferenceLearning(model, SyntheticLabeler(seed=0), query_every=100, first_query=40, queries=30,
                                       max_labels=50, candidates=60, segment_length=2, window=80, num_envs=2, epochs=1)
    assert not learner.due(39) and learner.due(40)
    for t in range(30):
        obs = torch.randn(2, 2)
        learner.record({"obs": obs, "action": torch.randn(2, 1), "next_obs": obs}, np.array([t, 0.0]), np.array([t % 5 == 4] * 2))
    metrics = learner.update(40)
    assert metrics["labels"] == 30 and learner.num_labels == 30 and 0 <= metrics["reward_model_accuracy"] <= 1
    assert not learner.due(139) and learner.due(140)
    learner.update(140)
    assert learner.num_labels == 50 and not learner.due(10_000)  # the budget caps the second session at 20


def test_learns_reach_dense_reward_online():
    """Reward model learned from the env's dense reward through the wrapper orders held-out segments right."""
    torch.manual_seed(0)
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=8, max_episode_steps=50, reward_type="dense")
    model = PreferenceRewardModel.from_spaces(vec.single_observation_space, vec.single_action_space, input="next_obs",
                                              ensemble_size=2, hidden_dim=64, num_layers=2, lr=1e-3)
    learner = OnlinePreferenceLearning(model, SyntheticLabeler(seed=0), query_every=400, queries=150, candidates=600,
                                       segment_length=10, window=4000, num_envs=8, epochs=15, batch_size=64, seed=0)
    env = VectorRewardWrapper(vec, model, observer=learner)
    env.reset(seed=0)
    env.action_space.seed(0)
    proxy_seen = []
    for step in range(1, 201):
        _, reward, _, _, info = env.step(env.action_space.sample())
        proxy_seen.append(reward)
        if learner.due(8 * step):
            learner.update(8 * step)
    assert learner.num_labels == 600
    test_a, test_b = (learner.window.sample_segments(500, 10, torch.Generator().manual_seed(k)) for k in (1, 2))
    labels = SyntheticLabeler()(test_a, test_b)
    with torch.no_grad():
        accuracy = preference_accuracy(model.segment_returns(test_a).mean(0), model.segment_returns(test_b).mean(0), labels)
    assert accuracy > 0.85
    assert np.isfinite(proxy_seen).all()


def test_rejects_bad_settings():
    model = PreferenceRewardModel(2, 1, ensemble_size=1, hidden_dim=4, num_layers=1)
    with pytest.raises(ValueError, match="selection"):
        OnlinePreferenceLearning(model, SyntheticLabeler(), query_every=10, selection="best")
    with pytest.raises(ValueError, match="query_every"):
        OnlinePreferenceLearning(model, SyntheticLabeler(), query_every=0)
