"""Benchmarks as data: a study runs end to end, records round-trip, pages are made from records alone, and the
committed pages are what the committed records give."""

import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from scripts.bench import pages, runner
from scripts.bench.gpu import measure
from scripts.bench.record import RECORDS, read_record, write_record
from scripts.bench.study import StudyError, load_study

ROOT = Path(__file__).resolve().parents[2]
TINY = """
title: Tiny CPL study
description: two runs, two seeds, data prepared per seed
env: reach
budget: {gradient_steps: 20}
eval_every: 10
x_label: updates
seeds: [0, 1]
overrides: ["agent.dataset={{prefs}}", "agent.hidden=[16]", eval_episodes=2, checkpoint_every=20]
prepare:
  prefs:
    kind: make_preferences
    overrides: ["rollouts={{dir}}/rollouts", record.env=reach, record.episodes=4, record.num_envs=2,
                "record.noise=[0.0]", pairs=16, segment_length=5, gold_score=progress, "seed={{seed}}"]
runs:
  cpl: {agent: cpl, overrides: [agent.sft=false], note: CPL}
  sft: {agent: cpl, overrides: [agent.sft=true], note: SFT}
references:
  - {label: target, value: "none", source: "a test"}
headline: {run: cpl, baseline: sft, label: "tiny, 20 steps"}
grid:
  columns: [plain]
  rows: [{label: CPL, runs: [cpl], published: ["0.5"]}, {label: SFT, runs: [sft]}]
"""


def write_study(tmp_path: Path, text: str = TINY, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_tiny_study_runs_end_to_end_writes_records_and_its_report(tmp_path, capsys):
    study = load_study(write_study(tmp_path))
    records, runs = tmp_path / "records", tmp_path / "runs"
    (runs / "tiny").mkdir(parents=True)
    (runs / "tiny" / "cpl.seed0.lock").write_text(f"{socket.gethostname()} {2 ** 22 + 1}")  # above pid_max: gone
    (runs / "tiny" / "sft.seed1.lock").write_text(f"{socket.gethostname()} {os.getpid()}")  # a live runner's
    written = runner.run_study(study, records_root=records, runs_root=runs, note="the test suite")
    assert sorted(p.name for p in written) == ["cpl.seed0.json", "cpl.seed1.json", "sft.seed0.json"]
    assert not (runs / "tiny" / "cpl.seed0.lock").exists() and not (runs / "tiny" / "sft.seed1").exists()
    (runs / "tiny" / "sft.seed1.lock").unlink()  # that runner has gone
    assert [p.name for p in runner.run_study(study, records_root=records, runs_root=runs)] == ["sft.seed1.json"]
    record = read_record(records / "tiny" / "cpl.seed1.json")
    assert record["seed"] == 1 and record["agent"] == "cpl" and record["config"]["seed"] == 1
    assert record["config"]["total_gradient_steps"] == 20 and record["budget"]["x_label"] == "gradient steps"
    assert record["prepared"][0]["name"] == "prefs" and "prefs.seed1" in record["config"]["agent"]["dataset"]
    assert record["machine"]["cores"] >= 1 and record["versions"]["torch"] and record["beside"] == "the test suite"
    assert list(record["curve_columns"]["gradient_steps"]) == [0, 10, 20]  # offline: counted in gradient steps
    assert "cpl seed 1: cpl on reach, 20 updates ->" in capsys.readouterr().out  # the study's name for its steps
    # a second call finds every record and trains nothing
    assert runner.run_study(study, records_root=records, runs_root=runs) == []

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{pages.BEGIN}\nstale\n{pages.END}\ntail\n")
    assert pages.main(records, tmp_path / "pages", readme) == 0
    page = (tmp_path / "pages" / "tiny.md").read_text()
    assert "| `cpl` | `cpl` | CPL | 0, 1 |" in page and "| `sft` | `cpl` | SFT | 0, 1 |" in page
    assert re.search(r"\n\| CPL \| \d\.\d\d \(\d\.\d\d / \d\.\d\d\) \| 0\.5 \|\n\| SFT \| \d\.\d\d \(.*\) \|  \|\n", page)
    assert "target: **none** (a test)" in page and (tmp_path / "pages" / "tiny.png").stat().st_size > 1000
    assert "stale" not in readme.read_text()
    assert re.search(r"\| tiny, 20 steps \| `cpl` \| \d\.\d\d .*\| `sft` \| \d\.\d\d .*\| 2 / 2 \|", readme.read_text())
    assert readme.read_text().endswith("tail\n")
    assert pages.main(records, tmp_path / "pages", readme, check=True) == 0
    (tmp_path / "pages" / "tiny.md").write_text(page.replace("CPL", "CPL (edited by hand)"))
    assert pages.main(records, tmp_path / "pages", readme, check=True) == 1


def test_a_runner_waits_for_data_that_a_live_runner_is_making_and_says_so(tmp_path, monkeypatch, capsys):
    study = load_study(write_study(tmp_path))
    step_dir = tmp_path / "runs" / "tiny" / "prepare" / "prefs.seed0"
    lock = step_dir.with_name("prefs.seed0.lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # a live runner is making the data
    naps = []

    def the_other_runner_finishes(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            step_dir.mkdir()
            (step_dir / runner.DONE).write_text(json.dumps({"name": "prefs", "outputs": {"": "its/prefs.npz"}}))
            lock.unlink()

    monkeypatch.setattr(runner.time, "sleep", the_other_runner_finishes)
    values, made = runner.prepare(study, 0, tmp_path / "runs")
    assert values["prefs"] == "its/prefs.npz" and [m["name"] for m in made] == ["prefs"] and len(naps) == 2
    assert capsys.readouterr().out.count("waiting for prefs") == 1  # said once, not at every look
    assert not (step_dir / "prefs.npz").exists()  # nothing made twice


def test_a_record_round_trips_and_a_rerun_reproduces_its_curve_on_cpu(tmp_path):
    prefs = TINY[TINY.index("  prefs:"):TINY.index("runs:")]
    text = TINY.replace("seeds: [0, 1]", "seeds: [3]").replace("runs:", prefs.replace("prefs:", "spare:") + "runs:", 1)
    study = load_study(write_study(tmp_path, text))  # `spare` is made for the study but read by no run
    [path, _] = runner.run_study(study, records_root=tmp_path / "records", runs_root=tmp_path / "runs")
    record = read_record(path)
    stem = tmp_path / "copy" / "cpl.seed3"
    again = read_record(write_record(stem, {k: v for k, v in record.items() if k not in ("curve", "curve_columns")},
                                     tmp_path / "runs" / "tiny" / "cpl.seed3" / "metrics.csv"))
    assert {k: v for k, v in again.items() if k != "curve_columns"} == {k: v for k, v in record.items() if k != "curve_columns"}
    for column, values in record["curve_columns"].items():
        np.testing.assert_array_equal(again["curve_columns"][column], values)

    new = read_record(runner.rerun(path, tmp_path / "rerun"))
    assert new["rerun"] == str(path) and new["config"]["seed"] == 3
    assert str(tmp_path / "rerun") in new["config"]["agent"]["dataset"]  # its data re-made, not the old file
    assert [step["name"] for step in record["prepared"]] == ["prefs", "spare"]
    assert [step["name"] for step in new["prepared"]] == ["prefs"]  # what the run never read is not made again
    for column in ("gradient_steps", "eval_success_rate", "eval_return"):  # same seed on CPU: same metrics
        np.testing.assert_array_equal(new["curve_columns"][column], record["curve_columns"][column])


def test_a_prepared_policy_checkpoint_is_the_one_nearest_the_target_success(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("env_steps,eval_success_rate\n0,0.5\n50,0.2\n100,0.6\n150,0.4\n200,0.9\n")
    for step in (50, 100, 150, 200):
        (run / "checkpoints" / f"step_{step}.pt").write_bytes(b"")
    assert runner.picked_checkpoint(run, 0.5).name == "step_100.pt"  # 0.6 and 0.4 tie: the earlier; step 0 never
    assert runner.picked_checkpoint(run, 1.0).name == "step_200.pt"


@pytest.mark.parametrize("edit, message", [
    (("budget: {gradient_steps: 20}", "budget: {minutes: 20}"), "budget"),
    (("seeds: [0, 1]", "seeds: []"), "seeds"),
    (("eval_every: 10", "eval_every: 10\nrunz: 1"), "unknown key"),
    (("agent.sft=false]", "agent.sft=false, 'agent.dataset={{nope}}']"), "nope"),
    (("kind: make_preferences", "kind: download"), "make_dataset, make_preferences, train"),
    (("cpl: {agent: cpl,", "cpl: {"), "names no agent"),
    (("headline: {run: cpl", "headline: {run: ppo"), "headline.run"),
    (("baseline: sft", "baseline: gcbc"), "headline.baseline 'gcbc' must be one of cpl, sft"),
    (("runs: [sft]}]", "runs: [sft, cpl]}]"), "grid row 'SFT': runs must name 1 runs"),
    (("runs: [cpl], published", "runs: [nope], published"), "grid row 'CPL'"),
    (("title: Tiny CPL study", "title: Tiny: CPL study"), "not valid YAML at line 2, column 12: mapping values are not allowed"),
    (("eval_every: 10", "eval_every: 10\nmetric: reward"), "metric 'reward' must be one of eval_success_rate, eval_return"),
    (("eval_every: 10", "eval_every: 10\nmetric: eval_return"), "a study with metric eval_return has none"),
    (("eval_every: 10", "eval_every: 10\ntarget: 80"), "target 80 must be a success rate in"),
    (("x_label: updates", "x_label: 8"), "x_label 8 must be a non-empty string"),
])
def test_a_bad_study_is_refused_in_one_line_naming_the_problem(tmp_path, edit, message):
    with pytest.raises(StudyError, match=message) as err:
        load_study(write_study(tmp_path, TINY.replace(*edit)))
    assert "\n" not in str(err.value)


def test_the_cli_refuses_an_unknown_study_or_run_before_any_work(tmp_path):
    out = subprocess.run([sys.executable, "-m", "scripts.bench", "run", "no_such_study"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown study 'no_such_study'; known:" in out.stderr and "push" in out.stderr
    out = subprocess.run([sys.executable, "-m", "scripts.bench", "run", str(write_study(tmp_path)), "--only", "ppo",
                          "--runs", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--only ppo: not a run of tiny" in out.stderr  # placeholders pass the check
    out = subprocess.run([sys.executable, "-m", "scripts.bench", "run", "push", "--only", "ppo", "--runs",
                          str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--only ppo: not a run of push" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_records_folders_and_seeds_are_refused_and_the_committed_pages_kept(tmp_path, capsys):
    """`report --records /typo` generated pages from no records and deleted the 45 committed ones as stale."""
    from scripts.bench.__main__ import main  # noqa: PLC0415

    before = {p: p.read_bytes() for p in pages.PAGES.glob("*.md")}
    assert main(["report", "--records", str(tmp_path / "typo")]) == 2
    assert "without --out and --readme would rewrite" in capsys.readouterr().err
    assert main(["report", "--records", str(tmp_path), "--out", str(tmp_path / "p"), "--readme", str(tmp_path / "R.md")]) == 2
    assert "holds no records" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert {p: p.read_bytes() for p in pages.PAGES.glob("*.md")} == before
    with pytest.raises(SystemExit) as stop:
        main(["run", "reach", "--seeds", "-1", "--runs", str(tmp_path / "runs")])
    assert stop.value.code == 2 and "'-1' is not a seed" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_every_committed_study_file_loads():
    from scripts.bench.study import known_studies

    assert {"push", "point_maze_medium", "fetch_reach", "ogbench_cube_single", "cpl_metaworld"} <= set(known_studies())
    for name in known_studies():
        load_study(name)


def test_the_committed_pages_are_what_the_committed_records_give():
    """No hand-edited number: every docs/benchmarks page and the README's results block are regenerated from the
    committed records and compared (markdown byte for byte, PNGs pixel for pixel)."""
    readme = ROOT / "README.md"
    files = pages.generate(RECORDS, readme.read_text())
    for rel, content in files.items():
        path = readme if rel == "README.md" else pages.PAGES / rel
        assert path.exists(), f"{path} is missing: run python -m scripts.bench report"
        if rel.endswith(".png"):
            made = matplotlib.image.imread(io.BytesIO(content))
            np.testing.assert_array_equal(matplotlib.image.imread(path), made, err_msg=f"{path} differs")
        else:
            assert path.read_text() == content, f"{path} differs from its records: run python -m scripts.bench report"
    committed = {p.name for p in pages.PAGES.glob("*.md")} | {p.name for p in pages.PAGES.glob("*.png")}
    assert committed <= set(files), f"pages without records: {committed - set(files)}"


def test_measurement_records_become_tables_rows_per_env_or_agent_and_scalars_apart():
    rows = {"envs": [{"env_id": "a", "steps_per_s": 1500.0}, {"env_id": "b", "steps_per_s": 2.5}], "note": "x"}
    assert pages.result_tables(rows) == [
        "| measurement | value |", "| --- | --- |", "| note | x |", "",
        "**envs**", "", "| env_id | steps_per_s |", "| --- | --- |", "| a | 1,500 |", "| b | 2.500 |", ""]
    per_agent = {"crl": {"updates_per_s": 3.25}, "ppo": {"updates_per_s": 7.0, "env": "reach"}}
    assert pages.result_tables(per_agent) == [
        "|  | updates_per_s | env |", "| --- | --- | --- |", "| crl | 3.250 |  |", "| ppo | 7.000 | reach |", ""]


def test_a_measurement_record_names_its_command_as_a_shell_line_relative_to_the_repository(monkeypatch):
    from scripts.bench import command_line

    monkeypatch.setattr(sys, "argv", ["/elsewhere/wt/scripts/bench/envs.py", "--out",
                                      "/elsewhere/main/docs/benchmarks/records/throughput/envs.json", "--beside", "a job"])
    assert command_line() == "python -m scripts.bench.envs --out docs/benchmarks/records/throughput/envs.json --beside 'a job'"


def test_a_page_shows_a_record_command_without_its_beside_text_and_with_repository_paths():
    old = "python -m scripts.bench.rewards clip --out /w/main/docs/benchmarks/records/rewards/c.json --beside two jobs ran --seed 1"
    new = "python -m scripts.bench.envs --out docs/benchmarks/records/throughput/e.json --beside 'two jobs --x'"
    assert pages.command_text(old) == "python -m scripts.bench.rewards clip --out docs/benchmarks/records/rewards/c.json --seed 1"
    assert pages.command_text(new) == "python -m scripts.bench.envs --out docs/benchmarks/records/throughput/e.json"


def test_a_rewards_record_gets_a_page_of_its_own(tmp_path):
    record = json.loads((RECORDS / "throughput" / "crl_depth0_cpu.json").read_text())
    (tmp_path / "rewards").mkdir()
    write_record(tmp_path / "rewards" / "preference", {**record, "results": {"held_out_accuracy": 0.93}})
    files = pages.generate(tmp_path)
    assert "throughput.md" not in files and "| held_out_accuracy | 0.930 |" in files["rewards.md"]
    assert f"; mujoco {record['versions']['mujoco']}; crlab " in files["rewards.md"]  # what a version comparison reads
    assert "[rewards.md](rewards.md)" in files["index.md"]


def test_a_study_that_reports_returns_gets_them_on_its_page_with_their_iqm_and_its_steps_label(tmp_path):
    record = read_record(RECORDS / "curl_reach_pixels" / "curl.seed0.json")
    study = {**record["study"], "name": "returns",
             "file": {**record["study"]["file"], "metric": "eval_return", "x_label": "agent steps"}}
    budget = {"kind": "env_steps", "amount": 100, "text": "100 env steps", "x_label": "env steps"}
    for seed, returns in enumerate([(10.0, 400.0), (20.0, 600.0)]):
        csv = tmp_path / f"metrics{seed}.csv"
        csv.write_text("env_steps,wall_time_s,eval_success_rate,eval_return\n"
                       f"0,1.0,0.0,{returns[0]}\n100,2.0,0.0,{returns[1]}\n")
        base = {k: v for k, v in record.items() if k not in ("curve", "curve_columns")}
        write_record(tmp_path / "returns" / f"curl.seed{seed}", {**base, "study": study, "seed": seed, "budget": budget}, csv)
    files = pages.generate(tmp_path)
    page = files["returns.md"]
    assert "final return, IQM [95 % CI]" in page and "| agent steps at the end |" in page
    assert "Budget per run: 100 agent steps." in page
    assert "| 0, 1 | return 500.0 [400.0, 600.0] | 400.0 / 600.0 | 400.0 / 600.0 | 100 / 100 |" in page  # mean of 2
    assert "| `curl` | return 500.0 [400.0, 600.0] | 2 |" in files["index.md"]
    assert files["returns.png"][:4] == b"\x89PNG"


def test_a_study_that_reports_peak_memory_gets_whole_megabytes_on_its_page(tmp_path):
    record = read_record(RECORDS / "curl_reach_pixels" / "curl.seed0.json")
    study = {**record["study"], "name": "memory", "file": {**record["study"]["file"], "metric": "peak_rss_mb"}}
    budget = {"kind": "env_steps", "amount": 100, "text": "100 env steps", "x_label": "env steps"}
    csv = tmp_path / "metrics.csv"
    csv.write_text("env_steps,wall_time_s,eval_success_rate,eval_return,peak_rss_mb\n"
                   "0,1.0,0.0,-5.0,1166.4\n100,2.0,0.0,-1.0,2907.6\n")
    base = {k: v for k, v in record.items() if k not in ("curve", "curve_columns")}
    write_record(tmp_path / "memory" / "curl.seed0", {**base, "study": study, "seed": 0, "budget": budget}, csv)
    page = pages.generate(tmp_path)["memory.md"]
    assert "final peak RSS (MB), IQM [95 % CI]" in page
    assert "| 0 | peak RSS (MB) 2,908 (1 seed) | 2,908 | 2,908 | 100 |" in page


def test_a_page_describes_its_study_as_the_newest_record_that_knows_its_runs_does(tmp_path):
    """A study file that gained a run after the first records: the page's title, description and references are those
    of the newest record whose study declares every run on the page, even where a record of the older file (which
    did not know the new run) finished later."""
    record = read_record(RECORDS / "curl_reach_pixels" / "curl.seed0.json")
    base = {k: v for k, v in record.items() if k not in ("curve", "curve_columns")}
    csv = tmp_path / "metrics.csv"
    csv.write_text("env_steps,wall_time_s,eval_success_rate,eval_return\n0,1.0,0.0,-5.0\n100,2.0,0.5,-1.0\n")
    for run, seed, finished, words in [("b_old", 0, "2026-12-01T10:00", "one run"), ("a_new", 0, "2026-12-02T10:00", "two runs"),
                                       ("b_old", 1, "2026-12-03T11:00", "one run"), ("a_new", 1, "2026-12-01T09:00", "a draft")]:
        declared = {"b_old": {}} if words == "one run" else {"b_old": {}, "a_new": {}}
        study = {**record["study"], "name": "grown", "title": f"grown: {words}", "description": f"Now {words}.",
                 "references": [{"label": words, "value": "1", "source": "a test"}],
                 "file": {**record["study"]["file"], "runs": declared}}
        write_record(tmp_path / "grown" / f"{run}.seed{seed}",
                     {**base, "study": study, "run": run, "seed": seed, "finished": finished}, csv)
    files = pages.generate(tmp_path)
    page = files["grown.md"]
    assert page.startswith("# grown: two runs\n\nNow two runs.\n") and "- two runs: **1** (a test)" in page
    assert "one run" not in page and "draft" not in page and files["index.md"].count("[grown: two runs](grown.md)") == 2


def test_records_made_before_their_study_had_a_headline_take_the_study_files(tmp_path, monkeypatch):
    from scripts.bench import study as study_module

    write_study(tmp_path)  # TINY's headline: cpl against sft
    monkeypatch.setattr(pages, "STUDIES", tmp_path)
    monkeypatch.setattr(study_module, "STUDIES", tmp_path)
    record = read_record(RECORDS / "curl_reach_pixels" / "curl.seed0.json")
    study = {**record["study"], "name": "tiny", "headline": None}
    runs = {run: [{**record, "study": study, "run": run}] for run in ("cpl", "sft")}
    assert pages.headline_rows({"tiny": runs}) == [("tiny", {"label": "tiny, 20 steps", "run": "cpl", "baseline": "sft"})]
    assert pages.headline_rows({"tiny": {"sft": runs["sft"]}}) == []  # the headline's run has no records yet


def test_a_study_with_a_target_gets_each_seeds_time_and_steps_to_it(tmp_path):
    record = read_record(RECORDS / "reach" / "crl.seed0.json")
    study = {**record["study"], "name": "timed", "file": {**record["study"]["file"], "target": 0.5}}
    for seed, success in enumerate([(0.2, 0.5, 0.9), (0.0, 0.1, 0.4)]):
        csv = tmp_path / f"metrics{seed}.csv"
        csv.write_text("env_steps,wall_time_s,eval_success_rate,eval_return\n"
                       + "".join(f"{1000 * i},{10.0 * i + 3},{s},0.0\n" for i, s in enumerate(success)))
        base = {k: v for k, v in record.items() if k not in ("curve", "curve_columns")}
        write_record(tmp_path / "timed" / f"crl.seed{seed}", {**base, "study": study, "seed": seed}, csv)
    page = pages.generate(tmp_path)["timed.md"]
    assert "first evaluation with success >= 0.50 (never: not reached)" in page
    assert "| `crl` | 0, 1 | 13 / never | 1,000 / never |" in page  # seed 0 reaches 0.5 exactly at its second row


@pytest.mark.parametrize("steps, length", [(100, 10), (60, 25)])
def test_next_step_autoreset_loses_one_env_step_per_episode_and_same_step_none(steps, length):
    import gymnasium

    from scripts.bench.autoreset import loop_rate
    for mode, usable in (("same_step", 1.0), ("next_step", 1 - (steps // (length + 1)) / steps)):
        env = gymnasium.make_vec("crlab/Reach-v0", num_envs=3, vectorization_mode="vector_entry_point",
                                 autoreset_mode=mode, max_episode_steps=length)
        rate, share = loop_rate(env, mode, steps, seed=0)
        env.close()
        assert share == pytest.approx(usable) and rate > 0  # every (length + 1)-th step of a copy is its reset


def test_every_committed_record_names_its_config_machine_and_versions():
    for path in sorted(RECORDS.rglob("*.json")):
        record = json.loads(path.read_text())
        assert record["record_version"] == 1 and record["config"] and record["machine"]["cpu"], path
        assert record["versions"].get("torch") and record["versions"].get("crlab"), path


def test_gpu_bench_measures_ppo_on_cpu():
    result = measure("ppo", ["ppo:env.num_envs=8", "ppo:agent.num_steps=8"], "cpu", seconds=0.5, warmup_s=0.2, seed=0)
    assert result["env"] == "reach" and result["num_envs"] == 8
    assert result["env_steps_per_s"] > 0 and result["updates_per_s"] > 0 and result["seconds"] >= 0.5


def test_gpu_bench_measures_offline_cpl_updates_on_cpu():
    result = measure("cpl", ["cpl:agent.hidden=[16]"], "cpu", seconds=0.5, warmup_s=0.2, seed=0)
    assert result["updates_per_s"] > 0 and result["seconds"] >= 0.5 and result["env_steps_per_s"] != result["env_steps_per_s"]


def test_a_prepare_step_in_the_wrong_step_unit_is_refused(tmp_path):
    """A study's `train` prepare step is checked as a command line is: an offline policy given total_env_steps would
    otherwise train the default number of gradient steps."""
    text = TINY.replace('''runs:
  cpl:''', '''  policy:
    kind: train
    overrides: [agent=cpl, env=reach, "agent.dataset={{prefs}}", total_env_steps=10, "seed={{seed}}"]
runs:
  cpl:''')
    study = load_study(write_study(tmp_path, text))
    with pytest.raises(ValueError, match="total_env_steps does not apply: an offline run"):
        runner.run_study(study, seeds=[0], records_root=tmp_path / "records", runs_root=tmp_path / "runs")


def test_the_preference_reward_benchmark_writes_a_record_that_the_rewards_page_shows(tmp_path, monkeypatch):
    """`python -m scripts.bench.rewards preference --out FILE`, tiny: the model beats chance on held-out pairs from
    other episodes, and the record lands where the rewards page reads it."""
    from scripts.bench import rewards

    out = tmp_path / "rewards" / "preference.json"
    monkeypatch.setattr(sys, "argv", ["scripts/bench/rewards.py", "preference", "--episodes", "16", "--pairs", "256",
                                      "--epochs", "5", "--out", str(out), "--beside", "a test"])
    rewards.main()
    record = read_record(out)
    assert record["beside"] == "a test" and record["command"].startswith("python -m scripts.bench.rewards preference")
    assert 0.6 < record["results"]["held_out_accuracy"] <= 1.0
    assert "## preference" in pages.generate(tmp_path)["rewards.md"]
