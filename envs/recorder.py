"""Rollout recorder: a wrapper that keeps every transition of the episodes it sees and writes them as an mp4
video and an `.npz` rollout file (no pickled objects), so reward modules can be scored on them later.

Rollout file layout, one row per transition t = (s_t, a_t, r_t, s_{t+1}):
    frames (T, H, W, 3) uint8      frame rendered after the step (the state s_{t+1} that r_t describes)
    obs.<key>, next_obs.<key>      observation before / after the step (dict observations), or obs / next_obs
    action (T, *A), reward (T,)    the env's own (ground-truth) reward
    terminated, truncated, is_success (T,) bool
    episode (T,) int, step (T,) int   episode index within the file and step index within the episode
    text (T,) str                  `describe()` after the step, when the env has it ("" otherwise)
    env_id () str, fps () int
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import gymnasium
import imageio.v2 as imageio
import numpy as np

from envs.atomic_file import atomic_write

ROLLOUT_KEYS = ("frames", "action", "reward", "terminated", "truncated", "is_success", "episode", "step", "text")


class RolloutFileError(ValueError):
    """A rollout file is unreadable or lacks the fields of the rollout layout."""


class RolloutRecorder(gymnasium.Wrapper):
    """Records the transitions of a single env (made with `render_mode="rgb_array"`); `save` writes them."""

    def __init__(self, env: gymnasium.Env) -> None:
        if env.render_mode != "rgb_array":
            raise ValueError(f"RolloutRecorder needs render_mode='rgb_array', got {env.render_mode!r}")
        super().__init__(env)
        self.rows: list[dict[str, Any]] = []
        self.episode = -1
        self.t = 0
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        """Reset the env and start a new recorded episode."""
        obs, info = self.env.reset(**kwargs)
        self.episode += 1
        self.t = 0
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Step the env and keep the transition: the frame and `describe()` text after the step, both
        observations, the action, the env's reward and the episode flags (one row of the rollout layout)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        describe = getattr(self.env.unwrapped, "describe", None)
        self.rows.append(
            {
                "frame": self.env.render(),
                "obs": self._obs,
                "next_obs": obs,
                "action": np.asarray(action),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "is_success": bool(info.get("is_success", False)),
                "episode": self.episode,
                "step": self.t,
                "text": describe() if describe is not None else "",
            }
        )
        self._obs = obs
        self.t += 1
        return obs, reward, terminated, truncated, info

    @property
    def num_frames(self) -> int:
        """Transitions recorded since the last `save`."""
        return len(self.rows)

    def save(self, stem: str | Path) -> tuple[Path, Path]:
        """Write `<stem>.mp4` and `<stem>.npz` atomically; return both paths. Clears the recorded rows."""
        if not self.rows:
            raise ValueError("RolloutRecorder.save: nothing recorded yet (run at least one step)")
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        fps = int(self.env.metadata.get("render_fps", 30))
        video, rollout = stem.with_suffix(".mp4"), stem.with_suffix(".npz")
        atomic_write(video, lambda f: imageio.mimwrite(f, list(arrays["frames"]), format="FFMPEG", fps=fps, macro_block_size=1))
        spec = self.env.spec
        arrays["env_id"] = np.array(spec.id if spec is not None else type(self.env.unwrapped).__name__)
        arrays["fps"] = np.array(fps)
        atomic_write(rollout, lambda f: np.savez_compressed(f, **arrays))
        self.rows = []
        return video, rollout

    def _arrays(self) -> dict[str, np.ndarray]:
        rows = self.rows
        out: dict[str, np.ndarray] = {"frames": np.stack([r["frame"] for r in rows]).astype(np.uint8)}
        for name in ("obs", "next_obs"):
            first = rows[0][name]
            if isinstance(first, dict):
                for key in first:
                    out[f"{name}.{key}"] = np.stack([np.asarray(r[name][key]) for r in rows])
            else:
                out[name] = np.stack([np.asarray(r[name]) for r in rows])
        out["action"] = np.stack([r["action"] for r in rows])
        for key, dtype in (("reward", np.float64), ("terminated", bool), ("truncated", bool), ("is_success", bool),
                           ("episode", np.int64), ("step", np.int64)):
            out[key] = np.array([r[key] for r in rows], dtype=dtype)
        out["text"] = np.array([r["text"] for r in rows], dtype=str)
        return out


def load_rollout(path: str | Path) -> dict[str, np.ndarray]:
    """Read a rollout `.npz` (no pickle) and check its layout; errors name the file and what is wrong."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise RolloutFileError(f"rollout file {path} is unreadable: {err}") from err
    missing = [k for k in ROLLOUT_KEYS if k not in arrays]
    if missing:
        raise RolloutFileError(f"rollout file {path} lacks {missing}; expected the fields {list(ROLLOUT_KEYS)}")
    n = len(arrays["reward"])
    wrong = [k for k, v in arrays.items() if v.ndim > 0 and len(v) != n]
    if wrong:
        raise RolloutFileError(f"rollout file {path}: fields {wrong} do not have {n} rows like 'reward'")
    for key, values in arrays.items():  # NaN / inf would surface later as sklearn's bare "Input contains NaN."
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1) if values.ndim else values[None]).all(-1))
            raise RolloutFileError(f"rollout file {path}: '{key}' is not finite (NaN or inf) at {len(bad)} row(s), "
                                   f"first row {int(bad[0])}")
    return arrays
