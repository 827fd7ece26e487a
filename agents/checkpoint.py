"""Checkpoints: atomic writes, and loading that never unpickles arbitrary objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from envs.atomic_file import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or not one of ours."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors and plain containers) to `path` via a temp file + rename, so a kill never leaves
    a half-written checkpoint behind."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` with `weights_only=True`; clear error if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a crlab checkpoint ({type(err).__name__})") from err
    if not isinstance(state, dict) or "agent" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a crlab checkpoint (missing 'agent' or 'config')")
    return state
