"""`reward=NAME` in scripts.train: the module replaces the env's reward; proxy and ground-truth returns are logged."""

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rewards.preference import PreferenceRewardModel
from scripts.train import train

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"
TINY_AGENT = ("agent.warmup_steps=400", "agent.hidden=[32,32]", "agent.batch_size=32")


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["progress=false", "device=cpu", "video_episodes=0", "eval_episodes=4",
                                           "log_every_s=0", *TINY_AGENT, *overrides])


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def scalars(run_dir):
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_online_preference_reward_logs_proxy_and_ground_truth(tmp_path):
    cfg = config("reward=preference", "total_env_steps=1600", "eval_every=800", "reward.hidden_dim=32",
                 "reward.online.first_query=400", "reward.online.query_every=800", "reward.online.queries=20",
                 "reward.online.candidates=100", "reward.online.epochs=2")
    run_dir = train(cfg, tmp_path / "run")
    table = rows(run_dir)
    assert [int(r["env_steps"]) for r in table] == [0, 800, 1600]
    assert all(r["eval_proxy_return"] not in ("", None) for r in table)
    assert float(table[0]["eval_return"]) == -50.0  # evaluation return stays the env's (sparse) reward
    tags = scalars(run_dir)
    assert {"train/proxy_return", "train/gt_return", "train/reward_model_accuracy", "train/labels"} <= tags
    model = PreferenceRewardModel.from_file(run_dir / "reward_model.safetensors")  # the learned model is kept
    assert model.hidden_dim == 32


def test_loaded_preference_reward_and_default_run_columns(tmp_path):
    path = tmp_path / "rm.safetensors"
    PreferenceRewardModel(12, 2, ensemble_size=1, hidden_dim=8, num_layers=1).save(path)
    run_dir = train(config("reward=preference", f"reward.path={path}", "reward.online.query_every=0",
                           "total_env_steps=800", "eval_every=800"), tmp_path / "fixed")
    assert "eval_proxy_return" in rows(run_dir)[0] and not (run_dir / "reward_model.safetensors").exists()
    plain = train(config("total_env_steps=800", "eval_every=800"), tmp_path / "plain")  # reward=none
    assert "eval_proxy_return" not in rows(plain)[0]
    tags = scalars(plain)
    assert "train/gt_return" in tags and "train/proxy_return" not in tags


def test_preference_without_a_model_or_online_learning_is_refused(tmp_path):
    with pytest.raises(ValueError, match="path=FILE or online"):
        train(config("reward=preference", "reward.online.query_every=0", "total_env_steps=800"), tmp_path / "run")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny local-dir CLIP checkpoint, as scripts.finetune_clip writes it."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 16, "head_width": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    folder = tmp_path_factory.mktemp("clip_dir")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    return folder


@pytest.mark.parametrize("reward", ["clip", "vlm_preference"])
def test_frame_rewards_render_the_training_env(tmp_path, clip_dir, reward):
    checkpoint = "reward.checkpoint" if reward == "clip" else "reward.labeler.checkpoint"
    extra = [] if reward == "clip" else ["reward.hidden_dim=16", "reward.online.first_query=400",
                                          "reward.online.queries=20", "reward.online.candidates=50", "reward.online.epochs=1"]
    cfg = config(f"reward={reward}", f"{checkpoint}={clip_dir}", "+env.kwargs.width=32", "+env.kwargs.height=32",
                 "total_env_steps=800", "eval_every=800", *extra)
    run_dir = train(cfg, tmp_path / "run")
    assert len(rows(run_dir)) == 2 and "train/proxy_return" in scalars(run_dir)
    if reward == "vlm_preference":
        assert "train/labels" in scalars(run_dir)
