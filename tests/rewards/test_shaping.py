"""Potential-based shaping: F = γΦ(s') − Φ(s) telescopes over an episode."""

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from rewards.base import RewardModule
from rewards.shaping import PotentialShapedReward, potential_based_shaping
from rewards.wrapper import RewardWrapper


def goal_potential(state):
    """Φ(s) = −‖achieved_goal − desired_goal‖, (B,)."""
    obs = state["obs"]
    return -torch.linalg.norm(obs["achieved_goal"] - obs["desired_goal"], dim=-1)


class ConstantReward(RewardModule):
    def forward(self, batch):
        return torch.full((len(batch["action"]),), 2.0)


def test_shaping_terms_telescope_over_an_episode():
    gen = torch.Generator().manual_seed(0)
    states = {"achieved_goal": torch.randn(21, 2, generator=gen), "desired_goal": torch.randn(21, 2, generator=gen)}
    batch = {
        "obs": {k: v[:-1] for k, v in states.items()},
        "action": torch.zeros(20, 2),
        "next_obs": {k: v[1:] for k, v in states.items()},
    }
    shaping = PotentialShapedReward(goal_potential, gamma=1.0)(batch)
    phi = goal_potential({"obs": states})
    assert shaping.sum().item() == pytest.approx((phi[-1] - phi[0]).item(), abs=1e-5)


def test_shaping_adds_to_the_base_reward_and_batches():
    gen = torch.Generator().manual_seed(1)
    make = lambda: {"achieved_goal": torch.randn(6, 2, generator=gen), "desired_goal": torch.randn(6, 2, generator=gen)}
    batch = {"obs": make(), "action": torch.zeros(6, 2), "next_obs": make()}
    module = PotentialShapedReward(goal_potential, gamma=0.9, base=ConstantReward())
    expected = 2.0 + 0.9 * goal_potential({"obs": batch["next_obs"]}) - goal_potential({"obs": batch["obs"]})
    torch.testing.assert_close(module(batch), expected)
    one_at_a_time = torch.cat([module({k: _index(v, i) for k, v in batch.items()}) for i in range(6)])
    torch.testing.assert_close(module(batch), one_at_a_time)


def _index(x, i):
    return {k: v[i : i + 1] for k, v in x.items()} if isinstance(x, dict) else x[i : i + 1]


def test_terminal_next_state_has_zero_potential():
    potential, next_potential = torch.tensor([1.0, 1.0]), torch.tensor([3.0, 3.0])
    shaped = potential_based_shaping(potential, next_potential, 0.5, terminated=torch.tensor([False, True]))
    torch.testing.assert_close(shaped, torch.tensor([0.5, -1.0]))


def test_text_potential_asks_for_text_on_both_sides():
    class TextLength(torch.nn.Module):
        needs = frozenset({"text"})

        def forward(self, state):
            return torch.tensor([float(len(t)) for t in state["text"]])

    module = PotentialShapedReward(TextLength(), gamma=1.0)
    assert module.needs == {"text", "prev_text"}
    reward = module({"prev_text": ["ab", "abc"], "text": ["abcd", "a"], "action": torch.zeros(2, 1)})
    torch.testing.assert_close(reward, torch.tensor([2.0, -2.0]))


def test_reach_episode_through_the_wrapper_telescopes():
    env = RewardWrapper(gymnasium.make("crlab/Reach-v0"), PotentialShapedReward(goal_potential, gamma=1.0))
    obs, _ = env.reset(seed=0)
    first, total, truncated = obs, 0.0, False
    while not truncated:
        obs, reward, _, truncated, info = env.step(env.action_space.sample())
        total += reward
    tensor = lambda o: {"obs": {k: torch.as_tensor(v, dtype=torch.float32)[None] for k, v in o.items()}}
    expected = (goal_potential(tensor(obs)) - goal_potential(tensor(first))).item()
    assert total == pytest.approx(expected, abs=1e-4)
    assert np.isfinite(info["gt_reward"])
