"""CURL: crops, bilinear InfoNCE logits, the frame-stack replay buffer, a contrastive learning check, checkpoints,
and a short learning run on a pixel bandit."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from agents import make_agent
from agents.curl import CURLAgent, CURLConfig, curl_logits, curl_loss
from agents.encoders import ConvTrunk, center_crop, crop_at, default_crop_size, random_crop
from agents.networks import orthogonal_init_

CPU = torch.device("cpu")
TINY = dict(batch_size=16, hidden=[32, 32], num_filters=8, warmup_steps=0, buffer_size=256)


def coordinate_images(b: int, c: int, h: int, w: int) -> torch.Tensor:
    """images[n, ch, i, j] = 10000 n + 1000 ch + 100 i + j: every pixel says where it came from."""
    n, ch, i, j = torch.meshgrid(*(torch.arange(d) for d in (b, c, h, w)), indexing="ij")
    return 10000 * n + 1000 * ch + 100 * i + j


def test_random_crop_takes_whole_windows_at_its_corners():
    images = coordinate_images(64, 3, 20, 24)
    crops, corners = random_crop(images, 16, torch.Generator().manual_seed(0))
    assert crops.shape == (64, 3, 16, 16)
    assert corners[:, 0].max() <= 4 and corners[:, 1].max() <= 8 and corners.min() >= 0
    assert len({tuple(c) for c in corners.tolist()}) > 10  # independent corners per sample
    for n in (0, 17, 63):
        top, left = corners[n].tolist()
        torch.testing.assert_close(crops[n], images[n, :, top:top + 16, left:left + 16])
    torch.testing.assert_close(crop_at(images, torch.zeros(64, 2, dtype=torch.long), 16), images[..., :16, :16])


def test_center_crop_and_default_sizes():
    images = coordinate_images(2, 3, 100, 100)
    assert center_crop(images, 84)[0, 0, 0, 0].item() == 100 * 8 + 8
    assert default_crop_size(100) == 84 and default_crop_size(84) == 71
    assert ConvTrunk(9, 84).out_dim == 32 * 35 * 35  # CURL: 84 -> 41 -> 39 -> 37 -> 35


def test_curl_logits_known_answer():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    keys = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logits = curl_logits(queries, keys, w)  # q W k^T = [[3, 0], [0, 4]], minus row max
    torch.testing.assert_close(logits, torch.tensor([[0.0, -3.0], [-4.0, 0.0]]))
    loss, accuracy = curl_loss(logits)
    torch.testing.assert_close(loss, F.cross_entropy(torch.tensor([[3.0, 0.0], [0.0, 4.0]]), torch.tensor([0, 1])))
    assert accuracy.item() == 1.0
    assert curl_loss(curl_logits(queries, keys.flip(0), w))[1].item() == 0.0  # keys swapped: labels are wrong


def smooth_images(b: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(b, 9, size, size) uint8 low-frequency images (random 6x6 patterns upsampled)."""
    coarse = torch.rand(b, 9, 6, 6, generator=generator)
    return (F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 255).to(torch.uint8)


def test_orthogonal_init_is_delta_orthogonal_for_convs_and_orthogonal_for_linears():
    torch.manual_seed(0)
    conv, linear = torch.nn.Conv2d(9, 32, 3), torch.nn.Linear(64, 16)
    for m in (conv, linear):
        orthogonal_init_(m)
        assert torch.all(m.bias == 0)
    centre = conv.weight[:, :, 1, 1]  # (32, 9): orthonormal columns scaled by the ReLU gain sqrt(2)
    torch.testing.assert_close(centre.T @ centre, 2.0 * torch.eye(9), atol=1e-5, rtol=0)
    off_centre = conv.weight.clone()
    off_centre[:, :, 1, 1] = 0
    assert torch.all(off_centre == 0)
    torch.testing.assert_close(linear.weight @ linear.weight.T, torch.eye(16), atol=1e-5, rtol=0)
    # the agent starts from it: every conv layer of its encoder (and the key encoder copy) is delta-orthogonal
    agent = CURLAgent(spaces.Box(0, 255, (9, 40, 40), np.uint8), spaces.Box(-1, 1, (2,)), CURLConfig(**TINY), 1, 10, CPU)
    for encoder in (agent.critic.encoder, agent.critic_target.encoder):
        for layer in encoder.conv.net:
            if isinstance(layer, torch.nn.Conv2d):
                assert torch.all(layer.weight[:, :, 0, 0] == 0) and torch.all(layer.bias == 0)


def test_conv_layout_and_precision_keep_the_features():
    torch.manual_seed(0)
    reference = ConvTrunk(9, 32, num_filters=8, channels_last=False)  # NCHW, fp32
    images = torch.randint(0, 256, (4, 9, 32, 32), dtype=torch.uint8)
    expected = reference(images)
    for channels_last, precision, tol in ((True, "fp32", 1e-5), (True, "bf16", 3e-2), (False, "bf16", 3e-2)):
        trunk = ConvTrunk(9, 32, num_filters=8, channels_last=channels_last, precision=precision)
        trunk.load_state_dict(reference.state_dict())
        out = trunk(images)
        assert out.dtype == torch.float32 and out.is_contiguous() and out.shape == expected.shape
        torch.testing.assert_close(out, expected, rtol=tol, atol=tol * expected.abs().max().item())
        assert (precision == "bf16") != torch.allclose(out, expected, rtol=1e-5, atol=1e-6)  # bf16 really rounds
        out.sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trunk.parameters())
    with pytest.raises(ValueError, match=r"'fp16' is not one of \['fp32', 'bf16'\]"):
        ConvTrunk(9, 32, precision="fp16")


def test_contrastive_accuracy_rises_on_a_fixed_batch():
    torch.manual_seed(0)
    agent = CURLAgent(spaces.Box(0, 255, (9, 40, 40), np.uint8), spaces.Box(-1, 1, (2,)),
                      CURLConfig(**TINY, lr=1e-3), 1, 10, CPU)
    images = smooth_images(32, 40, torch.Generator().manual_seed(1))
    batch = {"obs": images, "next_obs": images, "action": torch.zeros(32, 2), "reward": torch.zeros(32),
             "not_done": torch.ones(32)}
    accuracy = [agent.update_on(batch)["curl_accuracy"].item() for _ in range(160)]
    # chance is 1/32: the query encoder learns to match each crop to the momentum encoder's other crop
    assert np.mean(accuracy[:10]) < 0.15 and np.mean(accuracy[-20:]) > 0.5, accuracy[::10]


def test_act_observe_update_and_checkpoint_round_trip():
    torch.manual_seed(0)
    space = spaces.Dict({"pixels": spaces.Box(0, 255, (6, 24, 24), np.uint8), "desired_goal": spaces.Box(-1, 1, (2,))})
    action_space = spaces.Box(-2, 2, (3,))
    agent = make_agent("curl", {**TINY, "warmup_steps": 8, "updates_per_step": 0.5}, space, action_space, 4, 10, CPU)
    frames = torch.randint(0, 255, (4, 3, 3, 24, 24)).float()
    obs = {"pixels": frames[:, :2].flatten(1, 2), "desired_goal": torch.zeros(4, 2)}
    next_obs = {"pixels": frames[:, 1:].flatten(1, 2), "desired_goal": torch.zeros(4, 2)}
    done = np.zeros(4, dtype=bool)
    for step in range(3):
        action = agent.act(obs)
        assert action.shape == (4, 3) and action.abs().max() <= 2
        agent.observe(obs, action, torch.ones(4), next_obs, done, done)
        metrics = agent.update()
        assert (metrics == {}) == (step == 0)  # warmup_steps=8: learning starts at the second vector step
    assert agent.num_updates == 4  # 0.5 updates per env step x 4 copies x 2 vector steps
    assert {"critic_loss", "curl_loss", "curl_accuracy"} <= set(metrics)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    restored = make_agent("curl", TINY, space, action_space, 4, 10, CPU)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_rejects_state_observations():
    with pytest.raises(ValueError, match="image observations"):
        CURLAgent(spaces.Box(-1, 1, (4,)), spaces.Box(-1, 1, (2,)), CURLConfig(), 1, 10, CPU)


def dot_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 20, 20) black frames with a white 4x4 square in one of two columns (left or right half); the
    target action is -0.5 for left, +0.5 for right."""
    right = torch.randint(0, 2, (n,), generator=generator)
    rows = torch.randint(0, 16, (n,), generator=generator)
    images = torch.zeros(n, 3, 20, 20)
    for i in range(n):
        col = 13 if right[i] else 3
        images[i, :, rows[i]:rows[i] + 4, col:col + 4] = 255.0
    return images, right.float() - 0.5


def test_learns_a_pixel_bandit():
    """One-step episodes, reward -|a - target(image)|: the trained policy beats the best blind action (a = 0,
    mean reward -0.5) and a random one (about -0.58). SAC's critic, CURL's encoder and the actor all have to work."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    space = spaces.Box(0, 255, (3, 20, 20), np.uint8)
    cfg = {**TINY, "batch_size": 64, "hidden": [64, 64], "num_conv_layers": 2, "warmup_steps": 256, "buffer_size": 4096,
           "updates_per_step": 0.25, "crop_size": 18, "lr": 1e-3, "actor_update_every": 1}
    agent = make_agent("curl", cfg, space, spaces.Box(-1, 1, (1,)), 8, 1, CPU)
    done, not_done = np.ones(8, dtype=bool), np.zeros(8, dtype=bool)
    for _ in range(400):
        obs, target = dot_images(8, g)
        action = agent.act(obs)
        agent.observe(obs, action, -(action[:, 0] - target).abs(), obs, done, not_done)
        agent.update()
    obs, target = dot_images(500, g)
    reward = -(agent.act(obs, deterministic=True)[:, 0] - target).abs().mean().item()
    assert reward > -0.25
