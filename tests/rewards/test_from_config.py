"""`reward=NAME`: every config of scripts/conf/reward/ builds its module (and online learner) by name."""

import json
from pathlib import Path

import gymnasium
import open_clip
import pytest
import torch
from omegaconf import OmegaConf

import envs  # noqa: F401  (registers crlab/Reach-v0)
from rewards.clip import CLIPReward
from rewards.from_config import NAMES, feedback_from_config, reward_from_config
from rewards.language import LanguageReward
from rewards.online_preference import OnlinePreferenceLearning
from rewards.preference import PreferenceRewardModel
from rewards.vlm_preference import VLMPreferenceTeacher

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf" / "reward"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def config(name, **overrides):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return cfg


@pytest.fixture(scope="module")
def spaces():
    env = gymnasium.make("crlab/Reach-v0")
    return env.observation_space, env.action_space


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A local-dir CLIP checkpoint, as scripts.finetune_clip writes it."""
    folder = tmp_path_factory.mktemp("clip_dir")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_CONFIG)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    return str(folder)


def test_every_reward_config_has_a_name_the_builder_knows():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(NAMES)
    for path in CONF.glob("*.yaml"):
        assert OmegaConf.load(path).name == path.stem


def test_none_is_the_env_reward(spaces):
    assert reward_from_config(config("none"), *spaces) is None
    assert feedback_from_config(config("none"), None, 4) is None


def test_preference_fresh_with_online_learning_or_loaded(spaces, tmp_path):
    cfg = config("preference", hidden_dim=16)
    model = reward_from_config(cfg, *spaces)
    assert isinstance(model, PreferenceRewardModel) and model.obs_dim == 12 and model.action_dim == 2
    learner = feedback_from_config(cfg, model, num_envs=4)
    assert isinstance(learner, OnlinePreferenceLearning) and learner.window.capacity == 50_000 // 4
    path = tmp_path / "rm.safetensors"
    model.save(path)
    loaded = reward_from_config(config("preference", path=str(path)), None, None)
    assert loaded.config() == model.config()
    fixed = config("preference", path=str(path), **{"online.query_every": 0})
    assert feedback_from_config(fixed, loaded, 4) is None
    with pytest.raises(ValueError, match="path=FILE or online"):
        feedback_from_config(config("preference", **{"online.query_every": 0}), model, 4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reward_from_config(config("preference", path=str(tmp_path / "missing.safetensors")), *spaces)


def test_unknown_options_name_the_valid_ones(spaces):
    with pytest.raises(ValueError, match="hidden_dims.*valid options"):
        reward_from_config({**config("preference"), "hidden_dims": 3}, *spaces)
    cfg = config("preference", hidden_dim=8, **{"online.teacher": {"temperature": 1}})
    with pytest.raises(ValueError, match="reward.online.teacher.*beta"):
        feedback_from_config(cfg, reward_from_config(cfg, *spaces), 1)


def test_clip_from_a_finetune_checkpoint(clip_dir, spaces):
    module = reward_from_config(config("clip", checkpoint=clip_dir), *spaces)
    assert isinstance(module, CLIPReward) and module.goal.shape == (32,)
    with pytest.raises(FileNotFoundError, match="not a finetune_clip output"):
        reward_from_config(config("clip", checkpoint=str(Path(clip_dir).parent)), *spaces)


def test_vlm_preference_learns_from_a_clip_frame_teacher(clip_dir, spaces):
    cfg = config("vlm_preference", hidden_dim=16, **{"labeler.checkpoint": clip_dir})
    model = reward_from_config(cfg, *spaces)
    assert isinstance(model, PreferenceRewardModel) and model.input == "next_obs"
    learner = feedback_from_config(cfg, model, num_envs=2)
    assert isinstance(learner.teacher, VLMPreferenceTeacher) and learner.needs == {"frames"}
    assert learner.window.keep_frames and learner.segment_length == 1


def test_language(spaces):
    module = reward_from_config(config("language"), *spaces, discount=0.99)
    assert isinstance(module, LanguageReward) and module.needs == {"text", "prev_text"}


def test_language_shaping_uses_the_agents_discount_and_refuses_another(spaces):
    module = reward_from_config(config("language"), *spaces, discount=0.95)  # the agent's γ (ppo: 0.95)
    assert isinstance(module, LanguageReward) and module.gamma == 0.95
    assert reward_from_config(config("language", gamma=0.95), *spaces, discount=0.95).gamma == 0.95
    with pytest.raises(ValueError, match=r"reward.gamma=0.99 differs from the discount 0.95"):
        reward_from_config(config("language", gamma=0.99), *spaces, discount=0.95)
    with pytest.raises(ValueError, match="has none: set reward.gamma"):
        reward_from_config(config("language"), *spaces)
