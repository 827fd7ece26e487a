"""Bradley–Terry preference reward model, scripted labeler and disagreement-based pair selection."""

import math

import numpy as np
import pytest
import torch

from rewards.preference import (
    PreferenceRewardModel,
    SyntheticLabeler,
    bradley_terry_loss,
    preference_accuracy,
    preference_probability,
    select_pairs_by_disagreement,
)

OBS_DIM, ACTION_DIM, STEPS = 4, 2, 8


def gold_reward(obs, action, next_obs):
    """A toy gold reward over flat (B, 4) observations and (B, 2) actions."""
    return obs[:, 0] - obs[:, 1] ** 2 + 0.5 * action[:, 0] * obs[:, 2]


def random_segments(n: int, generator: torch.Generator) -> dict:
    obs = torch.randn(n, STEPS, OBS_DIM, generator=generator)
    return {
        "obs": obs,
        "action": torch.rand(n, STEPS, ACTION_DIM, generator=generator) * 2 - 1,
        "next_obs": obs + 0.1 * torch.randn(n, STEPS, OBS_DIM, generator=generator),
    }


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_bradley_terry_loss_and_gradient_on_a_hand_built_pair():
    # R_a − R_b = 1; y = 1: loss = log(1 + e^{-1}), dL/dR_a = σ(1) − 1 = −dL/dR_b
    return_a = torch.tensor([2.0], requires_grad=True)
    return_b = torch.tensor([1.0], requires_grad=True)
    loss = bradley_terry_loss(return_a, return_b, torch.tensor([1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert return_a.grad.item() == pytest.approx(sigmoid(1.0) - 1.0, rel=1e-6)
    assert return_b.grad.item() == pytest.approx(1.0 - sigmoid(1.0), rel=1e-6)


def test_bradley_terry_loss_with_a_tie_and_a_batch_mean():
    # pairs: (gap 1, tie) and (gap −2, y = 0); loss = mean of the two cross-entropies, gradient (σ(gap) − y) / 2
    return_a = torch.tensor([1.0, 0.0], requires_grad=True)
    return_b = torch.tensor([0.0, 2.0])
    label = torch.tensor([0.5, 0.0])
    loss = bradley_terry_loss(return_a, return_b, label)
    loss.backward()
    tie = 0.5 * math.log(1 + math.exp(-1)) + 0.5 * math.log(1 + math.exp(1))
    right = math.log(1 + math.exp(-2))
    assert loss.item() == pytest.approx((tie + right) / 2, rel=1e-6)
    np.testing.assert_allclose(
        return_a.grad.numpy(), [(sigmoid(1) - 0.5) / 2, sigmoid(-2) / 2], rtol=1e-6
    )


def test_preference_probability_and_accuracy():
    a, b = torch.tensor([1.0, 0.0, 3.0, 2.0]), torch.tensor([0.0, 1.0, 1.0, 2.0])
    assert preference_probability(a, b, beta=2.0)[0].item() == pytest.approx(sigmoid(2.0))
    # the tie (label 0.5) is skipped; 2 of the 3 decided pairs are right
    assert preference_accuracy(a, b, torch.tensor([1.0, 0.0, 0.0, 0.5])) == pytest.approx(2 / 3)


def test_labeler_error_rate():
    labeler = SyntheticLabeler(error_rate=0.1, seed=0)
    gen = torch.Generator().manual_seed(0)
    return_a, return_b = torch.randn(20000, generator=gen), torch.randn(20000, generator=gen)
    labels = labeler.label_returns(return_a, return_b)
    rational = (return_a > return_b).float()
    assert (labels != rational).float().mean().item() == pytest.approx(0.1, abs=0.01)


def test_labeler_boltzmann_rate_and_ties():
    labeler = SyntheticLabeler(beta=2.0, seed=1)
    labels = labeler.label_returns(torch.full((20000,), 1.0), torch.zeros(20000))
    assert labels.mean().item() == pytest.approx(sigmoid(2.0), abs=0.01)

    gap = torch.linspace(-1, 1, 101)
    tied = SyntheticLabeler(error_rate=0.3, tie_threshold=0.25, seed=2).label_returns(gap, torch.zeros(101))
    assert torch.equal(tied == 0.5, gap.abs() < 0.25)


def test_labeler_labels_segments_with_the_gold_return():
    gen = torch.Generator().manual_seed(3)
    a, b = random_segments(50, gen), random_segments(50, gen)
    labeler = SyntheticLabeler(gold_reward, seed=0)
    returns = labeler.segment_returns(a)
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in a.items()}
    expected = gold_reward(flat["obs"], flat["action"], flat["next_obs"]).reshape(50, STEPS).sum(-1)
    torch.testing.assert_close(returns, expected)
    assert torch.equal(labeler(a, b), (returns > labeler.segment_returns(b)).float())


def test_fit_reaches_high_held_out_accuracy():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    labeler = SyntheticLabeler(gold_reward, seed=0)
    train_a, train_b, test_a, test_b = (random_segments(n, gen) for n in (1024, 1024, 500, 500))
    model = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=2, hidden_dim=64, num_layers=2, lr=3e-3)
    metrics = model.fit(train_a, train_b, labeler(train_a, train_b), epochs=20, batch_size=64)
    assert metrics["accuracy"] > 0.9
    with torch.no_grad():
        held_out = preference_accuracy(
            model.segment_returns(test_a).mean(0), model.segment_returns(test_b).mean(0), labeler(test_a, test_b)
        )
    assert held_out > 0.9


def test_batched_rewards_equal_one_at_a_time():
    torch.manual_seed(0)
    model = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=3, hidden_dim=32, num_layers=2)
    batch = {"obs": torch.randn(16, OBS_DIM), "action": torch.randn(16, ACTION_DIM)}
    batch["next_obs"] = torch.randn(16, OBS_DIM)
    with torch.no_grad():
        batched = model(batch)
        single = torch.cat([model({k: v[i : i + 1] for k, v in batch.items()}) for i in range(16)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
    assert batched.shape == (16,)
    relabelled = model.relabel(batch["obs"].numpy(), batch["action"].numpy(), batch["next_obs"].numpy(), chunk_size=5)
    torch.testing.assert_close(relabelled, batched, rtol=1e-5, atol=1e-6)
    # a segment's return is the sum of its per-step rewards
    seg = {k: v.reshape(2, 8, -1) for k, v in batch.items()}
    with torch.no_grad():
        returns = model.segment_returns(seg).mean(0)
    torch.testing.assert_close(returns, batched.reshape(2, 8).sum(-1), rtol=1e-5, atol=1e-5)


def test_dict_observations_and_next_obs_input():
    import gymnasium

    space = gymnasium.spaces.Dict(
        {"observation": gymnasium.spaces.Box(-1, 1, (3,)), "desired_goal": gymnasium.spaces.Box(-1, 1, (2,))}
    )
    model = PreferenceRewardModel.from_spaces(space, gymnasium.spaces.Box(-1, 1, (2,)), input="next_obs", hidden_dim=8)
    assert model.obs_dim == 5
    next_obs = {"observation": torch.randn(4, 3), "desired_goal": torch.randn(4, 2)}
    mean, std = model.reward_mean_std({"next_obs": next_obs})
    assert mean.shape == std.shape == (4,) and (std > 0).all()


def test_disagreement_selects_the_top_k_pairs():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4)
    model = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=4, hidden_dim=16, num_layers=1)
    a, b = random_segments(100, gen), random_segments(100, gen)
    disagreement = model.preference_disagreement(a, b)
    chosen = select_pairs_by_disagreement(model, a, b, k=10)
    assert chosen.shape == (10,)
    assert set(chosen.tolist()) == set(torch.argsort(disagreement, descending=True)[:10].tolist())
    assert disagreement[chosen].min() >= torch.sort(disagreement, descending=True).values[9]
    # one member has no disagreement
    single = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=1, hidden_dim=8, num_layers=1)
    assert torch.all(single.preference_disagreement(a, b) == 0)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=2, hidden_dim=16, num_layers=2)
    path = tmp_path / "reward.safetensors"
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reward.safetensors"]  # no temp file left behind
    batch = {"obs": torch.randn(5, OBS_DIM), "action": torch.randn(5, ACTION_DIM)}

    other = PreferenceRewardModel(OBS_DIM, ACTION_DIM, ensemble_size=2, hidden_dim=16, num_layers=2)
    assert not torch.allclose(other(batch), model(batch))
    torch.testing.assert_close(other.load(path)(batch), model(batch), rtol=0, atol=0)

    rebuilt = PreferenceRewardModel.from_file(path)
    assert rebuilt.config() == model.config()
    torch.testing.assert_close(rebuilt(batch), model(batch), rtol=0, atol=0)


def test_obs_keys_pick_the_observation_entries_the_model_sees(tmp_path):
    import gymnasium

    space = gymnasium.spaces.Dict({k: gymnasium.spaces.Box(-1, 1, (n,)) for k, n in (("a", 2), ("b", 3), ("c", 1))})
    model = PreferenceRewardModel.from_spaces(space, gymnasium.spaces.Box(-1, 1, (1,)), input="next_obs",
                                              obs_keys=["c", "a"], ensemble_size=1, hidden_dim=8, num_layers=1)
    assert model.obs_dim == 3 and model.obs_keys == ["a", "c"]
    gen = torch.Generator().manual_seed(0)
    batch = {"next_obs": {k: torch.randn(4, n, generator=gen) for k, n in (("a", 2), ("b", 3), ("c", 1))}}
    other_b = {"next_obs": {**batch["next_obs"], "b": torch.zeros(4, 3)}}
    torch.testing.assert_close(model(batch), model(other_b))  # "b" is not read
    path = tmp_path / "rm.safetensors"
    model.save(path)
    assert PreferenceRewardModel.from_file(path).obs_keys == ["a", "c"]
    with pytest.raises(ValueError, match="obs_keys"):
        PreferenceRewardModel.from_spaces(space, gymnasium.spaces.Box(-1, 1, (1,)), obs_keys=["d"])
