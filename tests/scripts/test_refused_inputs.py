"""Every entry point refuses bad input with one `error: ...` line and leaves the file system as it was: no run
directory under runs/ (or at an explicit hydra.run.dir), no Hydra outputs/<date>/<time>/, nothing written into a
resumed run's directory. Each refusal runs as its own process in its own empty working directory, a few at a time;
out-of-range numbers, which the entry points check in one place each, are tried in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from scripts.eval_rewards import parse_args
from scripts.make_preferences import make_preferences
from scripts.record import check_record_config
from scripts.run_log import write_checkpoint
from scripts.run_setup import compose_config

ROOT = Path(__file__).resolve().parents[2]

# module -> refused argument lists; "{tmp}" is the test's own temporary folder
REFUSED: dict[str, list[list[str]]] = {
    "scripts.train": [
        ["agent=crl", "env=push", "agent.dataset=/nonexistent.npz"],
        ["agent=crl", "env=push", "agent.dataset=/etc/passwd"],  # refused while the run is built
        ["agent=crl", "env=reach", "seed=-1"],  # refused by the run-key check
        ["agent=gcbc", "env=reach"],  # an offline agent without agent.dataset
        ["agent=crl", "env=reach", "env.id=crlab/Nope-v0"],  # an id Gymnasium cannot find (it left a run folder)
        ["agent=nope"],  # refused before Hydra starts
        ["+preset=nope"],  # a group outside the defaults list
        ["preset=gpu"],  # ... given without its +
    ],
    "scripts.make_dataset": [["env=push", "policy=nope"], ["env=push", "episodes=0"]],
    "scripts.make_preferences": [["rollouts=/nonexistent", "labeler=nope"], ["rollouts={tmp}/recorded", "record.env=nope"]],
    "scripts.record": [["policy=random"], ["env=reach", "policy=nope"]],
    "scripts.finetune_clip": [["policy=nope"]],
    "scripts.eval_rewards": [["rollouts=/nonexistent", "reward=clip"]],
    "scripts.sweep": [["agents=[nope]"]],
}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` (folders too), with size and modification time: what a run could add or change."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def run(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd` (its runs/ and outputs/ land there), crlab importable from the checkout."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def refused_in_place(calls: list[tuple[str, list[str], Path]]) -> list[subprocess.CompletedProcess]:
    """Run the calls (three at a time); each must exit 2 with one `error:` line, last (no choices listed on lines after
    it), no traceback, and change nothing in its working directory, where runs/ and Hydra's outputs/ would appear."""
    before = [snapshot(cwd) for _, _, cwd in calls]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda call: run(*call), calls))
    for (module, args, cwd), result, old in zip(calls, results, before):
        where = f"{module} {' '.join(args)}"
        assert result.returncode == 2, f"{where}: rc {result.returncode}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, where
        assert result.stderr.strip().splitlines()[-1].startswith("error: "), f"{where}: not one error line at the end\n{result.stderr}"
        assert snapshot(cwd) == old, f"{where} left {sorted(set(snapshot(cwd)) - set(old))} in {cwd}"
        assert not (cwd / "runs").exists() and not (cwd / "outputs").exists(), where
    return results


def test_refused_inputs_of_every_entry_point_leave_no_run_or_output_folder(tmp_path):
    calls = [(module, [a.format(tmp=tmp_path) for a in args], tmp_path / f"{module.split('.')[1]}_{i}")
             for module, cases in REFUSED.items() for i, args in enumerate(cases)]
    results = refused_in_place(calls)
    assert not (tmp_path / "recorded").exists()
    # the tuned settings are announced where a file holds them (crl_push), and only there
    by_args = {" ".join(args): result for (_, args, _), result in zip(calls, results)}
    assert "scripts/conf/tuned/crl_push.yaml" in by_args["agent=crl env=push agent.dataset=/etc/passwd"].stdout
    assert "agent settings measured" not in by_args["agent=crl env=reach seed=-1"].stdout
    # the messages no other test runs a process for
    assert "agent=gcbc needs agent.dataset=FILE" in by_args["agent=gcbc env=reach"].stderr
    assert "policy=random needs env=NAME" in by_args["policy=random"].stderr
    assert "env.id='crlab/Nope-v0' is not a registered Gymnasium id" in by_args["agent=crl env=reach env.id=crlab/Nope-v0"].stderr


class NoWeights:
    """An agent stand-in for write_checkpoint: a refused resume never reaches the weights."""

    def state_dict(self) -> dict:
        return {}


def test_refused_train_runs_leave_an_explicit_run_dir_and_a_resumed_run_as_they_were(tmp_path):
    resumed = tmp_path / "earlier_run"  # a resumable run: its config and a checkpoint; its folder must not change
    saved = OmegaConf.to_yaml(compose_config("train", ["agent=crl", "env=reach"]), resolve=True)
    resumed.mkdir()
    (resumed / "config.yaml").write_text(saved)
    write_checkpoint(resumed, NoWeights(), 0, 0.0, saved)
    old = snapshot(resumed)
    cases = [["agent=crl", "env=push", "agent.dataset=/etc/passwd"], ["agent=crl", "env=reach", "seed=-1"]]
    calls = [("scripts.train", [*args, f"hydra.run.dir={tmp_path / f'x{i}' / 'run'}"], tmp_path / f"cwd{i}")
             for i, args in enumerate(cases)]
    calls += [("scripts.train", [f"resume={resumed}", *args], tmp_path / f"cwd_resume{i}")
              for i, args in enumerate([["seed=-1"], ["agent.dataset=/etc/passwd"]])]
    results = refused_in_place(calls)
    assert not any((tmp_path / f"x{i}").exists() for i in range(len(cases)))  # nor the folders made above it
    assert snapshot(resumed) == old
    assert "goal dataset /etc/passwd is unreadable" in results[-1].stderr


def record_check(args: list[str]) -> None:
    check_record_config(compose_config("record", args))


def preferences_check(args: list[str]) -> None:
    make_preferences(compose_config("make_preferences", ["rollouts=recorded", "record.env=reach", *args]))


def eval_rewards_check(args: list[str]) -> None:
    parse_args(["rollouts=/nonexistent", "reward=clip", *args])


@pytest.mark.parametrize("check, args, expected", [
    (record_check, ["env=reach", "policy=random", "episodes=abc"], "episodes='abc' must be an integer > 0"),
    (record_check, ["env=reach", "policy=random", "noise=-1"], "noise=-1 must be a number >= 0"),
    (record_check, ["env=reach", "policy=random", "env.id=crlab/Nope-v0"], "env.id='crlab/Nope-v0' is not a registered"),
    (record_check, ["env=reach", "policy=random", "device=tpu"], "device='tpu' is not a torch device"),
    (preferences_check, ["segment_length=0"], "segment_length=0 must be an integer > 0"),
    (preferences_check, ["record.episodes=0"], "record.episodes=0 must be an integer > 0"),
    (preferences_check, ["error_rate=2"], r"error_rate=2 must be a probability in \[0, 1\]"),
    (eval_rewards_check, ["pairs=0"], "pairs=0 must be an integer > 0"),
])
def test_numbers_out_of_range_are_refused_before_any_work(check, args, expected, tmp_path, monkeypatch):
    """The values (not names) the other entry points take: each refused, in this process, before anything is made
    (make_preferences would record into ./recorded first; segment_length=0 made a dataset of empty segments)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=expected):
        check(args)
    assert not any(tmp_path.iterdir())
