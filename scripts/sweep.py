"""Run a grid of training runs on Ray: `python -m scripts.sweep agents=[crl,ppo] envs=[reach] seeds=[0,1,2]`.

The grid is agents x envs x rewards x seeds (scripts/conf/sweep.yaml), times any train key given as `key=a,b`;
every other `key=value` is a scripts.train override for all trials (`total_env_steps=100_000`). Each trial is
`scripts.train.train` writing a normal run directory `<sweep_dir>/<agent>_<env>[_<reward>]_seed<k>/`, plus
`trial.log` (its output) and a `DONE` marker once it reached `total_env_steps` (offline: `total_gradient_steps`). Running the same command
with the same `sweep_dir` again skips trials marked DONE and resumes the others from their latest checkpoint.
Ray is started in this process (`num_cpus`, `num_gpus`), or joined at `address=...`; each trial reserves
`cpus_per_trial` CPUs and `gpus_per_trial` (may be fractional) GPUs. At the end, scripts.report writes
`<sweep_dir>/report/`.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from scripts.cli import check_overrides
from scripts.engine import check_run
from scripts.report import RUN_SPECIFIC_KEYS, flatten, last_row, write_report
from scripts.run_setup import compose_config

CONF = Path(__file__).resolve().parent / "conf"
DONE = "DONE"
TRIAL_LOG = "trial.log"
# The sweep sets these per trial; overriding them for all trials would collapse the grid.
GRID_KEYS = {"agent": "agents", "env": "envs", "reward": "rewards", "seed": "seeds", "resume": None}


@dataclass(frozen=True)
class Trial:
    """One grid point: its run-directory name and its scripts.train overrides."""

    name: str
    overrides: tuple[str, ...]


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate sweep keys (top-level keys of conf/sweep.yaml) from scripts.train overrides."""
    sweep_keys = set(OmegaConf.load(CONF / "sweep.yaml"))
    sweep, train = [], []
    for arg in argv:
        (sweep if arg.split("=", 1)[0] in sweep_keys else train).append(arg)
    return sweep, train


def expand_grid(cfg: DictConfig, train_overrides: list[str]) -> list[Trial]:
    """agents x envs x rewards x (swept train keys) x seeds; a train override `key=a,b` is one more axis."""
    fixed, swept = [], []
    for override in OverridesParser.create().parse_overrides(train_overrides):
        key = override.get_key_element()
        if override.key_or_group in GRID_KEYS:
            axis = GRID_KEYS[override.key_or_group]
            raise ValueError(f"'{override.input_line}': the sweep sets {override.key_or_group} per trial"
                             + (f"; use {axis}=[...]" if axis else ""))
        if override.is_sweep_override():
            swept.append([(key, value) for value in override.sweep_string_iterator()])
        else:
            fixed.append(override.input_line)
    rewards = list(cfg.rewards) if cfg.rewards else [None]
    trials = []
    for agent, env, reward, *point, seed in itertools.product(cfg.agents, cfg.envs, rewards, *swept, cfg.seeds):
        parts = [agent, env] + ([reward] if reward else []) + [f"{k}={v}" for k, v in point] + [f"seed{seed}"]
        name = "_".join(parts).replace("/", "-").replace(" ", "")
        grid = [f"agent={agent}", f"env={env}"] + ([f"reward={reward}"] if reward else []) + [f"{k}={v}" for k, v in point]
        trials.append(Trial(name, tuple(["progress=false", *grid, *fixed, f"seed={seed}"])))
    return trials


def train_config(overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def config_mismatch(run_dir: Path, cfg: DictConfig) -> str | None:
    """None if `run_dir` holds no config or the same experiment as `cfg`, else the first differing keys."""
    if not (run_dir / "config.yaml").exists():
        return None
    old = flatten(OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True))
    new = flatten(OmegaConf.to_container(cfg, resolve=True))
    differ = [f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys())
              if k not in RUN_SPECIFIC_KEYS and old.get(k) != new.get(k)]
    return "; ".join(differ[:3]) or None


def final_step(run_dir: Path) -> int | None:
    """env_steps of the run's latest checkpoint, None if it has none."""
    from scripts.run_log import latest_checkpoint  # noqa: PLC0415 (torch import: keep the driver light)

    return int(latest_checkpoint(run_dir)["env_steps"]) if (run_dir / "checkpoints" / "latest.pt").exists() else None


def last_eval(run_dir: Path) -> dict[str, float] | None:
    """The last metrics.csv row, None before the first evaluation."""
    if not (run_dir / "metrics.csv").exists():
        return None
    try:
        return last_row(run_dir / "metrics.csv")
    except ValueError:  # no evaluation row yet
        return None


def mark_done(run_dir: Path, env_steps: int) -> None:
    """Write the DONE marker atomically (temp file + rename), so a marker is never half there."""
    tmp = run_dir / f".{DONE}.tmp"
    tmp.write_text(json.dumps({"env_steps": env_steps, "finished": datetime.datetime.now().isoformat(timespec="seconds")}))
    os.replace(tmp, run_dir / DONE)


@ray.remote
def run_trial(cfg: DictConfig, run_dir: str) -> dict[str, Any]:
    """Ray task: train one grid point into `run_dir` (fresh, or resumed from its checkpoint); output goes to
    `run_dir/trial.log`. Returns {"ran", "env_steps", "done", "last_eval"}."""
    from scripts.engine import run_length  # noqa: PLC0415 (torch, MuJoCo: only in the workers)
    from scripts.train import train  # noqa: PLC0415

    path = Path(run_dir)
    step = final_step(path)
    if step is not None and step >= run_length(cfg):  # finished before its marker was written
        mark_done(path, step)
        return {"ran": False, "env_steps": step, "done": True, "last_eval": last_eval(path)}
    if step is not None:
        cfg = OmegaConf.merge(cfg, {"resume": run_dir})
    else:  # a killed start without a checkpoint: begin again rather than append to its rows
        (path / "metrics.csv").unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / TRIAL_LOG, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        start = "resumed from step " + str(step) if step is not None else "started"
        print(f"=== trial {start} at {datetime.datetime.now():%Y-%m-%d %H:%M:%S} on {socket.gethostname()} ===", flush=True)
        try:
            train(cfg, path)
        except BaseException:
            traceback.print_exc()
            raise
    step = final_step(path)
    done = step is not None and step >= run_length(cfg)
    if done:
        mark_done(path, step)
    return {"ran": True, "env_steps": step, "done": done, "last_eval": last_eval(path)}


def start_ray(cfg: DictConfig) -> None:
    """Join the cluster at `cfg.address`, or start a local Ray; fail fast if a trial can never be scheduled."""
    quiet = {"log_to_driver": False, "logging_level": "WARNING"}
    if cfg.address:
        ray.init(address=cfg.address, **quiet)
        return
    ray.init(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, include_dashboard=False, **quiet)
    have = ray.cluster_resources()
    for resource, need in (("CPU", cfg.cpus_per_trial), ("GPU", cfg.gpus_per_trial)):
        if need > have.get(resource, 0):
            raise ValueError(f"each trial asks for {need} {resource}, but the local Ray has {have.get(resource, 0)}")


def progress_lines(elapsed: float, trials: dict[str, Path], finished: int, failed: int, total: int) -> list[str]:
    lines = [f"[{datetime.timedelta(seconds=int(elapsed))}] {finished}/{total} finished, {failed} failed, "
             f"{len(trials)} to go"]
    for name, run_dir in trials.items():
        if (row := last_eval(run_dir)) is not None:
            unit = "gradient_steps" if "gradient_steps" in row else "env_steps"
            lines.append(f"  {name}: last eval at {int(row[unit]):,} {unit.replace('_', ' ')}, "
                         f"success {float(row['eval_success_rate']):.2f}, return {float(row['eval_return']):.1f}")
    return lines


def first_line(err: ray.exceptions.RayError) -> str:
    """"ValueError: ..." of the trial's own exception (Ray's wrapper holds it as `cause`), first line only."""
    cause = getattr(err, "cause", None) or err
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"


def run_sweep(cfg: DictConfig, trials: list[Trial], sweep_dir: Path) -> tuple[int, int]:
    """Run the unfinished `trials` on Ray, printing progress; returns (finished, failed) counts over all trials."""
    configs = {t: train_config(t.overrides) for t in trials}
    for trial, trial_cfg in configs.items():
        if reason := config_mismatch(sweep_dir / trial.name, trial_cfg):
            raise ValueError(f"{sweep_dir / trial.name} holds a run with another config ({reason}); "
                             "use a new sweep_dir, or the overrides it was started with")
    todo = [t for t in trials if not (sweep_dir / t.name / DONE).exists()]
    finished, failed = len(trials) - len(todo), 0
    print(f"{len(trials)} trials in {sweep_dir}: {finished} finished (skipped), {len(todo)} to run")
    if not todo:
        return finished, failed
    start_ray(cfg)
    try:
        pending = {run_trial.options(num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial, name=t.name)
                   .remote(configs[t], str(sweep_dir / t.name)): t for t in todo}
        start = last_print = time.time()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=cfg.progress_every_s)
            for ref in ready:
                trial = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:
                    failed += 1
                    print(f"FAILED {trial.name}: {first_line(err)} (see {sweep_dir / trial.name / TRIAL_LOG})", flush=True)
                    continue
                row = result["last_eval"] or {}
                where = f"at {result['env_steps']:,} steps, success {float(row.get('eval_success_rate', 'nan')):.2f}"
                if result["done"]:
                    finished += 1
                    print(f"finished {trial.name} {where}" + ("" if result["ran"] else " (already trained)"), flush=True)
                else:
                    failed += 1
                    print(f"INCOMPLETE {trial.name}: stopped {where} before its total steps (time_limit_s?)", flush=True)
            if time.time() - last_print >= cfg.progress_every_s and pending:
                last_print = time.time()
                running = {t.name: sweep_dir / t.name for t in pending.values()}
                print("\n".join(progress_lines(last_print - start, running, finished, failed, len(trials))), flush=True)
    finally:
        ray.shutdown()
    return finished, failed


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__ + "\nSweep keys (scripts/conf/sweep.yaml):\n" + (CONF / "sweep.yaml").read_text())
        return 0
    sweep_args, train_args = split_args(argv)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("sweep", overrides=sweep_args)
    if cfg.rewards and not (CONF / "reward").is_dir():
        raise ValueError("rewards=[...] needs reward configs in scripts/conf/reward/ (train.yaml has no reward group yet)")
    for key in ("agents", "envs", "seeds", "rewards"):
        if cfg[key] is not None and not OmegaConf.is_list(cfg[key]):
            raise ValueError(f"{key}={cfg[key]!r} must be a list, e.g. {key}=[{cfg[key]}]")
    trials = expand_grid(cfg, train_args)
    for trial in trials:
        check_overrides(CONF, "train", list(trial.overrides))  # bad names or keys: one clear line, exit 2
        check_run(compose_config("train", trial.overrides), trial.overrides)  # bad values: before any trial starts
    sweep_dir = Path(cfg.sweep_dir or f"runs/sweep_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}").resolve()
    restart = [a for a in argv if not a.startswith("sweep_dir=")] + [f"sweep_dir={sweep_dir}"]
    print(f"sweep: {sweep_dir}\n  restart or continue with: python -m scripts.sweep {' '.join(restart)}", flush=True)
    try:
        finished, failed = run_sweep(cfg, trials, sweep_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue (finished trials are kept)", file=sys.stderr)
        return 130
    if cfg.report and any((sweep_dir / t.name / "metrics.csv").exists() for t in trials):
        out = write_report([sweep_dir], sweep_dir / "report")
        print((out / "report.md").read_text().split("\n![")[0].rstrip() + f"\n\nreport: {out / 'report.md'}")
    print(f"{finished}/{len(trials)} trials finished, {failed} failed or incomplete")
    return 0 if finished == len(trials) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, HydraException) as err:  # bad grid or override syntax: one line, no traceback
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
