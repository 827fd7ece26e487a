import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scripts.aggregate import iqm, stratified_bootstrap_ci
from scripts.report import write_report

ROOT = Path(__file__).resolve().parents[2]


def mean(x, axis):
    return x.mean(axis=axis)


def test_iqm_is_the_25_percent_trimmed_mean():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx((3 + 4 + 5 + 6) / 4)  # 2 cut from each end
    assert iqm([100, 1, 2, 3, 4]) == pytest.approx((2 + 3 + 4) / 3)  # int(0.25 * 5) = 1 cut from each end
    assert iqm([1, 2, 9]) == pytest.approx(4.0)  # under 4 runs nothing is cut (as in rliable)
    np.testing.assert_allclose(iqm(np.array([[0, 10], [1, 11], [2, 12], [30, 40]])), [1.5, 11.5])  # per column


def test_bootstrap_ci_contains_iqm_and_shrinks_with_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.uniform(size=5), rng.uniform(size=80)
    widths = []
    for scores in (few, many):
        low, high = stratified_bootstrap_ci([scores], reps=4000)
        assert low <= iqm(scores) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    low, high = stratified_bootstrap_ci([np.full(6, 0.7)])
    assert low == high == pytest.approx(0.7)


def test_bootstrap_resamples_within_each_task():
    """Task A scores all 0, task B all 1: every stratified resample keeps 4 of each, so the mean is exactly 0.5;
    pooling the 8 runs and resampling them together would give a wide interval."""
    low, high = stratified_bootstrap_ci([np.zeros(4), np.ones(4)], statistic=mean, reps=2000)
    assert low == high == pytest.approx(0.5)
    low, high = stratified_bootstrap_ci([np.r_[np.zeros(4), np.ones(4)]], statistic=mean, reps=2000)
    assert high - low > 0.4


def test_bootstrap_ci_per_curve_point():
    curves = np.array([[0.0, 0.5, 1.0], [0.0, 0.7, 1.0], [0.0, 0.6, 1.0]])  # (seeds, T)
    low, high = stratified_bootstrap_ci([curves])
    assert low.shape == high.shape == (3,)
    np.testing.assert_allclose([low[0], high[0], low[2], high[2]], [0, 0, 1, 1])
    assert 0.5 <= low[1] < high[1] <= 0.7


def make_run(path, agent, seed, success, returns, steps=(0, 500, 1000), reward=None, **extra):
    path.mkdir(parents=True)
    agent_cfg = {"name": agent, **extra}
    lines = ["agent:"] + [f"  {k}: {v}" for k, v in agent_cfg.items()]
    lines += ["reward:", f"  name: {reward}"] if reward else []  # None: a run from before the reward group
    lines += ["env:", "  name: reach", "  kwargs:", "    reward_type: sparse", f"seed: {seed}", "device: auto",
              "total_env_steps: 1000"]
    (path / "config.yaml").write_text("\n".join(lines) + "\n")
    rows = ["env_steps,wall_time_s,eval_success_rate,eval_return"]
    rows += [f"{s},{i},{v},{r}" for i, (s, v, r) in enumerate(zip(steps, success, returns))]
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")


def test_report_on_hand_made_runs(tmp_path):
    finals = [0.2, 0.4, 0.6, 1.0]  # IQM over 4 seeds: mean of the middle two = 0.5
    for seed, final in enumerate(finals):
        make_run(tmp_path / "sweep" / f"crl_reach_seed{seed}", "crl", seed, [0.0, final / 2, final],
                 [-50, -40, -30 + seed])
    make_run(tmp_path / "sweep" / "crl_reach_seed4" / "nested", "crl", 4, [0.0, 0.1, 0.4, 0.5], [-50, -45, -40, -30],
             steps=(0, 250, 500, 1000), reward="none")  # an extra evaluation: curves use the steps every run has
    for seed in range(2):  # another learning rate: its own group, never pooled with the default one
        make_run(tmp_path / "other" / f"ppo_lr1_{seed}", "ppo", seed, [0.0, 0.0, 0.1], [-50, -50, -45], lr=0.001,
                 reward="preference")
        make_run(tmp_path / "other" / f"ppo_lr3_{seed}", "ppo", seed, [0.0, 0.3, 0.9], [-50, -30, -10],
                 steps=(0, 400, 1000), lr=0.003, reward="preference")
    out = write_report([tmp_path / "sweep", tmp_path / "other"], tmp_path / "out", reps=2000)

    report = json.loads((out / "report.json").read_text())
    groups = {(g["agent"], tuple(g["variant"].items())): g for g in report["groups"]}
    assert set(groups) == {("crl", ()), ("ppo", (("agent.lr", 0.001),)), ("ppo", (("agent.lr", 0.003),))}
    crl = groups[("crl", ())]
    assert (crl["env"], crl["reward"], sorted(crl["seeds"])) == ("reach", "sparse", [0, 1, 2, 3, 4])
    assert crl["success"]["iqm"] == pytest.approx(np.mean([0.4, 0.5, 0.6]))  # 5 seeds: 1 cut from each end
    low, high = crl["success"]["ci"]
    assert 0.2 <= low <= crl["success"]["iqm"] <= high <= 1.0
    assert sorted(crl["success"]["per_run"]) == [0.2, 0.4, 0.5, 0.6, 1.0]
    assert crl["return"]["iqm"] == pytest.approx(np.mean([-30, -29, -28]))
    assert crl["curve"]["env_steps"] == [0, 500, 1000]
    assert crl["curve"]["success_iqm"][0] == 0 and crl["curve"]["success_ci_high"][0] == 0
    ppo3 = groups[("ppo", (("agent.lr", 0.003),))]
    assert ppo3["reward"] == "preference"
    assert ppo3["success"]["iqm"] == pytest.approx(0.9) and ppo3["success"]["ci"] == pytest.approx([0.9, 0.9])
    assert ppo3["curve"]["env_steps"] == [0, 400, 1000]

    md = (out / "report.md").read_text()
    assert "| crl | reach | sparse |  | 5 | 1,000 | 0.50 [" in md
    assert "| ppo | reach | preference | agent.lr=0.003 | 2 | 1,000 | 0.90 [0.90, 0.90] | -10.0 [-10.0, -10.0] |" in md
    assert "![curves_reach_sparse](curves_reach_sparse.png)" in md
    assert (out / "curves_reach_sparse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli(tmp_path):
    make_run(tmp_path / "runs" / "a", "crl", 0, [0.0, 0.5, 1.0], [-50, -25, -5])
    done = subprocess.run([sys.executable, "-m", "scripts.report", str(tmp_path / "runs"), "--reps", "500"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| crl | reach | sparse | 1 | 1,000 | 1.00 [1.00, 1.00] | -5.0 [-5.0, -5.0] |" in done.stdout
    assert (tmp_path / "runs" / "report" / "report.json").exists()
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([sys.executable, "-m", "scripts.report", str(tmp_path / "empty")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "no run directories" in empty.stderr
