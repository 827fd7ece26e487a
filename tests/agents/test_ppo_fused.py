"""The closed-form PPO gradient equals autograd's on the same loss, in every clipping regime."""

import pytest
import torch
from gymnasium import spaces

from agents.ppo import clipped_surrogate_loss, value_loss
from agents.ppo_fused import ppo_gradients, tanh_mlp_layers
from agents.ppo_policy import ActorCritic

SHAPES = {"vector": ((5,), torch.float32)}


def minibatch(policy: ActorCritic, continuous: bool, batch: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Old log-probs and values set near the current ones, so ratios and value steps fall on both sides of the
    clip range."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 5, generator=g)
    with torch.no_grad():
        out, values = policy({"vector": x})
        actions = out + torch.randn(out.shape, generator=g) if continuous else torch.randint(0, out.shape[1], (batch,), generator=g)
        log_probs, _ = policy.log_prob_entropy(out, actions)
    return {
        "x": x, "actions": actions,
        "old_log_probs": log_probs + 0.4 * torch.randn(batch, generator=g),
        "old_values": values + 0.4 * torch.randn(batch, generator=g),
        "returns": values + torch.randn(batch, generator=g),
        "advantages": torch.randn(batch, generator=g),
    }


def autograd_grads(policy: ActorCritic, mb: dict, value_clip: float | None, vf_coef: float, ent_coef: float) -> list[torch.Tensor]:
    policy.zero_grad(set_to_none=True)
    out, values = policy({"vector": mb["x"]})
    log_prob, entropy = policy.log_prob_entropy(out, mb["actions"])
    pg = clipped_surrogate_loss(log_prob - mb["old_log_probs"], mb["advantages"], 0.2)
    v = value_loss(values, mb["old_values"], mb["returns"], value_clip)
    (pg - ent_coef * entropy + vf_coef * v).backward()
    return [p.grad.clone() for p in policy.parameters()]


@pytest.mark.parametrize("continuous, value_clip, ent_coef, hidden", [
    (True, 0.2, 0.0, [16, 16]), (True, None, 0.01, [16, 12, 8]), (False, 0.2, 0.05, [16]), (False, None, 0.0, [16, 16])])
def test_fused_gradients_equal_autograd(continuous, value_clip, ent_coef, hidden):
    torch.manual_seed(0)
    action_space = spaces.Box(-1, 1, (3,)) if continuous else spaces.Discrete(4)
    policy = ActorCritic(SHAPES, action_space, hidden, init_log_std=-0.3)
    with torch.no_grad():  # a non-trivial actor head (CleanRL initialises it near zero)
        tanh_mlp_layers(policy.actor)[-1].weight.mul_(50)
    mb = minibatch(policy, continuous)
    expected = autograd_grads(policy, mb, value_clip, 0.5, ent_coef)
    for p in policy.parameters():
        p.grad = torch.full_like(p, float("nan"))  # every entry must be overwritten
    log_ratio, pg, v, entropy = ppo_gradients(policy, mb["x"], mb["actions"], mb["old_log_probs"], mb["old_values"],
                                             mb["returns"], mb["advantages"], 0.2, value_clip, 0.5, ent_coef)
    ratio = log_ratio.exp()
    assert ((ratio - 1).abs() > 0.2).float().mean() > 0.2 and ((ratio - 1).abs() < 0.2).float().mean() > 0.2
    for (name, p), want in zip(policy.named_parameters(), expected):
        torch.testing.assert_close(p.grad, want, rtol=1e-4, atol=1e-6, msg=name)
    out, values = policy({"vector": mb["x"]})
    log_prob, want_entropy = policy.log_prob_entropy(out, mb["actions"])
    torch.testing.assert_close(pg, clipped_surrogate_loss(log_prob - mb["old_log_probs"], mb["advantages"], 0.2))
    torch.testing.assert_close(v, value_loss(values, mb["old_values"], mb["returns"], value_clip))
    torch.testing.assert_close(entropy, want_entropy)


def test_rejects_other_network_shapes():
    with pytest.raises(ValueError, match="Linear/Tanh"):
        tanh_mlp_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
