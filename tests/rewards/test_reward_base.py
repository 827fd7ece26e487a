"""Reward-module base: batch conversion, atomic save, and the registry."""

import numpy as np
import pytest
import torch

from rewards import REWARDS, make_reward
from rewards.base import batch_to_tensors, flatten_obs, num_transitions
from rewards.preference import PreferenceRewardModel


def test_unknown_reward_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        make_reward("nope")
    for name in REWARDS:
        assert name in str(error.value)


def test_registry_builds_a_preference_model():
    model = make_reward("preference", obs_dim=3, action_dim=1, ensemble_size=2, hidden_dim=8)
    assert isinstance(model, PreferenceRewardModel) and len(model.members) == 2


def test_batch_to_tensors_and_flatten_obs():
    batch = {
        "obs": {"b": np.ones((2, 1)), "a": np.zeros((2, 3))},
        "action": np.ones((2, 2)),
        "frames": (np.zeros((4, 5, 3), np.uint8),) * 2,
        "terminated": np.array([True, False]),
        "text": ["x", "y"],
    }
    out = batch_to_tensors(batch, "cpu")
    assert out["obs"]["a"].dtype == torch.float32 and out["frames"].shape == (2, 4, 5, 3)
    assert out["frames"].dtype == torch.uint8 and out["terminated"].dtype == torch.bool and out["text"] == ["x", "y"]
    torch.testing.assert_close(flatten_obs(out["obs"]), torch.tensor([[0.0, 0, 0, 1]] * 2))  # sorted keys: a, b
    assert num_transitions(out) == 2


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "reward.safetensors"
    model = PreferenceRewardModel(2, 1, ensemble_size=1, hidden_dim=4, num_layers=1)
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rewards.base.os.replace", crash)
    with pytest.raises(OSError):
        PreferenceRewardModel(2, 1, ensemble_size=1, hidden_dim=4, num_layers=1).save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["reward.safetensors"]  # and no temp file is left


def test_from_file_refuses_another_class(tmp_path):
    from rewards.base import LearnedRewardModule

    class Other(LearnedRewardModule):
        pass

    path = tmp_path / "reward.safetensors"
    PreferenceRewardModel(2, 1, ensemble_size=1, hidden_dim=4, num_layers=1).save(path)
    with pytest.raises(ValueError, match="PreferenceRewardModel"):
        Other.from_file(path)
