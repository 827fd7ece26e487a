"""Add a reward module: the distance to the goal, and the same reward plus a potential-based shaping term.

Run it: `.venv/bin/python docs/examples/custom_reward.py` (tests/test_docs.py does, and checks what it prints).
It writes two small `RewardModule`s, registers them in `REWARDS`, swaps one in for an env's reward with
`VectorRewardWrapper`, records a few Reach episodes and scores both modules as `scripts.eval_rewards` does:
EPIC calls a reward and its shaped version the same reward, although their correlation with it differs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from envs.scripted import noisy_policy, scripted_policy
from rewards import REWARDS, make_reward
from rewards.base import Batch, RewardModule
from rewards.evaluation import env_reward_fn, evaluate_module, load_rollouts
from rewards.wrapper import VectorRewardWrapper
from scripts.evaluate import record_policy


class GoalDistanceReward(RewardModule):
    """Minus the distance from the achieved to the desired goal after the step: (B,) from `next_obs` goals (B, G)."""

    reads = frozenset({"next_obs"})  # what `forward` reads: lets EPIC evaluate each distinct input once

    def forward(self, batch: Batch) -> torch.Tensor:
        goals = batch["next_obs"]
        return -torch.linalg.vector_norm(goals["achieved_goal"] - goals["desired_goal"], dim=-1)


class ShapedGoalDistanceReward(GoalDistanceReward):
    """The same plus γΦ(s') − Φ(s) with Φ(s) = 10 × the fingertip's x: a different number at every step, the
    same optimal policies (Ng et al. 1999)."""

    reads = frozenset({"obs", "next_obs"})

    def __init__(self, gamma: float = 0.99) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, batch: Batch) -> torch.Tensor:
        potential = lambda obs: 10.0 * obs["achieved_goal"][..., 0]  # noqa: E731
        return super().forward(batch) + self.gamma * potential(batch["next_obs"]) - potential(batch["obs"])


# In crlab itself: entries in rewards/__init__.py's REWARDS and a scripts/conf/reward/NAME.yaml holding its
# constructor's arguments, after which `reward=goal_distance` works in scripts.train and scripts.eval_rewards.
REWARDS["goal_distance"] = GoalDistanceReward
REWARDS["shaped_goal_distance"] = ShapedGoalDistanceReward


def main() -> None:
    # 1. Swap the module in for the env's reward: the env's own stays in info["gt_reward"].
    vec = VectorRewardWrapper(gymnasium.make_vec("crlab/Reach-v0", num_envs=4), make_reward("goal_distance"))
    vec.reset(seed=0)
    _, reward, _, _, info = vec.step(np.zeros((4, 2), dtype=np.float32))
    print(f"wrapped step: module reward {np.round(reward, 3)}, env reward {info['gt_reward']}")
    assert (reward <= 0).all() and (info["gt_reward"] == -1).all()  # sparse env reward: -1 away from the goal
    vec.close()

    # 2. Record noisy scripted episodes of Reach with the dense reward (-distance), as scripts.record does.
    with tempfile.TemporaryDirectory() as tmp:
        env = gymnasium.make("crlab/Reach-v0", reward_type="dense", render_mode="rgb_array", width=64, height=64)
        policy = noisy_policy(scripted_policy(env), env.action_space, noise=0.5, rng=np.random.default_rng(0))
        record_policy(policy, env, episodes=4, seed=0, stem=Path(tmp) / "reach_noisy")
        data = load_rollouts(tmp)
        gt_fn, why = env_reward_fn(data, env)
        assert gt_fn is not None, why

        # 3. Score both modules against the env's reward, as scripts.eval_rewards does.
        rows = {}
        for name in ("goal_distance", "shaped_goal_distance"):
            metrics, _ = evaluate_module(make_reward(name), data, gt_fn, gamma=0.99, pairs=200)
            rows[name] = metrics
            print(f"{name:22s} Pearson {metrics['pearson']:.3f}  EPIC distance {metrics['epic']:.3f}  "
                  f"preference accuracy {metrics['preference_accuracy']:.3f}")
        env.close()
    assert rows["goal_distance"]["epic"] < 0.01 and rows["goal_distance"]["pearson"] > 0.999  # the env's own reward
    assert rows["shaped_goal_distance"]["epic"] < 0.05  # shaping leaves EPIC (nearly) unchanged ...
    assert rows["shaped_goal_distance"]["pearson"] < 0.99  # ... while it moves the plain correlation


if __name__ == "__main__":
    sys.exit(main())
