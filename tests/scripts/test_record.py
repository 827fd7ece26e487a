"""`python -m scripts.record`: reference policies (random, scripted, noisy) recorded without a checkpoint, the
files they write, and clear errors for bad input."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from omegaconf import OmegaConf

import envs  # noqa: F401
from envs.scripted import noisy_policy, scripted_policy
from scripts.record import record_reference

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "scripts" / "conf" / "env"


def env_cfg(name, **kwargs):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg.kwargs = {**OmegaConf.to_container(cfg.kwargs), **kwargs}
    return cfg


def final_success(rollout):
    data = np.load(rollout, allow_pickle=False)
    last = np.flatnonzero(data["terminated"] | data["truncated"])
    return data["is_success"][last], data


def test_scripted_push_succeeds_random_does_not(tmp_path):
    _, scripted = record_reference(env_cfg("push", width=32, height=32), "scripted", 0.0, 3, 0, tmp_path / "s")
    _, random = record_reference(env_cfg("push", width=32, height=32), "random", 0.0, 3, 0, tmp_path / "r")
    success, data = final_success(scripted)
    assert success.all() and len(success) == 3 and data["frames"].shape[1:] == (32, 32, 3)
    assert not final_success(random)[0].any()
    assert (tmp_path / "s.mp4").stat().st_size > 0


def test_noisy_policy_adds_clipped_noise_and_epsilon_random_discrete_actions():
    box = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = noisy_policy(lambda o: np.array([0.9, 0.0], np.float32), box, 0.3, np.random.default_rng(0))
    actions = np.stack([policy(None) for _ in range(2000)])
    assert actions.max() <= 1.0 and actions.min() >= -1.0
    assert abs(actions[:, 1].std() - 0.3) < 0.03 and abs(actions[:, 1].mean()) < 0.03
    discrete = gymnasium.spaces.Discrete(4)
    policy = noisy_policy(lambda o: 2, discrete, 0.4, np.random.default_rng(1))
    chosen = np.array([policy(None) for _ in range(4000)])
    assert abs((chosen != 2).mean() - 0.4 * 3 / 4) < 0.03 and set(chosen) == {0, 1, 2, 3}


def test_text_game_oracle_and_goal_metaworld_policy():
    env = gymnasium.make("crlab/Negotiation-v0")
    obs, _ = env.reset(seed=0)
    assert scripted_policy(env)(obs) == env.unwrapped.oracle_action()
    goal = gymnasium.make("crlab/MetaWorldGoal-drawer-open-v0")
    plain = gymnasium.make("crlab/MetaWorld-drawer-open-v0")
    goal_obs, _ = goal.reset(seed=0)
    plain_obs, _ = plain.reset(seed=0)
    np.testing.assert_array_equal(scripted_policy(goal)(goal_obs), scripted_policy(plain)(plain_obs))


def test_envs_without_a_scripted_policy_name_the_ones_with_one():
    with pytest.raises(ValueError, match=r"has no scripted policy; envs with one: crlab/Reach-v0"):
        scripted_policy(gymnasium.make("crlab/FetchPush-v0"))
    with pytest.raises(ValueError, match="reads state observations"):
        scripted_policy(gymnasium.make("crlab/Reach-v0", obs_type="pixels", image_size=32))


@pytest.mark.parametrize("args, expected", [
    (["env=push", "policy=smart"], "policy='smart' is not one of ['random', 'scripted', 'noisy']"),
    ([], "give either checkpoint=PATH or env=NAME policy="),
    (["env=pusj", "policy=random"], "pusj"),
])
def test_bad_input_is_one_line_exit_2(args, expected, tmp_path):
    """Exit 2, one line, nothing written (`policy=random` without an env: tests/scripts/test_refused_inputs.py)."""
    result = subprocess.run([sys.executable, "-m", "scripts.record", *args, f"out={tmp_path / 'x'}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MUJOCO_GL": "egl"})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())
