"""Pixel encoders and image augmentation shared by the pixel agents (CURL, and CPL / PPO from pixels).

The encoder is SAC-AE's and CURL's (Yarats et al. 2019; Laskin et al. 2020): four 3x3 convolutions with 32
filters (stride 2, then 1), ReLU, a linear layer, LayerNorm and tanh to a `feature_dim` vector. Inputs are uint8
(B, C, H, W) frame stacks (channels = 3 * frames), scaled to [0, 1] inside.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

PIXEL_KEY = "pixels"  # the image entry of dict observations (envs/pixels.py)
CONV_PRECISIONS = ("fp32", "bf16")  # bf16: the convolutions under bfloat16 autocast


def pixel_shape(space: spaces.Space) -> tuple[int, int, int] | None:
    """(C, H, W) of a uint8 channels-first image Box, or of a Dict's `pixels` entry; None if there is no image."""
    if isinstance(space, spaces.Dict):
        space = space.spaces.get(PIXEL_KEY)
    if isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8:
        return tuple(int(d) for d in space.shape)  # type: ignore[return-value]
    return None


def pixels_of(obs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The image tensor (B, C, H, W) of an observation batch: the tensor itself or its `pixels` entry."""
    return obs[PIXEL_KEY] if isinstance(obs, dict) else obs


def default_crop_size(image_size: int) -> int:
    """CURL's crop, 100 -> 84, kept proportional for other sizes (84 -> 71, 64 -> 54)."""
    return round(image_size * 0.84)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent random `size` x `size` crops of a batch (B, C, H, W), in one gather on the images' device.

    Returns the crops (B, C, size, size) and their top-left corners (B, 2) as (row, col).
    """
    b, _, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the images ({h}x{w})")
    corners = torch.stack([
        torch.randint(0, h - size + 1, (b,), device=images.device, generator=generator),
        torch.randint(0, w - size + 1, (b,), device=images.device, generator=generator),
    ], dim=1)
    return crop_at(images, corners, size), corners


def crop_at(images: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Crops (B, C, size, size) of images (B, C, H, W) whose top-left corners are corners (B, 2) = (row, col).

    Indexes a strided view of every size x size window, so the gather copies whole crop rows (6x faster on CPU than
    indexing with four broadcast index tensors, the same result).
    """
    windows = images.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H - size + 1, W - size + 1, size, size)
    batch = torch.arange(images.shape[0], device=images.device)
    return windows[batch, :, corners[:, 0], corners[:, 1]]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central `size` x `size` crop of (B, C, H, W) images (CURL acts and evaluates on it)."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


class ConvTrunk(nn.Module):
    """The convolutional part: uint8 or float (B, C, S, S) in [0, 255] -> flat float32 features (B, out_dim).

    `channels_last` (the default) runs the convolutions on NHWC tensors, oneDNN's and cuDNN's fast layout: the same
    numbers up to rounding. `precision="bf16"` runs them under bfloat16 autocast (for CPUs with AVX512-BF16); the
    features are float32 either way. A whole CURL update (DMC cartpole-swingup x4, batch 128, a 2-core AMD EPYC) runs
    1.10x as fast with NHWC as with NCHW and 1.38x as fast again with bf16: 1.15 / 1.27 / 1.75 updates/s in the
    records docs/benchmarks/records/throughput/curl_update_cpu_{nchw_fp32,nhwc_fp32,nhwc_bf16}.json.
    """

    def __init__(self, in_channels: int, image_size: int, num_layers: int = 4, num_filters: int = 32,
                 channels_last: bool = True, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in CONV_PRECISIONS:
            raise ValueError(f"conv precision {precision!r} is not one of {list(CONV_PRECISIONS)}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_filters, 3, stride=2), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(num_filters, num_filters, 3, stride=1), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        side = (image_size - 3) // 2 + 1 - 2 * (num_layers - 1)
        if side < 1:
            raise ValueError(f"image size {image_size} is too small for {num_layers} conv layers")
        self.out_dim = num_filters * side * side
        self.channels_last = channels_last
        self.bf16 = precision == "bf16"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, S, S), uint8 or float in [0, 255] -> flat features (B, out_dim)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        x = images.contiguous(memory_format=layout).float() / 255.0  # reordered while still uint8: 4x fewer bytes
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            h = self.net(x)
        return h.to(torch.float32, memory_format=torch.contiguous_format).flatten(1)  # one copy: cast and NCHW order


class FeatureHead(nn.Module):
    """Linear -> LayerNorm -> tanh: conv features (B, D) -> (B, feature_dim)."""

    def __init__(self, in_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, feature_dim)
        self.norm = nn.LayerNorm(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv features (B, D) -> features (B, feature_dim) in [-1, 1]."""
        return torch.tanh(self.norm(self.linear(x)))


class PixelEncoder(nn.Module):
    """CURL's encoder: images (B, C, S, S) -> features (B, feature_dim); `detach_conv` stops gradients into the
    convolutions (CURL's actor reads the critic's conv features that way)."""

    def __init__(self, in_channels: int, image_size: int, feature_dim: int = 50, num_layers: int = 4,
                 num_filters: int = 32, channels_last: bool = True, precision: str = "fp32") -> None:
        super().__init__()
        self.conv = ConvTrunk(in_channels, image_size, num_layers, num_filters, channels_last, precision)
        self.head = FeatureHead(self.conv.out_dim, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor, detach_conv: bool = False) -> torch.Tensor:
        """Images (B, C, S, S) -> features (B, feature_dim); `detach_conv` stops gradients into the conv layers."""
        h = self.conv(images)
        return self.head(h.detach() if detach_conv else h)
