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


def pearson_distance(x: Any, y: Any) -> float:
    """D_ρ = sqrt((1 − ρ) / 2) between two reward samples (B,); 0 for a positive affine map, 1 for a negative one."""
    x, y = _to_numpy(x).ravel(), _to_numpy(y).ravel()
    x, y = x - x.mean(), y - y.mean()
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    if norm == 0.0:
        raise ValueError("the Pearson distance is undefined when a reward is constant over the samples")
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


def epic_distance(
    reward_a: RewardFn,
    reward_b: RewardFn,
    transitions: Sequence[Any],
    state_samples: Any,
    action_samples: Any,
    gamma: float,
    chunk_size: int = 65536,
) -> float:
    """D_EPIC in [0, 1]: Pearson distance between canonically shaped R_a and R_b over `transitions` (s, a, s')."""
    canon_a = canonically_shaped_reward(reward_a, transitions, state_samples, action_samples, gamma, chunk_size)
    canon_b = canonically_shaped_reward(reward_b, transitions, state_samples, action_samples, gamma, chunk_size)
    return pearson_distance(canon_a, canon_b)
