"""The closed-form PPO step: its gradient equals autograd's on the same loss in every clipping regime, its Adam
equals torch.optim.Adam, and the flat parameter is the policy's."""

import pytest
import torch
from gymnasium import spaces

from agents.ppo import clipped_surrogate_loss, value_loss
from agents.ppo_fused import FlatLayout, adam_, flatten_parameters, ppo_gradients, tanh_mlp_layers
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
    autograd_grads(policy, mb, value_clip, 0.5, ent_coef)
    layers = lambda net: [(layer.weight, layer.bias) for layer in tanh_mlp_layers(net)]  # noqa: E731
    with torch.no_grad():
        grads, (log_ratio, pg, v, entropy) = ppo_gradients(
            layers(policy.actor), policy.actor_log_std if continuous else None, layers(policy.critic), mb["x"],
            mb["actions"], mb["old_log_probs"], mb["old_values"], mb["returns"], mb["advantages"], 0.2, value_clip,
            0.5, ent_coef)
    ratio = log_ratio.exp()
    assert ((ratio - 1).abs() > 0.2).float().mean() > 0.2 and ((ratio - 1).abs() < 0.2).float().mean() > 0.2
    params = FlatLayout.parameters(policy)
    assert len(grads) == len(params) == len(list(policy.parameters()))
    names = {id(p): name for name, p in policy.named_parameters()}
    for p, grad in zip(params, grads):
        torch.testing.assert_close(grad, p.grad, rtol=1e-4, atol=1e-6, msg=names[id(p)])
    out, values = policy({"vector": mb["x"]})
    log_prob, want_entropy = policy.log_prob_entropy(out, mb["actions"])
    torch.testing.assert_close(pg, clipped_surrogate_loss(log_prob - mb["old_log_probs"], mb["advantages"], 0.2))
    torch.testing.assert_close(v, value_loss(values, mb["old_values"], mb["returns"], value_clip))
    torch.testing.assert_close(entropy, want_entropy)


def test_rejects_other_network_shapes():
    with pytest.raises(ValueError, match="Linear/Tanh"):
        tanh_mlp_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))


def test_adam_matches_torch_adam():
    torch.manual_seed(0)
    param, grads = torch.randn(50), [torch.randn(50) * 10 ** k for k in (-3, 0, 1, -1, 0)]
    reference = torch.nn.Parameter(param.clone())
    optimizer = torch.optim.Adam([reference], lr=0.1, eps=1e-5)
    exp_avg, exp_avg_sq, step = torch.zeros(50), torch.zeros(50), torch.zeros(())
    for i, grad in enumerate(grads):
        lr = 0.1 * (1 - i / len(grads))  # annealed, as PPO does
        optimizer.param_groups[0]["lr"] = lr
        reference.grad = grad.clone()
        optimizer.step()
        adam_(param, grad, exp_avg, exp_avg_sq, step, torch.tensor(lr), (0.9, 0.999), 1e-5)
        torch.testing.assert_close(param, reference.detach(), rtol=1e-5, atol=1e-5)  # steps are ~0.1
    assert step.item() == len(grads)
    torch.testing.assert_close(exp_avg_sq, optimizer.state[reference]["exp_avg_sq"])


@pytest.mark.parametrize("continuous", [True, False])
def test_flat_parameter_is_the_policys(continuous):
    torch.manual_seed(0)
    policy = ActorCritic(SHAPES, spaces.Box(-1, 1, (3,)) if continuous else spaces.Discrete(4), [16, 8], init_log_std=-0.3)
    x = torch.randn(10, 5)
    before_out, before_values = policy({"vector": x})
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    flat, layout = flatten_parameters(policy)
    assert flat.numel() == sum(v.numel() for v in state.values())
    assert policy.state_dict().keys() == state.keys()
    with torch.no_grad():
        out, values = policy({"vector": x})
        torch.testing.assert_close(out, before_out)
        torch.testing.assert_close(values, before_values)
        actor, log_std, critic = layout.views(flat)
        assert (log_std is not None) == continuous and len(actor) == len(critic) == 3
        torch.testing.assert_close(critic[1][0], state["critic.2.weight"])
        flat.add_(1.0)  # a step on the flat tensor moves the modules' parameters
    assert torch.equal(policy.critic[2].weight, state["critic.2.weight"] + 1)
