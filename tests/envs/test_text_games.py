"""Contract tests for the text-game bandits: Gymnasium checks, seeding, both faces agree, oracle beats random."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import envs  # noqa: F401  (registers crlab/*)

# id -> how far the oracle's mean return must sit above a random policy's
MARGINS = {
    "crlab/FlightPreference-v0": 0.8,
    "crlab/Negotiation-v0": 0.5,
    "crlab/InstructionFeedback-v0": 2.0,
}
IDS = list(MARGINS)


def rollout(env: gymnasium.Env, seed: int, actions: list[int]) -> list[tuple]:
    """(obs, reward, terminated, gt_reward) per step of a seeded single env, resetting at episode ends."""
    obs, _ = env.reset(seed=seed)
    steps = [(obs, 0.0, False, 0.0)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, reward, terminated, float(info["gt_reward"])))
        if terminated or truncated:
            obs, _ = env.reset()
            steps.append((obs, 0.0, False, 0.0))
    return steps


def env_spaces_n(env_id: str) -> int:
    """Number of discrete actions of a registered env."""
    return gymnasium.make(env_id).action_space.n


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id: str) -> None:
    env = gymnasium.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_spaces_describe_render(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert env.metadata["render_fps"] > 0
    rng = np.random.default_rng(0)
    for _ in range(12):
        assert env.observation_space.contains(obs)
        assert isinstance(obs["text"], str) and obs["text"]
        assert len(obs["options"].split("\n")) == env.action_space.n
        assert env.unwrapped.describe()
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        assert (frame < 128).any(), "no text drawn"
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        assert env.observation_space.contains(obs)
        assert reward == pytest.approx(info["gt_reward"]) and isinstance(bool(info["is_success"]), bool)
        if terminated or truncated:
            assert env.unwrapped.describe()
            obs, _ = env.reset()


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_is_deterministic(env_id: str) -> None:
    actions = list(np.random.default_rng(1).integers(env_spaces_n(env_id), size=10))
    first = rollout(gymnasium.make(env_id), 7, actions)
    second = rollout(gymnasium.make(env_id), 7, actions)
    other = rollout(gymnasium.make(env_id), 8, actions)
    assert data_equivalence(first, second, exact=True)
    assert not data_equivalence(first[0][0]["text"], other[0][0]["text"])


@pytest.mark.parametrize("env_id", IDS)
def test_vector_copy_replays_single_env(env_id: str) -> None:
    num_envs, seed, steps = 3, 11, 8
    actions = np.random.default_rng(2).integers(env_spaces_n(env_id), size=(steps, num_envs))
    vec = gymnasium.make_vec(env_id, num_envs=num_envs)
    obs, _ = vec.reset(seed=seed)
    assert vec.observation_space.contains(obs)
    singles = [rollout(gymnasium.make(env_id), seed + i, list(actions[:, i])) for i in range(num_envs)]
    cursor = [0] * num_envs  # position in each single rollout; an ended episode adds a reset entry
    for t in range(steps):
        for i in range(num_envs):
            assert data_equivalence({k: v[i] for k, v in obs.items()}, singles[i][cursor[i]][0], exact=True)
        obs, reward, terminated, truncated, info = vec.step(actions[t])
        assert vec.observation_space.contains(obs)
        for i in range(num_envs):
            cursor[i] += 1
            _, single_reward, single_terminated, single_gt = singles[i][cursor[i]]
            assert (reward[i], terminated[i], info["gt_reward"][i]) == (single_reward, single_terminated, single_gt)
            if terminated[i]:
                assert data_equivalence({k: v[i] for k, v in info["final_obs"].items()}, singles[i][cursor[i]][0])
                cursor[i] += 1


def mean_return(env_id: str, policy: str, episodes: int = 200) -> tuple[float, float]:
    """Mean return and final-step success rate over one episode in each of `episodes` vector copies."""
    vec = gymnasium.make_vec(env_id, num_envs=episodes)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    returns, success, done = np.zeros(episodes), np.zeros(episodes, dtype=bool), np.zeros(episodes, dtype=bool)
    while not done.all():
        actions = vec.oracle_actions() if policy == "oracle" else rng.integers(vec.single_action_space.n, size=episodes)
        _, reward, terminated, truncated, info = vec.step(actions)
        ended = (terminated | truncated) & ~done
        returns += reward * ~done
        success |= ended & info["is_success"]
        done |= ended
    return float(returns.mean()), float(success.mean())


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_beats_random(env_id: str) -> None:
    oracle_return, oracle_success = mean_return(env_id, "oracle")
    random_return, random_success = mean_return(env_id, "random")
    assert oracle_success == 1.0
    assert random_success < 0.5
    assert oracle_return > random_return + MARGINS[env_id]


def test_single_env_oracle_is_best() -> None:
    env = gymnasium.make("crlab/FlightPreference-v0")
    env.reset(seed=3)
    utilities = env.unwrapped.task.utilities()[0]
    _, reward, terminated, _, info = env.step(env.unwrapped.oracle_action())
    assert terminated and info["is_success"] and reward == pytest.approx(utilities.max())


def test_instruction_feedback_listener_reaches_oracle() -> None:
    """What the teacher says is enough to act well: scoring options by the stated preferences in the `language`
    view reaches >= 80 % of the oracle's return, far above random."""
    vec = gymnasium.make_vec("crlab/InstructionFeedback-v0", num_envs=300)
    totals = {"listener": np.zeros(300), "oracle": np.zeros(300)}
    for policy, total in totals.items():
        obs, _ = vec.reset(seed=0)
        done = np.zeros(300, dtype=bool)
        while not done.all():
            if policy == "oracle":
                actions = vec.oracle_actions()
            else:
                actions = np.argmax(np.einsum("nkf,nf->nk", obs["features"], obs["language"][:, :10]), 1)
                assert np.allclose(obs["option_mentions"], obs["features"] * obs["language"][:, None, :10])
            obs, reward, terminated, truncated, _ = vec.step(actions)
            total += reward * ~done
            done |= terminated | truncated
    random_return, _ = mean_return("crlab/InstructionFeedback-v0", "random")
    assert totals["listener"].mean() >= 0.8 * totals["oracle"].mean()
    assert totals["listener"].mean() > random_return + 2.0
