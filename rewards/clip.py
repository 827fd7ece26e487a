"""Zero-shot CLIP reward (VLM-RM; Rocamonde et al. 2023): how close a frame's embedding is to a goal prompt's.

x is the normalised image embedding of the frame after the step, g the mean of the normalised goal-prompt
embeddings, b the same for the baseline prompts. Without baseline prompts the reward is x·g (the cosine
similarity for a single goal prompt). With them, goal-baseline regularisation: d = g − b,
P = α d dᵀ/‖d‖² + (1 − α) I and reward = 1 − ½ ‖P (x − g)‖²; α = 0 gives x·g + (1 − ‖g‖²)/2, α = 1 keeps
only the part of x − g along d.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Sequence

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


def clip_preprocess(frames: torch.Tensor, cfg: dict[str, Any]) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> normalised model input (B, 3, h, w), batched, following open_clip's
    eval transform for `model.visual.preprocess_cfg` (resize mode, interpolation, centre crop / pad, mean, std)."""
    # torchvision is imported here, not at module level: it pulls in torch._dynamo (~1.6 s), which every
    # `scripts.train` start (config errors included) would otherwise pay whether or not a CLIP reward is used
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    size = cfg["size"]
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    interpolation = InterpolationMode.BILINEAR if cfg.get("interpolation") == "bilinear" else InterpolationMode.BICUBIC
    mode = cfg.get("resize_mode", "shortest")
    x = frames.permute(0, 3, 1, 2).float().div(255.0)
    h, w = x.shape[-2:]
    if mode == "squash":
        x = TF.resize(x, [th, tw], interpolation=interpolation, antialias=True)
    elif mode == "shortest":
        # a square target resizes the short side as torchvision's Resize(int) does (the long side rounds down)
        new = th if th == tw else [round(h * max(th / h, tw / w)), round(w * max(th / h, tw / w))]
        x = TF.center_crop(TF.resize(x, new, interpolation=interpolation, antialias=True), [th, tw])
    elif mode == "longest":
        scale = min(th / h, tw / w)
        x = TF.resize(x, [round(h * scale), round(w * scale)], interpolation=interpolation, antialias=True)
        ph, pw = th - x.shape[-2], tw - x.shape[-1]
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], value=cfg.get("fill_color", 0) / 255.0)
    else:
        raise ValueError(f"resize_mode={mode!r} is not one of ('shortest', 'longest', 'squash')")
    x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL's uint8 output clamps too
    mean = torch.tensor(cfg["mean"], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


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
            with self._autocast():
                out.append(self.model.encode_image(clip_preprocess(chunk, self.preprocess_cfg)).float())
        return F.normalize(torch.cat(out), dim=-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Rewards (B,) from batch["frames"] (B, H, W, 3) uint8."""
        frames = batch_to_tensors({"frames": batch["frames"]}, self.device)["frames"]
        return goal_baseline_reward(self.embed_frames(frames), self.goal, self.baseline, self.alpha)
