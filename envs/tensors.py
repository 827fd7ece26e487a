"""The host-to-device edge for observations, shared by agents and reward modules: batched observations (dicts or
arrays, numpy or torch, leaves (N, ...)) -> float32 tensors on one device; text leaves stay lists of N strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TensorObs = dict[str, torch.Tensor | list[str]] | torch.Tensor


def is_text(leaf: Any) -> bool:
    """A text leaf: N strings as a list, or a str / object numpy array (from a gymnasium Text space)."""
    if isinstance(leaf, (list, tuple)):
        return bool(leaf) and isinstance(leaf[0], str)
    return isinstance(leaf, np.ndarray) and leaf.dtype.kind in "OUS"


def obs_to_tensor(obs: dict[str, Any] | Any, device: torch.device | str) -> TensorObs:
    """Observation batch -> float32 tensors on `device` (one conversion per leaf); text leaves -> lists of str."""
    def convert(leaf: Any) -> torch.Tensor | list[str]:
        if is_text(leaf):
            return [str(t) for t in leaf]
        return torch.as_tensor(leaf, dtype=torch.float32).to(device, non_blocking=True)

    if isinstance(obs, dict):
        return {k: convert(v) for k, v in obs.items()}
    return convert(obs)
