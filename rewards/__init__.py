"""crlab reward modules: a batch of transitions in, rewards (B,) out, plus reward metrics (EPIC).

`REWARDS` maps a name to the module's constructor; `vlm_preference` builds the same Bradley–Terry model as
`preference` (it differs in its teacher, see rewards/vlm_preference.py). `rewards.from_config` builds a module
from a `scripts/conf/reward/NAME.yaml` config, as `reward=NAME` does on the command line.

    from rewards import make_reward
    from rewards.wrapper import VectorRewardWrapper
    reward = make_reward("clip", goal_prompts="a robot arm touching the green dot", baseline_prompts="a robot arm")
    envs = VectorRewardWrapper(gymnasium.make_vec("crlab/Reach-v0", num_envs=8, render_mode="rgb_array"), reward)
"""

from __future__ import annotations

from typing import Any, Callable

from rewards.base import RewardModule
from rewards.clip import CLIPReward
from rewards.language import LanguageReward
from rewards.preference import PreferenceRewardModel

REWARDS: dict[str, Callable[..., RewardModule]] = {
    "clip": CLIPReward,
    "language": LanguageReward,
    "preference": PreferenceRewardModel,
    "vlm_preference": PreferenceRewardModel,
}


def make_reward(name: str, **kwargs: Any) -> RewardModule:
    """Build the reward module registered as `name` with keyword arguments `kwargs`."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; known rewards: {sorted(REWARDS)}")
    return REWARDS[name](**kwargs)
