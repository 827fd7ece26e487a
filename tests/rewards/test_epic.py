"""EPIC distance: known answers from Gleave et al. 2020 (affine maps and potential shaping are at distance 0)."""

import numpy as np
import pytest
import torch

from rewards.epic import canonically_shaped_reward, epic_distance, pearson_distance

GAMMA = 0.9


def reward(s, a, s2):
    """A nonlinear reward over (B, 3) states and (B, 2) actions."""
    return np.sin(s[:, 0]) * s2[:, 1] + a[:, 0] * s[:, 2] - 0.5 * s2[:, 0] ** 2 + a[:, 1]


def potential(s):
    return np.cos(s[:, 1]) + s[:, 0] * s[:, 2]


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    transitions = (rng.normal(size=(64, 3)), rng.normal(size=(64, 2)), rng.normal(size=(64, 3)))
    return transitions, rng.normal(size=(16, 3)), rng.normal(size=(8, 2))


def test_positive_affine_transform_is_at_distance_zero(samples):
    transitions, states, actions = samples
    affine = lambda s, a, s2: 3.0 * reward(s, a, s2) + 2.0
    assert epic_distance(reward, affine, transitions, states, actions, GAMMA) == pytest.approx(0.0, abs=1e-6)


def test_potential_shaping_is_at_distance_zero(samples):
    transitions, states, actions = samples
    shaped = lambda s, a, s2: reward(s, a, s2) + GAMMA * potential(s2) - potential(s)
    assert epic_distance(reward, shaped, transitions, states, actions, GAMMA) == pytest.approx(0.0, abs=1e-6)
    # without canonicalisation the shaped reward looks different
    s, a, s2 = transitions
    assert pearson_distance(reward(s, a, s2), shaped(s, a, s2)) > 0.05


def test_negation_is_at_distance_one(samples):
    transitions, states, actions = samples
    negated = lambda s, a, s2: -reward(s, a, s2)
    assert epic_distance(reward, negated, transitions, states, actions, GAMMA) == pytest.approx(1.0, abs=1e-6)


def test_unrelated_reward_is_strictly_between(samples):
    transitions, states, actions = samples
    other = lambda s, a, s2: s[:, 1] * a[:, 1]
    assert 0.2 < epic_distance(reward, other, transitions, states, actions, GAMMA) < 0.9


def test_pearson_distance_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson_distance(x, 5 * x - 1) == pytest.approx(0.0, abs=1e-7)
    assert pearson_distance(x, -x) == pytest.approx(1.0)
    assert pearson_distance(x, np.array([1.0, -1.0, -1.0, 1.0])) == pytest.approx(np.sqrt(0.5))  # ρ = 0
    with pytest.raises(ValueError):
        pearson_distance(x, np.ones(4))


def test_batched_equals_one_at_a_time_and_torch_equals_numpy(samples):
    transitions, states, actions = samples
    batched = canonically_shaped_reward(reward, transitions, states, actions, GAMMA)
    one_at_a_time = np.concatenate(
        [
            canonically_shaped_reward(reward, [x[i : i + 1] for x in transitions], states, actions, GAMMA, chunk_size=1)
            for i in range(len(transitions[0]))
        ]
    )
    np.testing.assert_allclose(batched, one_at_a_time, rtol=1e-12, atol=1e-12)

    def torch_reward(s, a, s2):
        return torch.sin(s[:, 0]) * s2[:, 1] + a[:, 0] * s[:, 2] - 0.5 * s2[:, 0] ** 2 + a[:, 1]

    as_torch = lambda x: torch.as_tensor(x, dtype=torch.float64)
    canon_torch = canonically_shaped_reward(
        torch_reward, tuple(map(as_torch, transitions)), as_torch(states), as_torch(actions), GAMMA
    )
    np.testing.assert_allclose(canon_torch, batched, rtol=1e-10, atol=1e-10)


def test_dict_states():
    rng = np.random.default_rng(1)
    make = lambda n: {"x": rng.normal(size=(n, 2)), "y": rng.normal(size=(n, 1))}
    transitions = (make(32), rng.normal(size=(32, 1)), make(32))
    r = lambda s, a, s2: s["x"][:, 0] * s2["y"][:, 0] + a[:, 0]
    phi = lambda s: s["x"][:, 1]
    shaped = lambda s, a, s2: r(s, a, s2) + 0.5 * phi(s2) - phi(s)
    assert epic_distance(r, shaped, transitions, make(8), rng.normal(size=(4, 1)), 0.5) == pytest.approx(0.0, abs=1e-6)


def test_pure_potential_shaping_has_no_epic_distance(samples):
    """Its canonical reward is float rounding (~1e-16 of its scale), not a reward: "undefined", not a number."""
    from rewards.epic import UndefinedDistance

    transitions, states, actions = samples
    shaping = lambda s, a, s2: GAMMA * potential(s2) - potential(s)
    canon = canonically_shaped_reward(shaping, transitions, states, actions, GAMMA)
    assert 0 < np.abs(canon - canon.mean()).max() < 1e-12  # not exactly zero: the old `norm == 0` test missed it
    with pytest.raises(UndefinedDistance, match="pure potential shaping"):
        epic_distance(shaping, reward, transitions, states, actions, GAMMA)
    small = lambda s, a, s2: 1e-9 * reward(s, a, s2)  # a tiny but real reward keeps its distance
    assert epic_distance(small, reward, transitions, states, actions, GAMMA) == pytest.approx(0.0, abs=1e-6)
