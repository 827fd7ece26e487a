"""Zero-shot CLIP reward (VLM-RM) on a tiny randomly initialised open_clip model loaded from a local checkpoint."""

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
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


def _levels(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Normalised model input -> 0-255 grey levels (un-normalised with the config's mean / std)."""
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (x.cpu() * std + mean) * 255


def _open_clip_pixels(frames, cfg: dict) -> torch.Tensor:
    """open_clip's own eval transform for `cfg` (PIL on uint8), one frame at a time."""
    preprocess = open_clip.image_transform(cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"],
                                           resize_mode=cfg["resize_mode"], interpolation=cfg["interpolation"],
                                           fill_color=cfg.get("fill_color", 0))
    return torch.stack([preprocess(Image.fromarray(np.asarray(f))) for f in frames])


@pytest.fixture(scope="module")
def rendered():
    """Real crlab frames: crlab/Reach-v0 (240 x 240) and crlab/FetchPush-v0 (480 x 480), after reset and a few
    random steps."""
    import gymnasium

    import envs  # noqa: F401  (registers the crlab ids)

    out = {}
    for env_id in ("crlab/Reach-v0", "crlab/FetchPush-v0"):
        env = gymnasium.make(env_id, render_mode="rgb_array")
        env.action_space.seed(0)
        frames = []
        for seed in (0, 1):
            env.reset(seed=seed)
            frames.append(env.render())
            for _ in range(5):
                env.step(env.action_space.sample())
            frames.append(env.render())
        env.close()
        out[env_id] = np.stack(frames)
    return out


@pytest.fixture(scope="module")
def vit_b_32_sized(tmp_path_factory):
    """`local-dir:` name of a tiny random CLIP at 224 px whose preprocessing config is ViT-B-32's own (open_clip's
    pretrained table: OpenAI mean / std, bicubic, shortest side), and its open_clip model and eval transform."""
    from safetensors.torch import save_file

    pretrained = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "patch_size": 32, "head_width": 16},
              "text_cfg": TINY_CONFIG["text_cfg"]}
    folder = tmp_path_factory.mktemp("clip224")
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    preprocess_cfg = {k: pretrained[k] for k in ("mean", "std", "interpolation", "resize_mode")}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess_cfg}))
    name = f"local-dir:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return name, model.eval(), preprocess


@pytest.mark.parametrize("env_id", ["crlab/Reach-v0", "crlab/FetchPush-v0"])
def test_preprocess_is_open_clips_own_transform_on_rendered_frames(rendered, vit_b_32_sized, env_id):
    name, model, preprocess = vit_b_32_sized
    cfg = dict(model.visual.preprocess_cfg)
    pretrained = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    assert tuple(cfg["size"]) == (224, 224) and cfg["resize_mode"] == "shortest" == pretrained["resize_mode"]
    assert cfg["interpolation"] == "bicubic" and tuple(cfg["mean"]) == pretrained["mean"]
    frames = rendered[env_id]
    theirs = torch.stack([preprocess(Image.fromarray(f)) for f in frames])  # open_clip's PIL path
    ours = clip_preprocess(torch.as_tensor(frames), cfg)
    assert ours.shape == theirs.shape == (len(frames), 3, 224, 224) and ours.dtype == torch.float32
    # the float resize it replaces was 3.1 (Reach) and 8.3 (FetchPush) levels off on these frames; PIL's uint8
    # arithmetic, reproduced, is 0 off
    assert (_levels(ours, cfg) - _levels(theirs, cfg)).abs().max() <= 1.5


@pytest.mark.parametrize("baseline, alpha", [(None, 0.0), (BASELINE, 1.0)])
def test_rewards_equal_the_reference_pipeline_on_rendered_frames(rendered, vit_b_32_sized, baseline, alpha):
    name, model, preprocess = vit_b_32_sized
    module = CLIPReward(GOAL, name, None, baseline_prompts=baseline, alpha=alpha, chunk_size=3)
    for frames in rendered.values():
        with torch.no_grad():  # the reference: open_clip's transform and model, then the VLM-RM formula
            x = F.normalize(model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames])), dim=-1)
        reference = goal_baseline_reward(x, module.goal, module.baseline, alpha)
        ours = module({"frames": frames})
        assert (ours - reference).abs().max() <= 1e-3
        # the model sees the same numbers, so only float rounding is left (the float resize was 8e-6 - 6e-5 off on
        # this random model, against a reward std of ~1e-3; 1.7e-2 against 0.159 with ViT-B-32's real weights)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [(24, 32), 20, 50])
def test_preprocess_matches_open_clip_for_each_resize_mode(mode, interpolation, size):
    """Non-square targets (open_clip's ResizeKeepRatio + crop, or pad with fill_color), down- and upscaling, noise
    and hard edges (the cases where bicubic overshoot and uint8 rounding matter most)."""
    rng = np.random.default_rng(0)
    cfg = {"size": size, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "interpolation": interpolation,
           "resize_mode": mode, "fill_color": 77}
    for h, w in [(40, 90), (37, 29)]:
        frames = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
        frames[1] = (frames[1] > 127) * 255
        ours = clip_preprocess(torch.as_tensor(frames), cfg)
        theirs = _open_clip_pixels(frames, cfg)
        assert ours.shape == theirs.shape
        assert (_levels(ours, cfg) - _levels(theirs, cfg)).abs().max() <= 1.5


def test_batched_preprocess_matches_open_clip_transform(checkpoint, frames):
    _, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=checkpoint)
    module = CLIPReward(GOAL, TINY, checkpoint)
    ours = clip_preprocess(frames, module.preprocess_cfg)
    theirs = torch.stack([preprocess(Image.fromarray(f.numpy())) for f in frames])
    assert ours.shape == theirs.shape == (5, 3, 32, 32)
    assert (_levels(ours, module.preprocess_cfg) - _levels(theirs, module.preprocess_cfg)).abs().max() <= 1.5
    assert clip_preprocess(frames[:0], module.preprocess_cfg).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.uint8), torch.zeros(2, 8, 8, dtype=torch.uint8),
                                 torch.zeros(2, 8, 8, 4, dtype=torch.uint8), torch.zeros(2, 8, 8, 3),
                                 torch.zeros(2, 0, 8, 3, dtype=torch.uint8)])
def test_bad_frames_are_a_one_line_error(bad):
    cfg = {"size": 16, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    with pytest.raises(ValueError, match=r"^CLIP frames must be a uint8 tensor \(B, H, W, 3\) of RGB images, got [^\n]+$"):
        clip_preprocess(bad, cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_preprocess_on_the_device_equals_the_cpu(rendered):
    cfg = {"size": 224, "mean": (0.48, 0.46, 0.41), "std": (0.27, 0.26, 0.28), "interpolation": "bicubic",
           "resize_mode": "shortest"}
    frames = torch.as_tensor(rendered["crlab/FetchPush-v0"])
    cpu = clip_preprocess(frames, cfg)
    with torch.autocast("cuda", dtype=torch.float16):  # CLIPReward's setting on CUDA: it must not touch the sums
        cuda = clip_preprocess(frames.cuda(), cfg)
    assert cuda.device.type == "cuda" and cuda.dtype == torch.float32
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-6)


def test_registry_builds_clip(checkpoint):
    module = make_reward("clip", goal_prompts=GOAL, model_name=TINY, pretrained=checkpoint)
    assert isinstance(module, CLIPReward) and module.needs == {"frames"}
