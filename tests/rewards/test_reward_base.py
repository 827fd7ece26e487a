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

    monkeypatch.setattr("envs.atomic_file.os.replace", crash)
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


def test_text_observation_leaves_stay_strings():
    """Text games' Dict observations hold a Text entry: reward modules must not cast it to float32."""
    from rewards.base import batch_to_tensors

    obs = {"text": np.array(["pick the red one", "go left"], dtype=object), "numbers": np.ones((2, 3))}
    batch = batch_to_tensors({"obs": obs, "next_obs": obs, "action": np.zeros((2,), np.int64)}, "cpu")
    assert batch["obs"]["text"] == ["pick the red one", "go left"]
    assert batch["obs"]["numbers"].dtype == torch.float32 and batch["obs"]["numbers"].shape == (2, 3)


def test_files_crlab_writes_get_the_umask_permissions(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the renamed file must have the mode open() would give."""
    import os

    import gymnasium

    import envs  # noqa: F401
    from agents.checkpoint import save_checkpoint
    from envs.recorder import RolloutRecorder
    from rewards.preference import PreferenceRewardModel

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", {"x": torch.zeros(2)})
        PreferenceRewardModel(3, 1, ensemble_size=1, hidden_dim=4, num_layers=1).save(tmp_path / "rm.safetensors")
        env = RolloutRecorder(gymnasium.make("crlab/Reach-v0", render_mode="rgb_array", width=16, height=16))
        env.reset(seed=0)
        env.step(env.action_space.sample())
        video, rollout = env.save(tmp_path / "r")
        for path in (tmp_path / "c.pt", tmp_path / "rm.safetensors", video, rollout):
            assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
        assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    finally:
        os.umask(old)
