"""scripts.make_dataset on OGBench's PointMaze: its navigate / stitch protocols written as goal datasets that offline
agents train from and evaluate on the maze's five tasks."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.goal_dataset import episode_bounds, load_goal_dataset
from scripts.make_dataset import collect
from scripts.run_setup import compose_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stitch_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "stitch.npz"
    done = subprocess.run([sys.executable, "-m", "scripts.make_dataset", "env=ogbench_pointmaze_medium", "policy=stitch",
                           "episodes=6", f"out={path}", "progress=false"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return path


def test_stitch_dataset_holds_201_step_episodes_of_positions(stitch_data):
    data = load_goal_dataset(stitch_data)
    bounds = episode_bounds(data["terminals"])
    assert len(bounds) == 6 and (bounds[:, 1] - bounds[:, 0] == 201).all()
    assert str(data["policy"]) == "stitch" and float(data["noise"]) == 0.5 and data["observations"].shape[1] == 2
    np.testing.assert_array_equal(data["achieved_goals"], data["observations"])
    inside = np.ones(len(data["terminals"]), dtype=bool)
    inside[bounds[:, 1] - 1] = False  # within an episode the next observation is the next row's observation
    np.testing.assert_array_equal(data["next_observations"][inside], data["observations"][1:][inside[:-1]])


def test_protocols_belong_to_the_mazes_only():
    maze = compose_config("make_dataset", ["env=ogbench_pointmaze_large"]).env
    assert len(collect(maze, "navigate", 0.5, 1, 1, seed=0)["actions"]) == 1001
    with pytest.raises(ValueError, match=r"navigate \| stitch are OGBench's locomaze protocols.*got env=ogbench_pointmaze_large policy=noisy"):
        collect(maze, "noisy", 0.5, 1, 1, seed=0)
    reach = compose_config("make_dataset", ["env=reach"]).env
    with pytest.raises(ValueError, match=r"got env=reach policy=stitch"):
        collect(reach, "stitch", 0.5, 1, 1, seed=0)
    with pytest.raises(ValueError, match=r"policy='expert' is not one of .*\(OGBench's mazes: navigate \| stitch\)"):
        collect(reach, "expert", 0.5, 1, 1, seed=0)


def test_offline_crl_trains_on_stitch_data_and_evaluates_the_five_tasks(stitch_data, tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "scripts.train", "agent=crl", "env=ogbench_pointmaze_medium",
                           f"agent.dataset={stitch_data}", "agent.contrastive_loss=td_infonce", "agent.bc_coef=0.1",
                           f"hydra.run.dir={run_dir}", "progress=false", "device=cpu", "total_gradient_steps=40",
                           "eval_every=40", "eval_episodes=5", "video_episodes=0", "agent.hidden=[32,32]",
                           "agent.batch_size=32"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["gradient_steps"]) for r in rows] == [0, 40]
