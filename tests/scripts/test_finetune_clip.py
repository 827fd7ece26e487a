"""`python -m scripts.finetune_clip`: a tiny run saves a folder that loads as a `clip` reward."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from rewards.from_config import reward_from_config
from scripts.finetune_clip import collect, finetune

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("finetune_clip", overrides=["progress=false", "device=cpu", "frame_size=32", "num_envs=4",
                                                   "env.max_episode_steps=8", *overrides])


def test_collect_pairs_frames_with_captions_of_whole_episodes():
    data = collect(config("frames=40"))
    steps, episode = data["step"], data["episode"]
    assert data["frames"].shape[1:] == (32, 32, 3) and len(data["frames"]) == len(data["captions"]) >= 40
    assert (np.bincount(episode) == 9).all()  # the reset frame + 8 steps, the final frame included
    assert (steps[episode == 0] == np.arange(9)).all() and len(data["success"]) == episode.max() + 1
    assert all(c.startswith("The ") for c in data["captions"])


def test_scripted_reacher_reaches():
    """The collection policy reaches the goal (so LIV sees successful episodes)."""
    data = collect(config("frames=64", "env.max_episode_steps=40", "noise=0.0"))
    assert data["success"].mean() > 0.7


def test_tiny_run_saves_a_checkpoint_that_loads_as_a_clip_reward(tmp_path):
    out = tmp_path / "clip"
    cfg = config("frames=40", "steps=3", "batch_size=8", "liv_weight=0.5", "liv_batch_size=4", f"out={out}")
    assert finetune(cfg) == out
    saved = json.loads((out / "open_clip_config.json").read_text())
    assert saved["model_cfg"]["vision_cfg"]["image_size"] == 64 and saved["crlab"]["env_id"] == "crlab/Reach-v0"
    reward = reward_from_config({"name": "clip", "goal_prompts": ["The fingertip is on the green goal."],
                                 "checkpoint": str(out)}, None, None)
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    values = reward({"frames": frames})
    assert values.shape == (3,) and torch.isfinite(values).all()
    # a second run replaces the folder whole, leaving no temporary folders beside it
    finetune(config("frames=40", "steps=1", "batch_size=8", "seed=1", f"out={out}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]
    retrained = reward_from_config({"name": "clip", "goal_prompts": ["The fingertip is on the green goal."],
                                    "checkpoint": str(out)}, None, None)
    assert not torch.allclose(retrained({"frames": frames}), values)


def test_unknown_policy_or_architecture_is_a_user_error():
    with pytest.raises(ValueError, match="policy"):
        collect(config("policy=greedy", "frames=8"))
    with pytest.raises(ValueError, match="scripted"):
        collect(config("env.id=crlab/Negotiation-v0", "frames=8"))


@pytest.mark.parametrize("override, expected", [
    ("model=nope", "unknown CLIP architecture 'nope'"), ("steps=0", "steps=0 must be an integer > 0"),
    ("frames=abc", "frames='abc' must be an integer > 0"), ("lr=-1", "lr=-1 must be a number > 0"),
])
def test_bad_settings_are_refused_before_collecting(override, expected, monkeypatch):
    """A bad architecture name was refused only after the frames (8,192 by default) were collected."""
    monkeypatch.setattr("scripts.finetune_clip.collect", lambda cfg: pytest.fail("collected before refusing"))
    with pytest.raises(ValueError, match=expected):
        finetune(config(override))
