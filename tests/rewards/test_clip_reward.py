"""Zero-shot CLIP reward (VLM-RM) on a tiny randomly initialised open_clip model loaded from a local checkpoint."""

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from rewards import make_reward
from rewards.clip import CLIPReward, clip_preprocess, goal_baseline_reward

TINY = "crlab-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
GOAL = "a robot arm touching the green dot"
BASELINE = "a robot arm"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny architecture registered with open_clip, and a local checkpoint of seeded random weights."""
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None)
    path = folder / "tiny.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def frames():
    return torch.as_tensor(np.random.default_rng(0).integers(0, 256, size=(5, 48, 64, 3), dtype=np.uint8))


def test_goal_baseline_reward_on_hand_built_embeddings():
    x, g, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    # α = 1: d = (0, 1, −1), x − g = (1, −1, 0), P(x − g) = (d·(x−g) / ‖d‖²) d = (0, −½, ½); 1 − ½·½ = 0.75
    assert goal_baseline_reward(x, g, b, alpha=1.0).item() == pytest.approx(0.75)
    # α = 0: P = I, 1 − ½‖x − g‖² = 1 − ½·2 = 0 = x·g
    assert goal_baseline_reward(x, g, b, alpha=0.0).item() == pytest.approx(0.0)
    # any α against the explicit matrix P = α d dᵀ/‖d‖² + (1 − α) I
    gen = torch.Generator().manual_seed(0)
    x, g, b = (torch.nn.functional.normalize(torch.randn(n, 8, generator=gen), dim=-1) for n in (4, 1, 1))
    g, b = g[0], b[0]
    d = g - b
    for alpha in (0.0, 0.3, 1.0):
        P = alpha * torch.outer(d, d) / d.dot(d) + (1 - alpha) * torch.eye(8)
        expected = 1 - 0.5 * ((x - g) @ P.T).pow(2).sum(-1)
        torch.testing.assert_close(goal_baseline_reward(x, g, b, alpha), expected)
    torch.testing.assert_close(goal_baseline_reward(x, g, None, 0.0), x @ g)


def test_alpha_zero_is_affine_in_the_plain_cosine_similarity(checkpoint, frames):
    goals = [GOAL, "the fingertip is on the goal"]
    plain = CLIPReward(goals, TINY, checkpoint)({"frames": frames})  # x·g, g the mean of two unit prompts
    regularised = CLIPReward(goals, TINY, checkpoint, baseline_prompts=BASELINE, alpha=0.0)
    g_norm2 = regularised.goal.dot(regularised.goal)
    assert g_norm2 < 0.999  # a real mean of two prompts, so the intercept (1 − ‖g‖²)/2 is not zero
    torch.testing.assert_close(regularised({"frames": frames}), plain + (1 - g_norm2) / 2)
    # with a single goal prompt, α = 0 is exactly the cosine similarity between frame and prompt embeddings
    single = CLIPReward(GOAL, TINY, checkpoint, baseline_prompts=BASELINE, alpha=0.0)
    cosine = torch.nn.functional.cosine_similarity(
        single.model.encode_image(clip_preprocess(frames, single.preprocess_cfg)),
        single.model.encode_text(single.tokenizer([GOAL])),
    )
    torch.testing.assert_close(single({"frames": frames}), cosine, rtol=1e-5, atol=1e-5)


def test_alpha_one_matches_the_formula_on_model_embeddings(checkpoint, frames):
    module = CLIPReward(GOAL, TINY, checkpoint, baseline_prompts=[BASELINE, "a robot"], alpha=1.0)
    x = module.embed_frames(frames)
    g = module.embed_text([GOAL])[0]
    b = module.embed_text([BASELINE, "a robot"]).mean(0)
    d = g - b
    along = ((x - g) @ d / d.dot(d))[:, None] * d
    torch.testing.assert_close(module({"frames": frames}), 1 - 0.5 * along.pow(2).sum(-1))


def test_batched_equals_one_at_a_time_and_text_is_embedded_once(checkpoint, frames):
    module = CLIPReward(GOAL, TINY, checkpoint, baseline_prompts=BASELINE, alpha=0.5, chunk_size=2)
    module.model.encode_text = lambda *args, **kwargs: pytest.fail("prompt embeddings must be cached")
    batched = module({"frames": frames.numpy()})
    single = torch.cat([module({"frames": frames[i : i + 1]}) for i in range(len(frames))])
    assert batched.shape == (5,)
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_batched_preprocess_matches_open_clip_transform(checkpoint, frames):
    _, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=checkpoint)
    module = CLIPReward(GOAL, TINY, checkpoint)
    ours = clip_preprocess(frames, module.preprocess_cfg)
    theirs = torch.stack([preprocess(Image.fromarray(f.numpy())) for f in frames])
    assert ours.shape == theirs.shape == (5, 3, 32, 32)
    # PIL resizes uint8 images, we resize floats: a fraction of a grey level apart on average
    assert (ours - theirs).abs().mean() < 0.02


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_preprocess_output_size_for_each_resize_mode(mode):
    cfg = {"size": (24, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear", "resize_mode": mode}
    out = clip_preprocess(torch.zeros(2, 40, 90, 3, dtype=torch.uint8), cfg)
    assert out.shape == (2, 3, 24, 32)


def test_registry_builds_clip(checkpoint):
    module = make_reward("clip", goal_prompts=GOAL, model_name=TINY, pretrained=checkpoint)
    assert isinstance(module, CLIPReward) and module.needs == {"frames"}
