"""scripts.make_dataset writes whole episodes of a policy; offline crl / gcbc train from them and resume after kill -9."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.goal_dataset import episode_bounds, load_goal_dataset
from scripts.make_dataset import collect, make_dataset
from scripts.run_setup import compose_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.npz"
    done = subprocess.run([sys.executable, "-m", "scripts.make_dataset", "env=reach", "policy=noisy", "episodes=24",
                           "num_envs=8", f"out={path}", "progress=false", f"hydra.run.dir={path.parent / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return path


def test_dataset_holds_whole_episodes_that_chain_step_to_step(reach_data):
    data = load_goal_dataset(reach_data)
    bounds = episode_bounds(data["terminals"])
    assert len(bounds) == 24 and (bounds[:, 1] - bounds[:, 0] == 50).all() and str(data["policy"]) == "noisy"
    inside = np.ones(len(data["terminals"]), dtype=bool)
    inside[bounds[:, 1] - 1] = False  # within an episode the next observation is the next row's observation
    np.testing.assert_array_equal(data["next_observations"][inside], data["observations"][1:][inside[:-1]])


def test_collection_is_seeded_and_noise_is_added_to_the_oracles_actions():
    env = compose_config("make_dataset", ["env=reach"]).env
    oracle = collect(env, "oracle", 0.0, 16, 16, seed=0)
    np.testing.assert_array_equal(collect(env, "oracle", 0.0, 16, 16, seed=0)["actions"], oracle["actions"])
    noisy = collect(env, "noisy", 0.2, 16, 16, seed=0)
    first = episode_bounds(oracle["terminals"])[:, 0]  # same seed: the same first states, so only the noise differs
    np.testing.assert_array_equal(noisy["observations"][first], oracle["observations"][first])
    assert 0.1 < np.std(noisy["actions"][first] - oracle["actions"][first]) <= 0.2  # clipping at the bounds only shrinks it
    np.testing.assert_array_equal(collect(env, "noisy", 0.0, 16, 16, seed=0)["actions"], oracle["actions"])
    with pytest.raises(ValueError, match=r"policy='expert' is not one of \['oracle', 'noisy', 'random', 'play'\]"):
        collect(env, "expert", 0.0, 1, 1, seed=0)
    with pytest.raises(ValueError, match=r"ogbench_cube_double \| ogbench_scene only \(got env=reach\)"):
        collect(env, "play", 0.0, 1, 1, seed=0)  # OGBench's plan oracle: its cube envs only


@pytest.mark.parametrize("override, expected", [
    ("episodes=abc", "episodes='abc' must be an integer > 0"), ("num_envs=0", "num_envs=0 must be an integer > 0"),
    ("env.id=crlab/Nope-v0", "env.id='crlab/Nope-v0' is not a registered Gymnasium id"),
])
def test_bad_values_are_refused_before_collecting(override, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output is data/<env>_<policy>.npz here
    with pytest.raises(ValueError, match=expected):
        make_dataset(compose_config("make_dataset", ["env=reach", "progress=false", override]))
    assert not any(tmp_path.iterdir())


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_offline_crl_run_resumes_after_kill_9(reach_data, tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "scripts.train", "agent=crl", "env=reach", f"agent.dataset={reach_data}", "agent.bc_coef=0.1",
            f"hydra.run.dir={run_dir}", "progress=false", "device=cpu", "total_gradient_steps=1200", "eval_every=400",
            "checkpoint_every=100", "eval_episodes=4", "video_episodes=0", "agent.hidden=[32,32]", "agent.batch_size=32"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "latest.pt"
    deadline = time.time() + 90
    while time.time() < deadline and not (latest.exists() and torch.load(latest, weights_only=True)["env_steps"] >= 400):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 400 <= torch.load(latest, weights_only=True)["env_steps"] < 1200
    done = subprocess.run([sys.executable, "-m", "scripts.train", f"resume={run_dir}", "progress=false"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [int(r["gradient_steps"]) for r in rows(run_dir)] == [0, 400, 800, 1200]
    old_name = subprocess.run([sys.executable, "-m", "scripts.train", "agent=gcbc", "env=reach", f"agent.dataset={reach_data}",
                               "total_env_steps=100", f"hydra.run.dir={tmp_path / 'y'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    assert old_name.returncode == 2 and "total_env_steps does not apply: an offline run" in old_name.stderr
    assert "set total_gradient_steps=N" in old_name.stderr  # agent=gcbc without a dataset: test_refused_inputs.py
