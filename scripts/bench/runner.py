"""Run a study: prepare its data, train every (run, seed) through the run engine, write one record per run.

Run directories live under `runs/bench/<study>/` (git-ignored): a run stopped part-way resumes from its
checkpoint when the same command is given again, and a (run, seed) that already has a record is skipped.
Runners may share a runs folder: each (run, seed) and each prepare step is claimed by a lock file naming its host and
process, so a second runner skips a run that a live one is training (and waits for data a live one is making)
instead of starting it again in the same folder; a lock whose process has gone is taken over.
`rerun` trains a record's own resolved config again (its data re-made from the configs the record holds), so
an old row is reproduced by what the record says, not by today's defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from scripts.bench.record import RECORDS, ROOT, load_average, machine, metric_of, metric_text, now, read_record, record_stem, versions, write_record
from scripts.bench.study import METRICS, PrepareStep, RunSpec, Study, fill
from scripts.report import read_curve, step_column

RUNS = ROOT / "runs" / "bench"
DONE = "DONE.json"
# every benchmark run: no videos, the study's seed; progress bars only on a terminal
BASE_OVERRIDES = ("video_episodes=0",)


def compose(name: str, overrides: list[str]) -> DictConfig:
    from scripts.run_setup import compose_config  # noqa: PLC0415 (torch, MuJoCo: not for `report`)

    return compose_config(name, overrides)


def container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def progress() -> str:
    return f"progress={str(sys.stdout.isatty()).lower()}"


def replace_paths(value: Any, moves: dict[str, str]) -> Any:
    """`value` (a config tree) with every string's old folder prefixes replaced by new ones."""
    if isinstance(value, dict):
        return {k: replace_paths(v, moves) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_paths(v, moves) for v in value]
    if isinstance(value, str):
        for old, new in moves.items():
            value = value.replace(old, new)
    return value


def picked_checkpoint(run_dir: Path, target: float) -> Path:
    """The checkpoint of the evaluation whose success is nearest `target` (earliest on ties, after step 0)."""
    curve = read_curve(run_dir / "metrics.csv")
    rows = [(int(s), float(v)) for s, v in zip(curve[step_column(curve)], curve["eval_success_rate"]) if s > 0]
    if not rows:
        raise ValueError(f"{run_dir} has no evaluation after step 0 to pick a checkpoint from")
    step, success = min(rows, key=lambda sv: (abs(sv[1] - target), sv[0]))
    path = run_dir / "checkpoints" / f"step_{step}.pt"
    if not path.exists():
        raise ValueError(f"{path} was not kept: give the prepare step keep_checkpoints / checkpoint_every to match "
                         "eval_every")
    print(f"picked {path.name} (success {success:.2f}, target {target}) from {run_dir}", flush=True)
    return path


def execute_step(kind: str, cfg: DictConfig, step_dir: Path, pick_success: float | None,
                 overrides: list[str] = ()) -> dict[str, str]:
    """Make what a prepare step makes; returns its placeholder values ({"": output, "checkpoint": ...}). A `train`
    step's `overrides` are checked as scripts.train checks a command line's (e.g. a step count in the wrong unit)."""
    step_dir.mkdir(parents=True, exist_ok=True)
    if kind == "make_dataset":
        from scripts.make_dataset import make_dataset  # noqa: PLC0415

        return {"": str(make_dataset(cfg))}
    if kind == "make_preferences":
        from scripts.make_preferences import make_preferences  # noqa: PLC0415

        return {"": str(make_preferences(cfg))}
    from scripts.engine import train  # noqa: PLC0415

    train(cfg, step_dir, list(overrides))
    checkpoint = (picked_checkpoint(step_dir, pick_success) if pick_success is not None
                  else step_dir / "checkpoints" / "latest.pt")
    return {"": str(step_dir), "checkpoint": str(checkpoint)}


def step_config(step: PrepareStep, values: dict[str, str], step_dir: Path) -> DictConfig:
    overrides = [fill(o, {**values, "dir": str(step_dir)}) for o in step.overrides]
    if step.kind == "make_dataset":
        return compose("make_dataset", ["progress=false", f"out={step_dir / 'data.npz'}", *overrides])
    if step.kind == "make_preferences":
        return compose("make_preferences", [f"out={step_dir / 'prefs.npz'}", *overrides])
    return compose("train", [*BASE_OVERRIDES, "progress=false", *overrides])


def holder_alive(lock: Path) -> bool:
    """Whether the process a lock file names ("HOST PID") still runs; a lock of another host counts as live."""
    try:
        host, pid = lock.read_text().split()
    except (OSError, ValueError):  # gone, or not written yet by its maker
        return lock.exists()
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


@contextmanager
def claimed(lock: Path) -> Iterator[bool]:
    """Hold `lock` while the body runs: yields True, or False (holding nothing) while a live process holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if holder_alive(lock):
                yield False
                return
            lock.unlink(missing_ok=True)  # its process has gone: take it over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}")
        break
    try:
        yield True
    finally:
        lock.unlink(missing_ok=True)


def prepare(study: Study, seed: int, runs_root: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Make the study's prepare steps for `seed` (each once; a finished step is read back from its DONE file).
    Returns the placeholder values and, per step, what a record keeps to re-make it."""
    values: dict[str, str] = {"seed": str(seed)}
    made = []
    for step in study.prepare:
        step_dir = runs_root / study.name / "prepare" / (f"{step.name}.seed{seed}" if step.per_seed else step.name)
        done, lock = step_dir / DONE, step_dir.with_name(step_dir.name + ".lock")
        told = False
        while not done.exists():
            with claimed(lock) as mine:
                if mine and not done.exists():
                    make_step(study, step, values, step_dir)
            if not done.exists():  # another runner is making it
                if not told:
                    print(f"[{study.name}] waiting for {step.name}: {lock} names a live runner making it", flush=True)
                    told = True
                time.sleep(5)
        saved = json.loads(done.read_text())
        for key, value in saved["outputs"].items():
            values[step.name + (f".{key}" if key else "")] = value
        made.append(saved)
    return values, made


def make_step(study: Study, step: PrepareStep, values: dict[str, str], step_dir: Path) -> None:
    """Make one prepare step into `step_dir` and write its DONE file last."""
    if step_dir.exists():  # an interrupted step: make it again from scratch
        shutil.rmtree(step_dir)
    print(f"[{study.name}] preparing {step.name} ({step.kind}) in {step_dir} ...", flush=True)
    cfg = step_config(step, values, step_dir)
    start = time.perf_counter()
    outputs = execute_step(step.kind, cfg, step_dir, step.pick_success,
                           [fill(o, {**values, "dir": str(step_dir)}) for o in step.overrides])
    saved = {"name": step.name, "kind": step.kind, "dir": str(step_dir), "config": container(cfg),
             "pick_success": step.pick_success, "outputs": outputs, "wall_s": time.perf_counter() - start}
    (step_dir / DONE).write_text(json.dumps(saved, indent=1))


def run_overrides(study: Study, spec: RunSpec, seed: int, values: dict[str, str]) -> list[str]:
    """The scripts.train overrides of one (run, seed): the study's, then the run's, then budget (in the steps the
    agent counts: env steps online, gradient steps offline), cadence, seed."""
    from scripts.engine import step_unit  # noqa: PLC0415

    overrides = [fill(o, values) for o in [*BASE_OVERRIDES, progress(), f"agent={spec.agent}", f"env={spec.env}",
                                           *study.overrides, *spec.overrides]]
    unit = step_unit(compose("train", overrides))
    return [*overrides, *spec.budget.overrides(unit), f"eval_every={spec.eval_every}", f"seed={seed}"]


def train_run(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> float:
    """Train into `run_dir`, resuming it when it holds a checkpoint; returns this segment's wall clock."""
    from scripts.engine import train  # noqa: PLC0415

    if (run_dir / "checkpoints" / "latest.pt").exists():
        print(f"resuming {run_dir}", flush=True)
        cfg = OmegaConf.merge(cfg, {"resume": str(run_dir)})
    elif run_dir.exists():  # a start killed before its first checkpoint: begin again
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    train(cfg, run_dir, overrides)
    return time.perf_counter() - start


def record_of(study: Study, spec: RunSpec | None, seed: int, cfg: DictConfig, prepared: list[dict[str, Any]],
              overrides: list[str], started: str, load_before: list[float], segment_s: float,
              note: str, code: dict[str, str]) -> dict[str, Any]:
    return {
        "study": {"name": study.name, "title": study.title, "description": study.description,
                  "references": list(study.references), "headline": study.headline, "file": study.raw},
        "run": spec.name if spec else "", "seed": seed,
        "agent": str(cfg.agent.name), "env": str(cfg.env.name),
        "note": spec.note if spec else "",
        "budget": {"kind": spec.budget.kind, "amount": spec.budget.amount, "text": spec.budget.text(),
                   "x_label": spec.budget.x_label} if spec else {},
        "overrides": overrides, "config": container(cfg), "prepared": prepared,
        "versions": code, "machine": machine(str(cfg.device)),
        "started": started, "finished": now(), "segment_wall_s": round(segment_s, 1),
        "load_average": {"before": load_before, "after": load_average()}, "beside": note,
        "rerun": None,
    }


def run_study(study: Study, seeds: list[int] | None = None, only: list[str] | None = None, *,
              records_root: Path = RECORDS, runs_root: Path = RUNS, note: str = "", use_ray: bool = False) -> list[Path]:
    """Train the study's runs (all, or `only`) for its seeds (or `seeds`); returns the records written."""
    specs = study.selected(only)
    seeds = list(seeds if seeds is not None else study.seeds)
    jobs = []
    for seed in seeds:
        values, prepared = prepare(study, seed, runs_root)
        for spec in specs:
            stem = record_stem(study.name, spec.name, seed, records_root)
            if stem.with_name(stem.name + ".json").exists():
                print(f"[{study.name}] {spec.name} seed {seed}: recorded already ({stem}.json); skipped", flush=True)
                continue
            overrides = run_overrides(study, spec, seed, values)
            jobs.append((spec, seed, compose("train", overrides), overrides, prepared, stem))
    if use_ray:
        return _run_on_ray(study, jobs, runs_root, note)
    written = []
    for spec, seed, cfg, overrides, prepared, stem in jobs:
        run_dir = runs_root / study.name / f"{spec.name}.seed{seed}"
        lock = run_dir.with_name(run_dir.name + ".lock")
        with claimed(lock) as mine:
            if not mine or stem.with_name(stem.name + ".json").exists():  # another runner has it, or finished it
                print(f"[{study.name}] {spec.name} seed {seed}: " + (f"{lock} names a live runner" if not mine else
                      "recorded meanwhile") + "; skipped", flush=True)
                continue
            print(f"[{study.name}] {spec.name} seed {seed}: {spec.agent} on {spec.env}, "
                  f"{spec.budget.text(study.steps_label(spec))} -> {run_dir}", flush=True)
            started, load_before, code = now(), load_average(), versions()  # the code as it was when the run began
            segment_s = train_run(cfg, run_dir, overrides)
            written.append(finish(study, spec, seed, cfg, overrides, prepared, stem, run_dir, started, load_before,
                                  segment_s, note, code))
    return written


def finish(study: Study, spec: RunSpec, seed: int, cfg: DictConfig, overrides: list[str],
           prepared: list[dict[str, Any]], stem: Path, run_dir: Path, started: str, load_before: list[float],
           segment_s: float, note: str, code: dict[str, str]) -> Path:
    """Write the record of a trained run and print its final evaluation."""
    saved = OmegaConf.load(run_dir / "config.yaml")  # the run's own resolved config (a resumed run: as first saved)
    record = record_of(study, spec, seed, saved, prepared, overrides, started, load_before, segment_s, note, code)
    path = write_record(stem, record, run_dir / "metrics.csv")
    curve = read_curve(run_dir / "metrics.csv")
    final = f"final {METRICS[study.metric]} {metric_text(study.metric, curve[study.metric][-1])}"
    print(f"[{study.name}] {spec.name} seed {seed}: {final} at "
          f"{int(curve[step_column(curve)][-1]):,} {study.steps_label(spec)}, "
          f"{curve['wall_time_s'][-1]:.0f} s -> {path}",
          flush=True)
    return path


def _run_on_ray(study: Study, jobs: list[tuple], runs_root: Path, note: str) -> list[Path]:
    """The study's runs as trials of scripts.sweep's Ray machinery (one process per trial, resumable), then records."""
    from scripts.sweep import Trial, run_sweep  # noqa: PLC0415

    sweep_cfg = compose_sweep()
    trials = {Trial(f"{spec.name}.seed{seed}", tuple(overrides)): job
              for job in jobs for spec, seed, _, overrides, *_ in [job]}
    started, load_before, code = now(), load_average(), versions()
    start = time.perf_counter()
    run_sweep(sweep_cfg, list(trials), runs_root / study.name)
    written = []
    for trial, (spec, seed, cfg, overrides, prepared, stem) in trials.items():
        run_dir = runs_root / study.name / trial.name
        if (run_dir / "metrics.csv").exists():
            written.append(finish(study, spec, seed, cfg, overrides, prepared, stem, run_dir, started, load_before,
                                  time.perf_counter() - start, note + " (on Ray, trials side by side)", code))
    return written


def compose_sweep() -> DictConfig:
    from hydra import compose as hydra_compose  # noqa: PLC0415
    from hydra import initialize_config_dir  # noqa: PLC0415

    from scripts.run_setup import CONF_DIR  # noqa: PLC0415

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("sweep", overrides=["report=false"])


def rerun(record_path: Path, out_root: Path, note: str = "") -> Path:
    """Train a record's resolved config again (its prepare steps re-made from their recorded configs) into
    `out_root`; writes the new record there and prints old and new final success side by side."""
    from scripts.engine import train  # noqa: PLC0415

    old = read_record(record_path)
    base = out_root / old["study"]["name"]
    moves: dict[str, str] = {}
    prepared = []
    used = json.dumps(old["config"])
    for step in old["prepared"]:
        if not any(str(value) in used for value in step["outputs"].values()):
            continue  # made for the study's other runs (e.g. another dataset): this run never read it
        step_dir = base / "prepare" / Path(step["dir"]).name
        moves[step["dir"]] = str(step_dir)
        cfg = OmegaConf.create(replace_paths(step["config"], moves))
        if (step_dir / DONE).exists():
            saved = json.loads((step_dir / DONE).read_text())
        else:
            if step_dir.exists():
                shutil.rmtree(step_dir)
            print(f"re-making {step['name']} ({step['kind']}) in {step_dir} ...", flush=True)
            outputs = execute_step(step["kind"], cfg, step_dir, step.get("pick_success"))
            saved = {**step, "dir": str(step_dir), "config": container(cfg), "outputs": outputs}
            (step_dir / DONE).write_text(json.dumps(saved, indent=1))
        for key, value in step["outputs"].items():  # a picked checkpoint may differ: map the old path to the new
            moves[value] = saved["outputs"][key]
        prepared.append(saved)
    config = replace_paths(old["config"], moves)
    cfg = OmegaConf.create({**config, "resume": None})
    run_dir = base / f"{old['run']}.seed{old['seed']}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started, load_before, code = now(), load_average(), versions()
    start = time.perf_counter()
    train(cfg, run_dir)
    record = {**old, "config": container(cfg), "prepared": prepared, "versions": code,
              "machine": machine(str(cfg.device)), "started": started, "finished": now(),
              "segment_wall_s": round(time.perf_counter() - start, 1),
              "load_average": {"before": load_before, "after": load_average()}, "beside": note,
              "rerun": str(record_path)}
    record.pop("curve_columns", None)
    record.pop("curve", None)
    path = write_record(record_stem(old["study"]["name"], old["run"], old["seed"], out_root / "records"), record,
                        run_dir / "metrics.csv")
    new = read_record(path)
    x, metric = old["budget"].get("x_label", "env steps"), metric_of(old)
    for name, rec in (("recorded", old), ("rerun", new)):
        c = rec["curve_columns"]
        final = f"final {METRICS[metric]} {metric_text(metric, c[metric][-1])}"
        print(f"{name:>9}: {final} at {int(c[step_column(c)][-1]):,} {x}, "
              f"{c['wall_time_s'][-1]:.0f} s")
    print(f"record: {path}")
    return path
