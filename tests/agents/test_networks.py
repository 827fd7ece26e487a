"""Residual depth (Wang et al. 2025): the block's layout, shapes, and gradients through 32+ layers."""

import pytest
import torch
from torch import nn

from agents import make_agent_config
from agents.networks import ResidualBlock, encoder, residual_mlp


def test_a_residual_block_is_four_dense_layernorm_swish_layers_around_an_identity_skip():
    block = ResidualBlock(8)
    kinds = [type(m) for m in block.layers]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.SiLU] * 4  # LayerNorm after every Dense, before the activation
    x = torch.randn(5, 8)
    torch.testing.assert_close(block(x), x + block.layers(x))
    for layer in block.layers[0::3]:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    torch.testing.assert_close(block(x), x)  # inner layers at zero: the block is the identity


@pytest.mark.parametrize("depth", [4, 8, 16, 32])
def test_residual_networks_have_depth_over_four_blocks_and_the_right_shapes(depth):
    net = residual_mlp(7, 32, depth, 3)
    assert sum(isinstance(m, ResidualBlock) for m in net) == depth // 4
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == depth + 2  # in, the blocks', out
    assert net(torch.randn(11, 7)).shape == (11, 3)
    assert all(torch.all(m.bias == 0) for m in net.modules() if isinstance(m, nn.Linear))


def test_gradients_reach_the_first_layer_of_a_64_layer_network():
    torch.manual_seed(0)
    deep, flat = residual_mlp(10, 64, 64, 4), encoder(10, 4, [64] * 64, layer_norm=False)
    for net in (deep, flat):
        net(torch.randn(32, 10)).pow(2).mean().backward()
    first = lambda net: next(m for m in net.modules() if isinstance(m, nn.Linear)).weight.grad.norm()  # noqa: E731
    assert torch.isfinite(first(deep)) and first(deep) > 1e-3
    assert first(deep) > 100 * first(flat)  # a plain 64-layer ReLU MLP's first layer barely learns


def test_crl_depth_is_checked_and_builds_residual_encoders_and_actor():
    with pytest.raises(ValueError, match="depth=6 must be 0"):
        make_agent_config("crl", {"depth": 6})
    import gymnasium

    import envs  # noqa: F401
    from agents import make_agent

    env = gymnasium.make("crlab/Reach-v0")
    agent = make_agent("crl", {"depth": 8, "width": 32}, env.observation_space, env.action_space, 1, 50,
                       torch.device("cpu"))
    for net in (agent.critic.sa_encoder, agent.critic.goal_encoder, agent.actor.net):
        assert sum(isinstance(m, ResidualBlock) for m in net) == 2
