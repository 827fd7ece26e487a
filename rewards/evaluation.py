"""Reward metrics on recorded rollouts (the `.npz` layout of `envs/recorder.py`): how well a module's reward
agrees with the env's own.

Per module: Pearson and Spearman correlation with the recorded reward; EPIC distance (rewards/epic.py) to the
env's reward function, with the rollouts' own states and actions as the coverage distribution; preference
accuracy on random pairs of segments; success-detection AUROC.

A state is a row's s' (next_obs, frames, text after the step). The s-side frame / text of an episode's first
transition was not recorded (the recorder keeps frames after each step), so there the module sees s' in
their place; every other transition has its real s from the row before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from envs.recorder import RolloutFileError, load_rollout
from rewards.base import RewardModule, batch_to_tensors
from rewards.epic import UndefinedDistance, epic_distance
from rewards.preference import preference_accuracy

S_SIDE = frozenset({"obs", "prev_frames", "prev_text"})
A_SIDE = frozenset({"action"})
S2_SIDE = frozenset({"next_obs", "frames", "text", "terminated"})


@dataclass
class Rollouts:
    """Transitions of one or more rollout files, concatenated: every array has T rows (obs: dict or array)."""

    arrays: dict[str, np.ndarray]
    obs: dict[str, np.ndarray] | np.ndarray
    next_obs: dict[str, np.ndarray] | np.ndarray
    files: list[Path]
    env_id: str
    fps: int = 25

    def __len__(self) -> int:
        return len(self.arrays["reward"])

    @property
    def prev_row(self) -> np.ndarray:
        """(T,) the row whose s' is this row's s (the row itself for an episode's first transition)."""
        rows = np.arange(len(self))
        return np.where(self.arrays["step"] > 0, rows - 1, rows)


def _obs(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray] | np.ndarray:
    if name in arrays:
        return arrays[name]
    return {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{name}.")}


def _signature(arrays: dict[str, np.ndarray]) -> dict[str, tuple]:
    """What must agree between files: each field's per-row shape and kind (frames sizes included)."""
    return {k: (v.shape[1:], v.dtype.kind) for k, v in arrays.items() if v.ndim > 0 and k != "text"}


def load_rollouts(path: str | Path) -> Rollouts:
    """One rollout `.npz` or a folder of them (sorted by name); RolloutFileError naming a bad or mismatched file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"no rollout files (*.npz) in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"rollouts {path} do not exist")
    parts, first_signature, env_id, fps = [], None, None, 25
    episode_offset = 0
    for file in files:
        arrays = load_rollout(file)
        if len(arrays["reward"]) == 0:
            raise RolloutFileError(f"rollout file {file} holds no transitions")
        for name in ("obs", "next_obs"):
            if name not in arrays and not any(k.startswith(f"{name}.") for k in arrays):
                raise RolloutFileError(f"rollout file {file} lacks {name}")
        signature = _signature(arrays)
        file_env = str(arrays.get("env_id", ""))
        if first_signature is None:
            first_signature, env_id = signature, file_env
            fps = int(arrays["fps"]) if "fps" in arrays else fps
        elif signature != first_signature or file_env != env_id:
            diff = sorted(k for k in set(signature) | set(first_signature) if signature.get(k) != first_signature.get(k))
            what = f"fields {diff}" if diff else f"env {file_env!r} vs {env_id!r}"
            raise RolloutFileError(f"rollout file {file} does not match {files[0]}: {what} differ")
        arrays = {k: v for k, v in arrays.items() if v.ndim > 0}
        arrays["episode"] = arrays["episode"] + episode_offset
        episode_offset = int(arrays["episode"].max()) + 1
        parts.append(arrays)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return Rollouts(arrays, _obs(arrays, "obs"), _obs(arrays, "next_obs"), files, env_id or "", fps)


def _take(x: Any, idx: np.ndarray) -> Any:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def transition_batch(data: Rollouts, s: np.ndarray, a: np.ndarray, s2: np.ndarray, keys: frozenset[str] | None) -> dict:
    """Batch for transitions (state s, action of row a, state s2), states being rows' s'; only `keys` if given."""
    frames, text = data.arrays["frames"], data.arrays["text"]
    builders: dict[str, Callable[[], Any]] = {
        "obs": lambda: _take(data.next_obs, s),
        "action": lambda: data.arrays["action"][a],
        "next_obs": lambda: _take(data.next_obs, s2),
        "terminated": lambda: data.arrays["terminated"][s2],
        "frames": lambda: frames[s2],
        "text": lambda: [str(t) for t in text[s2]],
        "prev_frames": lambda: frames[s],
        "prev_text": lambda: [str(t) for t in text[s]],
    }
    return {key: build() for key, build in builders.items() if keys is None or key in keys}


def module_reward_fn(module: RewardModule, data: Rollouts, chunk_size: int = 512) -> Callable[..., np.ndarray]:
    """R(s, a, s2) -> (B,) over row indices (as `transition_batch`), each distinct input evaluated once.

    What counts as distinct follows `module.reads`: e.g. a CLIP reward reads only frames, so only s2 matters.
    """
    reads = module.reads
    uses = [reads is None or bool(reads & side) for side in (S_SIDE, A_SIDE, S2_SIDE)]

    @torch.no_grad()
    def reward(s: np.ndarray, a: np.ndarray, s2: np.ndarray) -> np.ndarray:
        columns = [np.asarray(x) if used else np.zeros(len(s2), np.int64) for x, used in zip((s, a, s2), uses)]
        unique, inverse = np.unique(np.stack(columns, 1), axis=0, return_inverse=True)
        values = []
        for start in range(0, len(unique), chunk_size):
            u = unique[start : start + chunk_size]
            batch = transition_batch(data, u[:, 0], u[:, 1], u[:, 2], reads)
            values.append(module(batch_to_tensors(batch, module.device)).float().cpu().numpy())
        return np.concatenate(values)[inverse.reshape(-1)]

    return reward


def transition_rewards(module: RewardModule, data: Rollouts) -> np.ndarray:
    """The module's reward (T,) of every recorded transition (with the recorded s observation)."""
    rows = np.arange(len(data))
    prev = data.prev_row
    reward_fn = module_reward_fn(module, data)
    if module.reads is not None and "obs" not in module.reads:
        return reward_fn(prev, rows, rows)
    # the recorded s observation differs from the previous row's s' only at episode starts: score those apart
    out = reward_fn(prev, rows, rows)
    first = np.flatnonzero(data.arrays["step"] == 0)
    if len(first):
        batch = transition_batch(data, first, first, first, module.reads)
        batch["obs"] = _take(data.obs, first)
        with torch.no_grad():
            out[first] = module(batch_to_tensors(batch, module.device)).float().cpu().numpy()
    return out


def env_reward_fn(data: Rollouts, env: Any) -> tuple[Callable[..., np.ndarray] | None, str | None]:
    """The env's reward as R(s, a, s2) over row indices, from a GoalEnv's vectorized `compute_reward(s2)`;
    (None, why) when the env has none or it does not reproduce the recorded rewards."""
    compute = getattr(env.unwrapped, "compute_reward", None) if env is not None else None
    goal_keys = isinstance(data.next_obs, dict) and {"achieved_goal", "desired_goal"} <= set(data.next_obs)
    if compute is None or not goal_keys:
        return None, f"no vectorized compute_reward(achieved_goal, desired_goal) for {data.env_id or 'this env'}"

    def reward(s: np.ndarray, a: np.ndarray, s2: np.ndarray) -> np.ndarray:
        return np.asarray(compute(data.next_obs["achieved_goal"][s2], data.next_obs["desired_goal"][s2], None), float)

    rows = np.arange(len(data))
    if not np.allclose(reward(rows, rows, rows), data.arrays["reward"], atol=1e-6):
        return None, (f"{data.env_id}'s compute_reward does not reproduce the recorded rewards; pass the env's "
                      "kwargs, e.g. env_kwargs.reward_type=dense")
    return reward, None


def correlations(reward: np.ndarray, gt: np.ndarray) -> dict[str, float | None]:
    """Pearson and Spearman correlation (None where either is constant)."""
    if np.ptp(reward) == 0 or np.ptp(gt) == 0:
        return {"pearson": None, "spearman": None}
    return {"pearson": float(stats.pearsonr(reward, gt)[0]), "spearman": float(stats.spearmanr(reward, gt)[0])}


def sample_segment_pairs(data: Rollouts, num_pairs: int, length: int, rng: np.random.Generator) -> np.ndarray | None:
    """Row indices (2, num_pairs, length) of random segment pairs, each segment within one episode."""
    episode = data.arrays["episode"]
    lengths = np.bincount(episode - episode.min())[episode - episode.min()]
    starts = np.flatnonzero(data.arrays["step"] + length <= lengths)
    if len(starts) == 0:
        return None
    chosen = rng.choice(starts, size=(2, num_pairs))
    return chosen[..., None] + np.arange(length)


def segment_preference_accuracy(reward: np.ndarray, gt: np.ndarray, pairs: np.ndarray | None) -> float | None:
    """Fraction of segment pairs with different ground-truth returns that the module's returns order the same way."""
    if pairs is None:
        return None
    module_a, module_b = (torch.as_tensor(reward[p].sum(-1)) for p in pairs)
    gt_a, gt_b = gt[pairs[0]].sum(-1), gt[pairs[1]].sum(-1)
    label = torch.as_tensor(np.where(gt_a > gt_b, 1.0, np.where(gt_a < gt_b, 0.0, 0.5)))
    accuracy = preference_accuracy(module_a, module_b, label)
    return None if math.isnan(accuracy) else accuracy


def success_auroc(reward: np.ndarray, is_success: np.ndarray) -> float | None:
    """ROC AUC of the reward as a score for is_success (None unless both outcomes occur)."""
    if is_success.all() or not is_success.any():
        return None
    from sklearn.metrics import roc_auc_score  # here: importing sklearn costs every CLI start ~0.4 s

    return float(roc_auc_score(is_success, reward))


def epic_to_env(
    reward_fn: Callable[..., np.ndarray],
    gt_fn: Callable[..., np.ndarray],
    data: Rollouts,
    gamma: float,
    num_transitions: int,
    num_states: int,
    num_actions: int,
    rng: np.random.Generator,
) -> float | str | None:
    """EPIC distance over recorded transitions whose s is recorded too (not an episode's first), with recorded
    states and actions as D_S and D_A; None without such transitions, "undefined: WHY" for a reward that is a pure
    potential shaping (or constant) over them."""
    candidates = np.flatnonzero(data.arrays["step"] > 0)
    if len(candidates) == 0:
        return None
    rows = rng.choice(candidates, size=min(num_transitions, len(candidates)), replace=False)
    transitions = (data.prev_row[rows], rows, rows)
    states = rng.choice(len(data), size=min(num_states, len(data)), replace=False)
    actions = rng.choice(len(data), size=min(num_actions, len(data)), replace=False)
    try:
        return epic_distance(reward_fn, gt_fn, transitions, states, actions, gamma)
    except UndefinedDistance as err:  # a pure shaping or constant reward: no distance exists
        return f"undefined: {err}"


def evaluate_module(
    module: RewardModule | None,
    data: Rollouts,
    gt_fn: Callable[..., np.ndarray] | None,
    gamma: float = 0.99,
    pairs: int = 1000,
    segment_length: int = 10,
    epic_transitions: int = 256,
    epic_states: int = 32,
    epic_actions: int = 8,
    seed: int = 0,
) -> tuple[dict[str, float | str | None], np.ndarray]:
    """All metrics of one module (None: the recorded reward itself, as a reference) and its rewards (T,)."""
    rng = np.random.default_rng(seed)
    gt = data.arrays["reward"].astype(np.float64)
    reward = gt if module is None else transition_rewards(module, data).astype(np.float64)
    metrics: dict[str, float | str | None] = correlations(reward, gt)
    if gt_fn is None:
        metrics["epic"] = None
    else:
        reward_fn = gt_fn if module is None else module_reward_fn(module, data)
        metrics["epic"] = epic_to_env(reward_fn, gt_fn, data, gamma, epic_transitions, epic_states, epic_actions, rng)
    segment_pairs = sample_segment_pairs(data, pairs, segment_length, rng)
    metrics["preference_accuracy"] = segment_preference_accuracy(reward, gt, segment_pairs)
    metrics["success_auroc"] = success_auroc(reward, data.arrays["is_success"].astype(bool))
    return metrics, reward
