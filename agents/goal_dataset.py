"""Offline goal-conditioned datasets: the `.npz` layout that `scripts.make_dataset` writes and offline agents read
(`agent=crl agent.dataset=PATH`, `agent=gcbc agent.dataset=PATH`). No pickled objects.

One row per env step t, episodes stored one after another (OGBench's layout, plus achieved goals):
    observations (T, S) float32         the state the action was taken in
    actions (T, A) float32
    next_observations (T, S) float32    the state it led to (the true last state at an episode's end)
    achieved_goals (T, G), next_achieved_goals (T, G) float32   the goal each of those two states achieves
    terminals (T,) bool                 True at the last step of each episode (OGBench's `terminals`)
    env_id () str, policy () str, noise () float, seed () int, episodes () int   how it was collected

`load_goal_dataset` also reads OGBench's own files (observations, actions, terminals; `next_observations` where
present): a goal there is a whole observation, so the achieved goals are the observations themselves.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from envs.atomic_file import atomic_write

STEP_FIELDS = ("observations", "actions", "next_observations", "achieved_goals", "next_achieved_goals", "terminals")


class GoalDatasetError(ValueError):
    """A goal dataset file is unreadable or lacks the fields of the layout."""


def save_goal_dataset(path: str | Path, steps: dict[str, np.ndarray], **meta: str | float | int) -> Path:
    """Write the STEP_FIELDS arrays of `steps` and the collection settings `meta` atomically; returns the path."""
    path = Path(path).with_suffix(".npz")
    arrays = {k: np.asarray(steps[k], dtype=bool if k == "terminals" else np.float32) for k in STEP_FIELDS}
    arrays.update({k: np.asarray(v) for k, v in meta.items()})
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    return path


def episode_bounds(terminals: np.ndarray) -> np.ndarray:
    """(E, 2) [start, end) of each complete episode (a trailing unfinished one is dropped)."""
    ends = np.flatnonzero(terminals) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([starts, ends], 1)


def load_goal_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Read a crlab or OGBench goal dataset (no pickle) into the STEP_FIELDS layout; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"goal dataset {path} does not exist (make one with python -m scripts.make_dataset)")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise GoalDatasetError(f"goal dataset {path} is unreadable: {err}") from err
    missing = [k for k in ("observations", "actions", "terminals") if k not in data]
    if missing:
        raise GoalDatasetError(f"goal dataset {path} lacks {missing} (fields: {sorted(data)})")
    if "achieved_goals" not in data:  # an OGBench file: goals are observations
        obs = data["observations"]
        nxt = data.get("next_observations")
        if nxt is None:  # OGBench's compact files: the next observation is the next row (within an episode)
            nxt = np.concatenate([obs[1:], obs[-1:]])
        data.update(next_observations=nxt, achieved_goals=obs, next_achieved_goals=nxt)
    steps = len(data["observations"])
    wrong = [k for k in STEP_FIELDS if len(data[k]) != steps]
    if wrong:
        raise GoalDatasetError(f"goal dataset {path}: fields {wrong} do not have {steps} rows like observations")
    data["terminals"] = data["terminals"].astype(bool)
    if not data["terminals"].any():
        raise GoalDatasetError(f"goal dataset {path} has no complete episode (no True in terminals)")
    for key in STEP_FIELDS[:-1]:
        data[key] = data[key].astype(np.float32).reshape(steps, -1)
        if not np.isfinite(data[key]).all():
            raise GoalDatasetError(f"goal dataset {path}: {key} holds NaN or inf")
    return data
