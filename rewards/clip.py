"""Zero-shot CLIP reward (VLM-RM; Rocamonde et al. 2023): how close a frame's embedding is to a goal prompt's.

x is the normalised image embedding of the frame after the step, g the mean of the normalised goal-prompt
embeddings, b the same for the baseline prompts. Without baseline prompts the reward is x·g (the cosine
similarity for a single goal prompt). With them, goal-baseline regularisation: d = g − b,
P = α d dᵀ/‖d‖² + (1 − α) I and reward = 1 − ½ ‖P (x − g)‖²; α = 0 gives x·g + (1 − ‖g‖²)/2, α = 1 keeps
only the part of x − g along d.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rewards.base import Batch, RewardFileError, RewardModule, batch_to_tensors


def goal_baseline_reward(
    x: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor | None, alpha: float
) -> torch.Tensor:
    """VLM-RM reward (B,) for unit image embeddings x (B, D), goal g (D,) and baseline b (D,) (None: x·g)."""
    if baseline is None:
        return x @ goal
    direction = goal - baseline
    residual = x - goal
    # P v = α (d·v / ‖d‖²) d + (1 − α) v, without forming the D x D matrix
    along = (residual @ direction / direction.dot(direction)).unsqueeze(-1) * direction
    projected = alpha * along + (1.0 - alpha) * residual
    return 1.0 - 0.5 * projected.pow(2).sum(-1)


# Pillow's 8-bit resampling (libImaging/Resample.c), which open_clip's eval transform runs on PIL images: separable,
# horizontal pass then vertical, each with fixed-point coefficients of PRECISION_BITS bits and its output rounded and
# clipped to uint8 before the next step
PIL_PRECISION_BITS = 32 - 8 - 2
_PREPROCESS_ELEMENTS = 1 << 25  # float64 pixels per piece of a batch (256 MiB): bounds the memory of a large chunk
_RESAMPLE_BLOCK = 32  # outputs per matrix product of a pass


def _pil_filter(x: float, bicubic: bool) -> float:
    """Pillow's bicubic (a = -0.5) and bilinear (triangle) kernels, term for term as Resample.c writes them."""
    x = -x if x < 0.0 else x
    if not bicubic:
        return 1.0 - x if x < 1.0 else 0.0
    a = -0.5
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@functools.lru_cache(maxsize=32)
def _pil_coefficients(in_size: int, out_size: int, bicubic: bool) -> np.ndarray:
    """Pillow's fixed-point coefficients (in_size, out_size) for resizing one axis, integers held in float64
    (Resample.c's precompute_coeffs and normalize_coeffs_8bpc: Python floats are C doubles, int() truncates)."""
    scale = filterscale = in_size / out_size
    filterscale = max(filterscale, 1.0)
    support = (2.0 if bicubic else 1.0) * filterscale
    ss = 1.0 / filterscale
    out = np.zeros((in_size, out_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_pil_filter((x + xmin - center + 0.5) * ss, bicubic) for x in range(xmax)]
        ww = 0.0
        for w in k:  # summed in order, as Pillow does
            ww += w
        for x, w in enumerate(k):
            w = w / ww if ww != 0.0 else w
            out[xmin + x, xx] = int(w * (1 << PIL_PRECISION_BITS) + (-0.5 if w < 0 else 0.5))
    return out


@functools.lru_cache(maxsize=32)
def _axis_resample(
    in_size: int, out_size: int, start: int, keep: int, bicubic: bool, device: torch.device
) -> tuple[int, int, list[tuple[int, int, torch.Tensor]] | None]:
    """Resizing one axis from in_size to out_size and keeping outputs [start, start + keep): the input range [lo, hi)
    those outputs read, and the coefficients in blocks of consecutive outputs, each (a, b, (b - a, block) float64)
    with [a, b) the inputs it reads, relative to lo (the coefficients are banded: a block reads a short span, not the
    whole axis); None where the axis keeps its size."""
    if in_size == out_size:
        return start, start + keep, None
    coefficients = _pil_coefficients(in_size, out_size, bicubic)[:, start : start + keep]
    used = np.flatnonzero(coefficients.any(1))
    lo, hi = int(used[0]), int(used[-1]) + 1
    coefficients = coefficients[lo:hi]
    blocks = []
    for j in range(0, keep, _RESAMPLE_BLOCK):
        block = coefficients[:, j : j + _RESAMPLE_BLOCK]
        rows = np.flatnonzero(block.any(1))
        a, b = int(rows[0]), int(rows[-1]) + 1
        blocks.append((a, b, torch.as_tensor(block[a:b] / (1 << PIL_PRECISION_BITS), device=device)))
    return lo, hi, blocks


def _round_clip8(x: torch.Tensor) -> torch.Tensor:
    """Pillow's clip8, (sum + half) >> PRECISION_BITS clipped to [0, 255], on sums already scaled by 2**-PRECISION_BITS
    (exact: dyadic numbers of under 53 significant bits)."""
    return x.add_(0.5).floor_().clamp_(0, 255)


def _resample_rows(x: torch.Tensor, blocks: list[tuple[int, int, torch.Tensor]]) -> torch.Tensor:
    """Pillow's first pass: along the last axis of x (..., cols) (float64 uint8 values)."""
    return _round_clip8(torch.cat([x[..., a:b] @ block for a, b, block in blocks], dim=-1))


def _resample_columns(x: torch.Tensor, blocks: list[tuple[int, int, torch.Tensor]]) -> torch.Tensor:
    """Pillow's second pass: along the second-to-last axis of x (..., rows, cols)."""
    return _round_clip8(torch.cat([block.T @ x[..., a:b, :] for a, b, block in blocks], dim=-2))


def _crop_or_pad(resized: int, target: int) -> tuple[int, int, int, int]:
    """One axis of torchvision's center_crop / open_clip's center_crop_or_pad: (start, keep, pad before, pad after)."""
    if target > resized:
        return 0, resized, (target - resized) // 2, (target - resized + 1) // 2
    return int(round((resized - target) / 2.0)), target, 0, 0


def clip_preprocess(frames: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> normalised model input (B, 3, h, w) float32, batched on the frames' device.

    The same numbers as open_clip's eval transform for `model.visual.preprocess_cfg`
    (`open_clip.image_transform(..., is_train=False)` on PIL images): its output size for each resize mode, PIL's
    antialiased bicubic / bilinear resize on uint8 reproduced exactly (fixed-point coefficients, uint8 rounding and
    clipping after each pass, as float64 matrix products whose integer sums are exact on any device and under
    autocast), torchvision's centre crop or open_clip's crop-or-pad, then to [0, 1] and normalised by mean / std."""
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3 or 0 in frames.shape[1:3]:
        got = f"{tuple(frames.shape)} {frames.dtype}" if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"CLIP frames must be a uint8 tensor (B, H, W, 3) of RGB images, got {got}")
    size = cfg["size"]
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    bicubic = cfg.get("interpolation") != "bilinear"  # open_clip: bilinear, else bicubic ("random" included)
    mode = cfg.get("resize_mode") or "shortest"
    fill = 0
    h, w = frames.shape[1:3]
    if mode == "squash":  # Resize((h, w))
        rh, rw = th, tw
    elif mode == "shortest" and th == tw:  # torchvision's Resize(int): the short side to size, the long one floored
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(th * long / short)
        rh, rw = (new_long, th) if w <= h else (th, new_long)
    elif mode in ("shortest", "longest"):  # open_clip's ResizeKeepRatio, then CenterCrop / CenterCropOrPad
        ratio = max(h / th, w / tw) if mode == "longest" else min(h / th, w / tw)
        rh, rw = round(h / ratio), round(w / ratio)
        if mode == "shortest":
            bicubic = True  # open_clip builds ResizeKeepRatio(image_size) for it, with its default bicubic
        else:
            fill = cfg.get("fill_color", 0)
    else:
        raise ValueError(f"resize_mode={mode!r} is not one of ('shortest', 'longest', 'squash')")
    if min(rh, rw) < 1:
        raise ValueError(f"CLIP frames of {h}x{w} resize to {rh}x{rw} for the model's {th}x{tw} input: too narrow")
    top, keep_h, pad_top, pad_bottom = _crop_or_pad(rh, th)
    left, keep_w, pad_left, pad_right = _crop_or_pad(rw, tw)
    device = frames.device
    if device.type == "mps":  # no float64 there
        frames = frames.cpu()
    row_lo, row_hi, vertical = _axis_resample(h, rh, top, keep_h, bicubic, frames.device)
    col_lo, col_hi, horizontal = _axis_resample(w, rw, left, keep_w, bicubic, frames.device)
    pieces = []
    step = max(1, _PREPROCESS_ELEMENTS // (3 * (row_hi - row_lo) * (col_hi - col_lo)))
    for piece in frames.split(step):
        x = piece[:, row_lo:row_hi, col_lo:col_hi].permute(0, 3, 1, 2)
        x = x.to(torch.float64, memory_format=torch.contiguous_format)  # (b, 3, rows, cols)
        if horizontal is not None:  # Pillow's first pass, along rows (only those the second pass reads)
            x = _resample_rows(x, horizontal)
        if vertical is not None:  # then along columns
            x = _resample_columns(x, vertical)
        pieces.append(x)
    x = torch.cat(pieces).to(device)
    if pad_top or pad_bottom or pad_left or pad_right:
        x = F.pad(x, [pad_left, pad_right, pad_top, pad_bottom], value=float(fill))
    # ToTensor and Normalize, in float32 as torchvision computes them
    x = x.float().div_(255.0)
    mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


WEIGHTS_HOST = ("huggingface.co", 443)  # where open_clip fetches tagged weights from (its hf_hub entries)


def pretrained_weights_cached(model_name: str, tag: str, cache_dir: str | None = None) -> bool:
    """Whether open_clip's weights for (model_name, tag) are already on disk (the Hugging Face cache or open_clip's
    URL cache), so that loading them needs no network. True for tags open_clip does not know (it reports those)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg or "file" in cfg:
        return True
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(hub)
        names = {filename or "open_clip_pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin"}
        if any(isinstance(try_to_load_from_cache(model_id, name, cache_dir=cache_dir), str) for name in names):
            return True
    url = cfg.get("url", "")
    return bool(url) and os.path.isfile(os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"),
                                                     os.path.basename(url)))


def _reachable(host: tuple[str, int], timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(host, timeout=timeout).close()
        return True
    except OSError:
        return False


def load_clip(
    model_name: str, pretrained: str | None, device: str | torch.device = "cpu", cache_dir: str | None = None
) -> tuple[torch.nn.Module, Any]:
    """An open_clip model in eval mode and its tokenizer; `pretrained` is a tag ("openai", ...) or a checkpoint path.

    Tagged weights that are not on disk are downloaded by open_clip when the network is there; without it (or with
    HF_HUB_OFFLINE=1) this fails at once with a RewardFileError saying what to do, instead of minutes of retries. A
    local weights file or `local-dir:` checkpoint that cannot be read is a RewardFileError naming it."""
    import open_clip  # a heavy import, left until a CLIP reward is built so that `import rewards` stays quick

    local_file = pretrained if pretrained is not None and Path(pretrained).is_file() else None
    if model_name.startswith("local-dir:"):
        local_file = model_name.removeprefix("local-dir:")
    elif pretrained is not None and local_file is None:
        if Path(pretrained).suffix in (".pt", ".bin", ".safetensors", ".pth") or os.sep in pretrained:
            raise RewardFileError(f"CLIP weights file {pretrained} does not exist")
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        if not pretrained_weights_cached(model_name, pretrained, cache_dir) and (offline or not _reachable(WEIGHTS_HOST)):
            raise RewardFileError(
                f"CLIP weights {model_name}/{pretrained} are not on this machine and {WEIGHTS_HOST[0]} cannot be "
                f"reached{' (HF_HUB_OFFLINE is set)' if offline else ''}: download them once with a network "
                "(they are cached), or point reward.pretrained at a local weights file or reward.checkpoint at a "
                "scripts.finetune_clip output")
    try:
        model, _, _ = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device, cache_dir=cache_dir
        )
    except Exception as err:
        if local_file is None:
            raise
        lines = str(err).strip().splitlines() or [""]
        raise RewardFileError(f"CLIP checkpoint {local_file} cannot be loaded ({type(err).__name__}: "
                              f"{lines[0][:200]})") from None
    return model.eval().requires_grad_(False), open_clip.get_tokenizer(model_name)


class CLIPReward(RewardModule):
    """VLM-RM reward of the frame after each step; prompt embeddings are computed once, at construction."""

    needs = frozenset({"frames"})
    reads = frozenset({"frames"})

    def __init__(
        self,
        goal_prompts: str | Sequence[str],
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        baseline_prompts: str | Sequence[str] | None = None,
        alpha: float = 0.0,
        device: str | torch.device = "cpu",
        chunk_size: int = 256,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.model, self.tokenizer = load_clip(model_name, pretrained, device, cache_dir)
        self.preprocess_cfg = dict(self.model.visual.preprocess_cfg)
        self.alpha = alpha
        self.chunk_size = chunk_size
        goal_prompts = [goal_prompts] if isinstance(goal_prompts, str) else list(goal_prompts)
        self.register_buffer("goal", self.embed_text(goal_prompts).mean(0))
        if isinstance(baseline_prompts, str):
            baseline_prompts = [baseline_prompts]
        baseline = None if baseline_prompts is None else self.embed_text(list(baseline_prompts)).mean(0)
        self.register_buffer("baseline", baseline)

    def _autocast(self) -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda")

    @torch.no_grad()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit text embeddings (P, D)."""
        tokens = self.tokenizer(prompts).to(self.device)
        with self._autocast():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings (B, D) of uint8 frames (B, H, W, 3), in chunks of `chunk_size`."""
        out = []
        for chunk in frames.split(self.chunk_size):
            pixels = clip_preprocess(chunk, self.preprocess_cfg)  # float32, exactly open_clip's transform
            with self._autocast():
                out.append(self.model.encode_image(pixels).float())
        return F.normalize(torch.cat(out), dim=-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Rewards (B,) from batch["frames"] (B, H, W, 3) uint8."""
        frames = batch_to_tensors({"frames": batch["frames"]}, self.device)["frames"]
        return goal_baseline_reward(self.embed_frames(frames), self.goal, self.baseline, self.alpha)
