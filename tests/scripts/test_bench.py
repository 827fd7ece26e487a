"""The benchmark scripts run end to end on tiny budgets and report what the README quotes."""

import argparse

from scripts.bench.agents import cpl_reach
from scripts.bench.gpu import measure


def test_cpl_reach_reports_cpl_and_sft_per_seed(tmp_path):
    args = argparse.Namespace(cpl_data="random", cpl_episodes=32, cpl_pairs=64, cpl_segment_length=10, cpl_seeds=[0, 1],
                              cpl_gold_score="progress", cpl_alpha=0.02, cpl_updates=5, cpl_behaviour_steps=0)
    results = cpl_reach(args, tmp_path)
    for seed in (0, 1):
        row = results[f"seed{seed}"]
        assert {"cpl_success", "sft_success", "cpl_return", "sft_return"} == set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in ("cpl_success", "sft_success"))
    assert results["mean_cpl_success"] == (results["seed0"]["cpl_success"] + results["seed1"]["cpl_success"]) / 2
    assert (tmp_path / "cpl_reach_seed1" / "cpl_rollouts_gold_prefs.npz").exists()


def test_gpu_bench_measures_ppo_on_cpu():
    result = measure("ppo", ["ppo:env.num_envs=8", "ppo:agent.num_steps=8"], "cpu", seconds=0.5, warmup_s=0.2, seed=0)
    assert result["env"] == "reach" and result["num_envs"] == 8
    assert result["env_steps_per_s"] > 0 and result["updates_per_s"] > 0 and result["seconds"] >= 0.5


def test_goal_suites_runs_each_agent_for_its_budget(tmp_path, monkeypatch):
    import scripts.bench.agents as bench

    monkeypatch.setitem(bench.GOAL_TASKS, "tiny", ("fetch_reach", 3, {
        "crl": ["agent=crl", "agent.warmup_steps=100", "agent.hidden=[16]", "agent.batch_size=16",
                "env.num_envs=2", "eval_episodes=2"],
        "td": ["agent=crl", "agent.contrastive_loss=td_infonce", "agent.warmup_steps=100", "agent.hidden=[16]",
               "agent.batch_size=16", "env.num_envs=2", "eval_episodes=2"]}))
    args = argparse.Namespace(goal_tasks=["tiny"], goal_runs=None, goal_seeds=[0], goal_eval_every=200, threads=1)
    results = bench.goal_suites(args, tmp_path)
    assert set(results) == {"tiny.crl.seed0", "tiny.td.seed0"}
    for row in results.values():
        assert 0.0 <= row["success"] <= 1.0 and row["budget_s"] == 3 and row["env_steps"] > 0
        assert row["wall_s"] >= 3  # stopped by its time limit, not by a step count


def test_gpu_bench_measures_offline_cpl_updates_on_cpu():
    result = measure("cpl", ["cpl:agent.hidden=[16]"], "cpu", seconds=0.5, warmup_s=0.2, seed=0)
    assert result["updates_per_s"] > 0 and result["seconds"] >= 0.5 and result["env_steps_per_s"] != result["env_steps_per_s"]
