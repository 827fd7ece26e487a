"""Reward-model and CLIP files that are truncated, foreign, mis-shaped, missing offline or trained on another env:
each is one clear error naming the file (exit 2 from the CLIs), never a traceback or a silent score."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rewards.base import RewardFileError
from rewards.clip import load_clip
from rewards.from_config import reward_from_config
from rewards.preference import PreferenceRewardModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "rm.safetensors"
    PreferenceRewardModel(4, 2, ensemble_size=1, hidden_dim=8, num_layers=1, env_id="crlab/Reach-v0").save(path)
    return path


def preference_cfg(path, **extra):
    return {"name": "preference", "path": str(path), "online": {"query_every": 0}, **extra}


def test_truncated_foreign_and_misshapen_model_files_name_the_file(model_file, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(RewardFileError, match=f"reward model {truncated} is not a readable safetensors file"):
        PreferenceRewardModel.from_file(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(RewardFileError, match=f"reward model {foreign} holds no crlab model"):
        PreferenceRewardModel.from_file(foreign)
    other = PreferenceRewardModel(4, 2, ensemble_size=1, hidden_dim=16, num_layers=1)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(RewardFileError, match=r"does not fit this PreferenceRewardModel \(members.0.net.0.bias is "
                                              r"\(8,\), the module's is \(16,\)\)"):
        other.load(model_file)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())  # nothing half-loaded


def test_a_model_trained_on_another_env_is_refused_unless_forced(model_file):
    assert reward_from_config(preference_cfg(model_file), None, None, env_id="crlab/Reach-v0").env_id == "crlab/Reach-v0"
    with pytest.raises(RewardFileError, match=r"was trained on crlab/Reach-v0, not crlab/Push-v0: set reward.any_env=true"):
        reward_from_config(preference_cfg(model_file), None, None, env_id="crlab/Push-v0")
    assert reward_from_config(preference_cfg(model_file, any_env=True), None, None, env_id="crlab/Push-v0") is not None


def test_fresh_models_record_their_env_and_observation_keys(tmp_path):
    import gymnasium

    import envs  # noqa: F401

    env = gymnasium.make("crlab/Reach-v0")
    cfg = {"name": "preference", "path": None, "ensemble_size": 1, "hidden_dim": 8, "num_layers": 1,
           "obs_keys": ["achieved_goal", "desired_goal"], "online": {"query_every": 10}}
    model = reward_from_config(cfg, env.observation_space, env.action_space, env_id="crlab/Reach-v0")
    model.save(tmp_path / "m.safetensors")
    loaded = PreferenceRewardModel.from_file(tmp_path / "m.safetensors")
    assert loaded.env_id == "crlab/Reach-v0"
    assert loaded.observation_keys == ["achieved_goal", "desired_goal", "observation"]


def test_clip_checkpoints_truncated_or_of_another_env(tmp_path):
    import open_clip

    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 16,
                                              "head_width": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    folder = tmp_path / "clip"
    folder.mkdir()
    model = open_clip.model.CLIP(**config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {},
                                                              "crlab": {"env_id": "crlab/Reach-v0"}}))
    clip_cfg = {"name": "clip", "goal_prompts": ["a goal"], "checkpoint": str(folder)}
    with pytest.raises(RewardFileError, match=f"CLIP checkpoint {folder} was trained on crlab/Reach-v0, not crlab/Push-v0"):
        reward_from_config(clip_cfg, None, None, env_id="crlab/Push-v0")
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(RewardFileError, match=f"CLIP checkpoint {folder} cannot be loaded"):
        reward_from_config(clip_cfg, None, None, env_id="crlab/Reach-v0")
    with pytest.raises(RewardFileError, match="CLIP weights file /nonexistent/w.pt does not exist"):
        load_clip("ViT-B-32", "/nonexistent/w.pt")


def test_tagged_weights_offline_fail_fast_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(RewardFileError, match=r"CLIP weights ViT-B-32/openai are not on this machine .*\(HF_HUB_OFFLINE is set\)"):
        load_clip("ViT-B-32", "openai", cache_dir=str(Path("/nonexistent-cache")))
    assert time.perf_counter() - start < 10


def test_loading_the_text_encoder_leaves_hf_hub_offline_alone(monkeypatch):
    from envs.text_embedding import load_sentence_encoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    load_sentence_encoder()
    assert "HF_HUB_OFFLINE" not in os.environ  # a networked user's CLIP download is not blocked


def test_cli_reward_file_errors_are_one_line_exit_2(model_file, tmp_path):
    truncated = tmp_path / "bad.safetensors"
    truncated.write_bytes(b"\x00" * 20)
    result = subprocess.run([sys.executable, "-m", "scripts.train", "env=reach", "reward=preference",
                             f"reward.path={truncated}", "reward.online.query_every=0", "total_env_steps=100",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: reward model") and str(truncated) in line
    assert truncated.read_bytes() == b"\x00" * 20 and model_file.exists()


def test_rollouts_with_nan_rewards_name_the_file(tmp_path):
    from envs.recorder import RolloutFileError, load_rollout

    n = 4
    arrays = {"frames": np.zeros((n, 2, 2, 3), np.uint8), "action": np.zeros((n, 2)), "reward": np.array([0, np.nan, 1, 2.]),
              "terminated": np.zeros(n, bool), "truncated": np.zeros(n, bool), "is_success": np.zeros(n, bool),
              "episode": np.zeros(n, np.int64), "step": np.arange(n), "text": np.array([""] * n),
              "obs": np.zeros((n, 3)), "next_obs": np.zeros((n, 3))}
    np.savez(tmp_path / "r.npz", **arrays)
    with pytest.raises(RolloutFileError, match=r"r.npz: 'reward' is not finite \(NaN or inf\) at 1 row\(s\), first row 1"):
        load_rollout(tmp_path / "r.npz")
