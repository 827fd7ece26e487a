import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from scripts.sweep import expand_grid, main, split_args

ROOT = Path(__file__).resolve().parents[2]
TINY = ["total_env_steps=1600", "eval_every=800", "checkpoint_every=800", "eval_episodes=4", "video_episodes=0",
        "agent.hidden=[32,32]"]
TRIALS = ["crl_reach_seed0", "crl_reach_seed1", "ppo_reach_seed0", "ppo_reach_seed1"]


def sweep(sweep_dir):
    args = [sys.executable, "-m", "scripts.sweep", "agents=[crl,ppo]", "envs=[reach]", "seeds=[0,1]",
            f"sweep_dir={sweep_dir}", "num_cpus=2", "cpus_per_trial=1", "gpus_per_trial=0", "device=cpu", *TINY]
    # Own process group: on a hang, kill the driver together with the Ray processes it started.
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"sweep did not finish in 150 s:\n{stdout}{stderr}")
    assert proc.returncode == 0, stdout + stderr
    return stdout


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def starts(run_dir):
    return [line for line in (run_dir / "trial.log").read_text().splitlines() if line.startswith("=== trial")]


def test_grid_names_and_overrides():
    sweep_args, train_args = split_args(["agents=[crl,ppo]", "seeds=[0,1]", "total_env_steps=800", "eval_episodes=2,4"])
    assert sweep_args == ["agents=[crl,ppo]", "seeds=[0,1]"]
    cfg = OmegaConf.create({"agents": ["crl", "ppo"], "envs": ["reach"], "rewards": None, "seeds": [0, 1]})
    trials = expand_grid(cfg, train_args)
    assert len(trials) == 8
    assert trials[0].name == "crl_reach_eval_episodes=2_seed0"
    assert trials[0].overrides == ("progress=false", "agent=crl", "env=reach", "eval_episodes=2",
                                   "total_env_steps=800", "seed=0")
    assert trials[-1].name == "ppo_reach_eval_episodes=4_seed1"
    with pytest.raises(ValueError, match="use seeds="):
        expand_grid(cfg, ["seed=3"])


@pytest.mark.parametrize("args, expected", [
    (["seeds=abc"], r"seeds='abc' must be a list, e\.g\. seeds=\[abc\]"),  # it ran seeds 'a', 'b' and 'c'
    (["seeds=[-1]"], "seed=-1 must be an integer >= 0"),
    (["agent.batch_size=0"], r"agent.batch_size=0 must be a number > 0 \(agent=crl\)"),
    (["env.id=crlab/Nope-v0"], "env.id='crlab/Nope-v0' is not a registered Gymnasium id"),
])
def test_bad_values_are_refused_before_any_trial_starts(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sweep folder would be runs/sweep_<date>_<time> here
    with pytest.raises(ValueError, match=expected):
        main(["agents=[crl]", "envs=[reach]", *args])
    assert not any(tmp_path.iterdir())


def test_sweep_on_local_ray_runs_each_trial_once_and_resumes(tmp_path):
    sweep_dir = tmp_path / "sweep"
    out = sweep(sweep_dir)
    assert "4/4 trials finished" in out
    for name in TRIALS:
        run_dir = sweep_dir / name
        agent, _, seed = name.split("_")
        config = OmegaConf.load(run_dir / "config.yaml")
        assert (config.agent.name, config.env.name, f"seed{config.seed}") == (agent, "reach", seed)
        assert [int(r["env_steps"]) for r in rows(run_dir)] == [0, 800, 1600]
        assert json.loads((run_dir / "DONE").read_text())["env_steps"] == 1600
        assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["env_steps"] == 1600
        assert len(starts(run_dir)) == 1

    report = json.loads((sweep_dir / "report" / "report.json").read_text())
    assert [(g["agent"], g["env"], g["reward"], sorted(g["seeds"])) for g in report["groups"]] == [
        ("crl", "reach", "sparse", [0, 1]), ("ppo", "reach", "sparse", [0, 1])]
    for group in report["groups"]:
        finals = [float(rows(Path(run))[-1]["eval_success_rate"]) for run in group["runs"]]
        assert group["success"]["per_run"] == finals and group["final_env_steps"] == [1600, 1600]
        assert group["curve"]["env_steps"] == [0, 800, 1600]
    assert "| crl | reach | sparse | 2 | 1,600 |" in (sweep_dir / "report" / "report.md").read_text()
    assert (sweep_dir / "report" / "curves_reach_sparse.png").exists()

    # Interrupt two trials after the fact: crl seed 1 as if killed at step 800, ppo seed 0 as if killed after
    # its last checkpoint but before its DONE marker.
    before = {name: (sweep_dir / name / "metrics.csv").read_bytes() for name in TRIALS}
    killed = sweep_dir / "crl_reach_seed1"
    shutil.copy(killed / "checkpoints" / "step_800.pt", killed / "checkpoints" / "latest.pt")
    (killed / "DONE").unlink()
    (sweep_dir / "ppo_reach_seed0" / "DONE").unlink()

    out = sweep(sweep_dir)
    assert "4 trials in" in out and "2 finished (skipped), 2 to run" in out
    for name in ("crl_reach_seed0", "ppo_reach_seed0", "ppo_reach_seed1"):
        assert (sweep_dir / name / "metrics.csv").read_bytes() == before[name]
        assert len(starts(sweep_dir / name)) == 1  # no finished trial ran twice
        assert (sweep_dir / name / "DONE").exists()
    assert starts(killed)[1].startswith("=== trial resumed from step 800")
    assert [int(r["env_steps"]) for r in rows(killed)] == [0, 800, 1600]
    assert (killed / "DONE").exists()
