"""What every reward module offers: a batch of transitions in, a reward (B,) out.

A batch is a dict with any of the keys
    obs, next_obs   dict of (B, ...) tensors or a (B, ...) tensor
    action          (B, A)
    terminated      (B,) bool: s' is a true terminal state (not a time-limit truncation)
    frames          (B, H, W, 3) uint8, rendered after the step (of s')
    text            list[str] of length B, the env's `describe()` after the step (of s')
    prev_frames, prev_text   the same for s, before the step (used by potential-based shaping)
A module lists in `needs` the keys beyond obs / action / next_obs that it reads, so that the env wrapper only
renders or describes when asked to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from envs.atomic_file import atomic_write_bytes
from envs.tensors import TensorObs, is_text, obs_to_tensor  # noqa: F401  (the reward modules' edge too)

Batch = dict[str, Any]
TENSOR_KEYS = ("obs", "next_obs", "action")


def batch_to_tensors(batch: Batch, device: torch.device | str) -> Batch:
    """Move a transition batch to `device` once: float32 obs / actions, uint8 frames, bool terminated; text stays."""
    out = dict(batch)
    for key in TENSOR_KEYS:
        if key in batch:
            out[key] = obs_to_tensor(batch[key], device)
    for key in ("frames", "prev_frames"):
        if key in batch:
            frames = batch[key]
            if isinstance(frames, (tuple, list)):
                frames = np.stack(frames)
            out[key] = torch.as_tensor(frames, dtype=torch.uint8, device=device)
    if "terminated" in batch:
        out["terminated"] = torch.as_tensor(batch["terminated"], dtype=torch.bool, device=device)
    return out


def flatten_obs(obs: TensorObs, lead_ndim: int | None = None) -> torch.Tensor:
    """Observation with leaves `(*lead, *shape_k)` -> `(*lead, sum_k prod(shape_k))`, leaves concatenated in sorted
    key order. `lead_ndim` None: every leaf is a vector `(*lead, d_k)`."""
    leaves = [obs[k] for k in sorted(obs)] if isinstance(obs, dict) else [obs]
    if lead_ndim is not None:
        leaves = [x.flatten(lead_ndim) if x.ndim > lead_ndim else x[..., None] for x in leaves]
    return torch.cat(leaves, dim=-1) if len(leaves) > 1 else leaves[0]


def lead_ndim_of(obs: TensorObs, flat_dim: int) -> int:
    """How many leading (batch) dims an observation batch has, given that one observation flattens to `flat_dim`
    numbers: the largest k with sum over leaves of prod(shape[k:]) == flat_dim (images included)."""
    leaves = list(obs.values()) if isinstance(obs, dict) else [obs]
    for k in range(min(x.ndim for x in leaves), -1, -1):
        if sum(int(np.prod(x.shape[k:])) for x in leaves) == flat_dim:
            return k
    shapes = [tuple(x.shape) for x in leaves]
    raise ValueError(f"observation leaves of shapes {shapes} do not flatten to the model's {flat_dim} inputs")


def num_transitions(batch: Batch) -> int:
    """Number of transitions B in a batch."""
    for key in ("next_obs", "obs", "action", "frames", "text"):
        if key in batch:
            value = batch[key]
            if isinstance(value, dict):
                value = next(iter(value.values()))
            return len(value)
    raise ValueError(f"cannot tell the batch size of a batch with keys {sorted(batch)}")


class RewardFileError(ValueError):
    """A reward-model or CLIP checkpoint file is missing, truncated, foreign or does not fit the module: the
    message names the file and what is wrong, in one line."""


def _one_line(err: BaseException) -> str:
    """The first line of an exception's text (PyTorch's size-mismatch reports run over many lines)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file; RewardFileError if it is missing, truncated or not safetensors."""
    path = Path(path)
    if not path.is_file():
        raise RewardFileError(f"reward model {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own SafetensorError (truncated header, bad JSON, ...)
        raise RewardFileError(f"reward model {path} is not a readable safetensors file ({_one_line(err)})") from None


class RewardModule(torch.nn.Module):
    """Maps a batch of transitions to rewards (B,) on the module's device."""

    needs: frozenset[str] = frozenset()
    # every batch key `forward` reads (None: it may read any). Lets callers that score many combinations of
    # recorded states and actions (EPIC on rollouts) evaluate each distinct input once.
    reads: frozenset[str] | None = None

    @property
    def device(self) -> torch.device:
        """Device of the first parameter or buffer (CPU for a module that holds none)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def forward(self, batch: Batch) -> torch.Tensor:
        """Rewards (B,) for a batch of transitions (see the module docstring for the keys)."""
        raise NotImplementedError


class LearnedRewardModule(RewardModule):
    """A reward module with weights: `fit` them, `save` them atomically, `load` them back into a like module."""

    def fit(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Train on data; return final metrics."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored beside the weights so that a file says what built it."""
        return {}

    def save(self, path: str | Path) -> None:
        """Write the state dict as safetensors, atomically (envs/atomic_file.py)."""
        path = Path(path)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        metadata = {"class": type(self).__name__, "config": json.dumps(self.config())}
        atomic_write_bytes(path, save(tensors, metadata=metadata))

    def load(self, path: str | Path) -> "LearnedRewardModule":
        """Load weights written by `save` (safetensors; no pickle) into this module; returns self. A file that is
        truncated, foreign or shaped for another module is a RewardFileError naming it; the module is unchanged."""
        read_safetensors_metadata(path)
        try:
            state = load_file(str(path), device=str(self.device))
        except Exception as err:
            raise RewardFileError(f"reward model {path} is truncated or corrupt ({_one_line(err)})") from None
        expected = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != expected:
            missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
            wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
            detail = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra else
                      f"{wrong[0]} is {found[wrong[0]]}, the module's is {expected[wrong[0]]}")
            raise RewardFileError(f"reward model {path} does not fit this {type(self).__name__} ({detail})")
        self.load_state_dict(state)
        return self

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> "LearnedRewardModule":
        """Build a module from the config that `save` stored beside the weights, then load them."""
        metadata = read_safetensors_metadata(path)
        if metadata.get("class") != cls.__name__:
            what = f"a {metadata['class']}" if "class" in metadata else "no crlab model (no 'class' in its metadata)"
            raise RewardFileError(f"reward model {path} holds {what}, not a {cls.__name__}")
        try:
            config = json.loads(metadata["config"])
            module = cls(**config, device=device)
        except (KeyError, TypeError, ValueError) as err:
            raise RewardFileError(f"reward model {path} has an unusable config in its metadata ({_one_line(err)})") from None
        return module.load(path)
