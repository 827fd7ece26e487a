"""EPIC: the Equivalent-Policy Invariant Comparison pseudometric between reward functions.

Gleave et al. 2020, "Quantifying Differences in Reward Functions". Each reward is first canonically shaped,
    C(R)(s, a, s') = R(s, a, s') + γ E[R(s', A, S')] − E[R(s, A, S')] − γ E[R(S, A, S')],
with S, S' drawn from a coverage distribution D_S and A from D_A, which removes potential shaping (and constant
shifts); then D_EPIC(R_a, R_b) = D_ρ(C(R_a), C(R_b)) over transitions, with the Pearson distance
D_ρ(X, Y) = sqrt((1 − ρ(X, Y)) / 2), which ignores positive scale. Expectations here are sample means.

A reward function is a callable `R(s, a, s') -> (B,)` over batched states (B, ...) (arrays or tensors, or dicts
of them) and actions (B, A), returning a numpy array or a tensor.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

RewardFn = Callable[[Any, Any, Any], Any]
RELATIVE_TOLERANCE = 1e-6  # a canonical reward this small against the reward's own scale is float rounding: zero


class UndefinedDistance(ValueError):
    """The Pearson distance of a reward that is constant over the samples (e.g. EPIC of a pure potential shaping,
    whose canonically shaped reward is zero)."""


def _length(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _take(x: Any, idx: np.ndarray) -> Any:
    if isinstance(x, dict):
        return {k: _take(v, idx) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(idx, device=x.device)]
    return np.asarray(x)[idx]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def pearson_distance(x: Any, y: Any, scales: tuple[float, float] | None = None) -> float:
    """D_ρ = sqrt((1 − ρ) / 2) between two reward samples (B,); 0 for a positive affine map, 1 for a negative one.

    A sample whose spread is below RELATIVE_TOLERANCE times its scale (`scales`: one per sample, e.g. the raw
    rewards' before canonicalisation; default the sample's own largest magnitude) counts as constant, and the
    distance is undefined (UndefinedDistance), as it is for an exactly constant one."""
    x, y = _to_numpy(x).ravel(), _to_numpy(y).ravel()
    scales = scales or (float(np.abs(x).max(initial=0.0)), float(np.abs(y).max(initial=0.0)))
    x, y = x - x.mean(), y - y.mean()
    for name, sample, scale in (("first", x, scales[0]), ("second", y, scales[1])):
        spread = float(np.abs(sample).max(initial=0.0))
        if spread == 0.0 or spread <= RELATIVE_TOLERANCE * scale:
            raise UndefinedDistance(f"the {name} reward is constant over the samples (spread {spread:.1e} against "
                                    f"its scale {scale:.1e}): the Pearson distance is undefined")
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    rho = float(np.clip(x @ y / norm, -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


def mean_reward_from(
    reward_fn: RewardFn, states: Any, state_samples: Any, action_samples: Any, chunk_size: int = 65536
) -> np.ndarray:
    """E_{A~D_A, S'~D_S}[R(x, A, S')] for each state x in `states` (K, ...) -> (K,), over all N_A x N_S pairs."""
    num_states, num_actions, num_next = _length(states), _length(action_samples), _length(state_samples)
    pairs = num_actions * num_next
    action_idx = np.repeat(np.arange(num_actions), num_next)
    next_idx = np.tile(np.arange(num_next), num_actions)
    out = np.empty(num_states)
    per_chunk = max(1, chunk_size // pairs)
    for start in range(0, num_states, per_chunk):
        ks = np.arange(start, min(num_states, start + per_chunk))
        reward = reward_fn(
            _take(states, np.repeat(ks, pairs)),
            _take(action_samples, np.tile(action_idx, len(ks))),
            _take(state_samples, np.tile(next_idx, len(ks))),
        )
        out[ks] = _to_numpy(reward).reshape(len(ks), pairs).mean(axis=1)
    return out


def canonically_shaped_reward(
    reward_fn: RewardFn,
    transitions: Sequence[Any],
    state_samples: Any,
    action_samples: Any,
    gamma: float,
    chunk_size: int = 65536,
) -> np.ndarray:
    """C(R)(s, a, s') (B,) for transitions (s (B, ...), a (B, A), s' (B, ...)); D_S, D_A given as samples.

    Costs (2B + N_S) N_A N_S reward evaluations, in calls of about `chunk_size`.
    """
    obs, action, next_obs = transitions
    reward = _to_numpy(reward_fn(obs, action, next_obs))
    from_next = mean_reward_from(reward_fn, next_obs, state_samples, action_samples, chunk_size)
    from_obs = mean_reward_from(reward_fn, obs, state_samples, action_samples, chunk_size)
    overall = mean_reward_from(reward_fn, state_samples, state_samples, action_samples, chunk_size).mean()
    return reward + gamma * from_next - from_obs - gamma * overall


def reward_scale(reward_fn: RewardFn, transitions: Sequence[Any]) -> float:
    """Largest |R(s, a, s')| over the transitions: the scale a canonical reward is judged zero against."""
    return float(np.abs(_to_numpy(reward_fn(*transitions))).max(initial=0.0))


def epic_distance(
    reward_a: RewardFn,
    reward_b: RewardFn,
    transitions: Sequence[Any],
    state_samples: Any,
    action_samples: Any,
    gamma: float,
    chunk_size: int = 65536,
) -> float:
    """D_EPIC in [0, 1]: Pearson distance between canonically shaped R_a and R_b over `transitions` (s, a, s').

    Raises UndefinedDistance when a canonical reward is zero to float rounding relative to its reward's scale: the
    reward is a pure potential shaping (plus a constant), EPIC-equivalent to the zero reward, so no distance exists.
    """
    canon_a = canonically_shaped_reward(reward_a, transitions, state_samples, action_samples, gamma, chunk_size)
    canon_b = canonically_shaped_reward(reward_b, transitions, state_samples, action_samples, gamma, chunk_size)
    scales = (reward_scale(reward_a, transitions), reward_scale(reward_b, transitions))
    try:
        return pearson_distance(canon_a, canon_b, scales)
    except UndefinedDistance as err:
        raise UndefinedDistance(str(err).replace("constant over the samples", "a pure potential shaping "
                                                 "(its canonically shaped reward is constant)")) from None
