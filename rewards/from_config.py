"""What `reward=NAME` builds: a reward module (and its online learner) from a `scripts/conf/reward/NAME.yaml` config.

    none            the env's own reward: no module
    preference      Bradley–Terry reward model: loaded from `path`, and/or learned online from a scripted
                    teacher on the env's ground-truth return (`online.query_every` > 0)
    vlm_preference  the same model, learned online from a frame labeler (RL-VLM-F; `labeler`: built-in CLIP)
    clip            zero-shot CLIP reward; `checkpoint` = a `scripts.finetune_clip` output directory
    language        MiniLM instruction similarity as potential-based shaping
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import gymnasium
import torch

from rewards import REWARDS
from rewards.base import RewardFileError, RewardModule
from rewards.clip import CLIPReward
from rewards.online_preference import OnlinePreferenceLearning
from rewards.preference import PreferenceRewardModel, SyntheticLabeler
from rewards.vlm_preference import CLIPFrameLabeler, VLMPreferenceTeacher

NAMES = ("none", *sorted(REWARDS))
PREFERENCE_NAMES = ("preference", "vlm_preference")


def _checked(fn: Callable[..., Any], options: dict[str, Any], what: str) -> dict[str, Any]:
    """`options` if `fn` accepts every key, else a ValueError naming the unknown keys and the valid ones."""
    valid = set(inspect.signature(fn).parameters) - {"self", "device"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"{what} has no option(s) {unknown}; valid options: {sorted(valid)}")
    return options


def check_env(trained_on: str | None, env_id: str | None, what: str, any_env: bool) -> None:
    """RewardFileError if a model trained on `trained_on` is to score env `env_id` (unless `any_env`)."""
    if trained_on and env_id and trained_on != env_id and not any_env:
        raise RewardFileError(f"{what} was trained on {trained_on}, not {env_id}: set reward.any_env=true to score "
                              "it on another env anyway")


def _clip_options(options: dict[str, Any], env_id: str | None = None, any_env: bool = False) -> dict[str, Any]:
    """`checkpoint=DIR` (a finetune_clip output) -> open_clip's `model_name="local-dir:DIR"`, no pretrained tag;
    the env it was fine-tuned on (its open_clip_config.json) must be `env_id` unless `any_env`."""
    options = dict(options)
    checkpoint = options.pop("checkpoint", None)
    if checkpoint is not None:
        config_file = Path(checkpoint) / "open_clip_config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"CLIP checkpoint {checkpoint} is not a finetune_clip output directory "
                                    "(no open_clip_config.json)")
        try:
            config = json.loads(config_file.read_text())
        except (OSError, ValueError) as err:
            raise RewardFileError(f"CLIP checkpoint {config_file} is not readable JSON ({err})") from None
        trained_on = (config.get("crlab") or {}).get("env_id") if isinstance(config, dict) else None
        check_env(trained_on, env_id, f"CLIP checkpoint {checkpoint}", any_env)
        options["model_name"], options["pretrained"] = f"local-dir:{checkpoint}", None
    return options


def reward_from_config(
    cfg: Mapping[str, Any],
    observation_space: gymnasium.Space | None,
    action_space: gymnasium.Space | None,
    device: str | torch.device = "cpu",
    discount: float | None = None,
    env_id: str | None = None,
) -> RewardModule | None:
    """The reward module of a reward config (None for `none`); spaces size a fresh preference model.

    `discount` is the γ the rewards will be discounted with (the agent's, or EPIC's in eval_rewards): a shaping
    reward's `gamma: null` takes it, and a different explicit gamma is refused, because potential-based shaping
    γΦ(s') − Φ(s) leaves the optimal policy unchanged only when γ is the agent's (Ng et al. 1999). `env_id` is the
    env whose transitions it will score: a saved model or CLIP checkpoint trained on another is refused unless the
    config says `any_env: true`; a fresh model records it."""
    options = {k: v for k, v in dict(cfg).items() if k not in ("name", "path", "online", "labeler", "any_env")}
    any_env = bool(cfg.get("any_env", False))
    name, path = cfg["name"], cfg.get("path")
    if name not in NAMES:
        raise ValueError(f"unknown reward {name!r}; known rewards: {list(NAMES)}")
    if name == "none":
        return None
    if "gamma" in options:
        options["gamma"] = shaping_gamma(options["gamma"], discount, name)
    if name in PREFERENCE_NAMES:
        if path is not None:
            if not Path(path).is_file():
                raise FileNotFoundError(f"reward model {path} does not exist")
            model = PreferenceRewardModel.from_file(path, device)
            check_env(model.env_id, env_id, f"reward model {path}", any_env)
            return model
        if observation_space is None or action_space is None:
            raise ValueError(f"reward {name!r} needs a trained model here: set its path=FILE")
        _checked(PreferenceRewardModel.__init__, {"obs_dim": 0, "action_dim": 0, **options}, f"reward {name!r}")
        return PreferenceRewardModel.from_spaces(observation_space, action_space, **options, env_id=env_id,
                                                 device=device)
    if name == "clip":
        options = _clip_options(options, env_id, any_env)
    return REWARDS[name](**_checked(REWARDS[name], options, f"reward {name!r}"), device=device)


def shaping_gamma(gamma: float | None, discount: float | None, name: str) -> float:
    """The shaping γ of reward `name`: the discount when gamma is None; gamma itself when it equals the discount."""
    if gamma is None:
        if discount is None:
            raise ValueError(f"reward={name} shapes with the agent's discount, and this agent has none: set reward.gamma")
        return float(discount)
    if discount is not None and abs(float(gamma) - float(discount)) > 1e-12:
        raise ValueError(f"reward.gamma={gamma} differs from the discount {discount} the rewards are used with: "
                         "potential-based shaping is policy-invariant only with that discount; leave reward.gamma=null")
    return float(gamma)


def feedback_from_config(
    cfg: Mapping[str, Any], module: RewardModule | None, num_envs: int, seed: int = 0
) -> OnlinePreferenceLearning | None:
    """The online learner of a preference config whose `online.query_every` > 0 (else None)."""
    name = cfg["name"]
    online = dict(cfg.get("online") or {})
    if name not in PREFERENCE_NAMES or not online.get("query_every"):
        if name in PREFERENCE_NAMES and cfg.get("path") is None:
            raise ValueError(f"reward={name} needs reward.path=FILE or online learning (reward.online.query_every > 0)")
        return None
    assert isinstance(module, PreferenceRewardModel)
    teacher_options = dict(online.pop("teacher", None) or {})
    if name == "preference":
        teacher = SyntheticLabeler(**_checked(SyntheticLabeler, teacher_options, "reward.online.teacher"), seed=seed)
    else:
        labeler = dict(cfg["labeler"])
        task_text, tie_margin = labeler.pop("task_text"), labeler.pop("tie_margin", 0.0)
        clip = CLIPReward(task_text, **_checked(CLIPReward, _clip_options(labeler, module.env_id, bool(cfg.get("any_env"))),
                                          "reward.labeler"), device=module.device)
        teacher = VLMPreferenceTeacher(CLIPFrameLabeler(clip, tie_margin), task_text)
    _checked(OnlinePreferenceLearning, online, "reward.online")
    return OnlinePreferenceLearning(module, teacher, num_envs=num_envs, seed=seed, **online)
