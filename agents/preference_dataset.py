"""Segment-pair preference datasets: the `.npz` layout that `scripts.make_preferences` writes and CPL reads.

One row per labelled pair p of two segments a and b of L steps (no pickled objects):
    obs_a, obs_b (P, L, ...)            or obs_a.<key>, obs_b.<key> for dict observations
    action_a, action_b (P, L, *A)
    label (P,) float in [0, 1]          P(a preferred over b); 0.5 is a tie
    return_a, return_b (P,)             the segments' ground-truth returns (diagnostics, not for training)
    env_id () str, labeler () str
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from envs.atomic_file import atomic_write

REQUIRED = ("action_a", "action_b", "label")


class PreferenceDatasetError(ValueError):
    """A preference dataset file is unreadable or lacks the fields of the layout."""


def segment_obs(data: dict[str, np.ndarray], side: str) -> dict[str, np.ndarray] | np.ndarray:
    """The observations of side `a` or `b`: an array (P, L, ...) or a dict of them."""
    if f"obs_{side}" in data:
        return data[f"obs_{side}"]
    prefix = f"obs_{side}."
    return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def save_preference_dataset(path: str | Path, obs_a: Any, action_a: np.ndarray, obs_b: Any, action_b: np.ndarray,
                            label: np.ndarray, **extra: np.ndarray) -> Path:
    """Write a dataset in the layout above (obs as arrays (P, L, ...) or dicts of them) atomically; returns the path."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"action_a": action_a, "action_b": action_b, "label": np.asarray(label, np.float32)}
    for side, obs in (("a", obs_a), ("b", obs_b)):
        if isinstance(obs, dict):
            arrays.update({f"obs_{side}.{k}": v for k, v in obs.items()})
        else:
            arrays[f"obs_{side}"] = obs
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays, **extra))
    return path


def load_preference_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Read a dataset (no pickle) and check its layout; errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preference dataset {path} does not exist (make one with scripts.make_preferences)")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise PreferenceDatasetError(f"preference dataset {path} is unreadable: {err}") from err
    missing = [k for k in REQUIRED if k not in data]
    obs_a, obs_b = segment_obs(data, "a"), segment_obs(data, "b")
    if isinstance(obs_a, dict) and not obs_a or isinstance(obs_b, dict) and not obs_b:
        missing.append("obs_a / obs_b")
    if missing:
        raise PreferenceDatasetError(f"preference dataset {path} lacks {missing}")
    pairs, length = data["action_a"].shape[:2]
    wrong = [k for k, v in data.items() if k.startswith(("obs_", "action_")) and v.shape[:2] != (pairs, length)]
    if wrong or data["label"].shape != (pairs,):
        raise PreferenceDatasetError(f"preference dataset {path}: fields {wrong or ['label']} do not match "
                                     f"{pairs} pairs of {length}-step segments")
    return data
