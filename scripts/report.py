"""Aggregate runs: `python -m scripts.report RUNS... [--out DIR]`.

RUNS are run directories or folders holding them (searched recursively for `metrics.csv` beside `config.yaml`).
Runs are grouped by (agent, env, reward) from their config.yaml, split further by any other config key whose
values differ inside a group (e.g. a swept learning rate), so different experiments are never pooled. Per group:
the final success rate and return (last evaluation of each run) as an interquartile mean over seeds with a 95 %
stratified-bootstrap CI (scripts/aggregate.py), learning curves with bands as PNG, `report.md` and `report.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from scripts.aggregate import iqm, stratified_bootstrap_ci  # noqa: E402

# Keys that differ between seeds of one experiment without changing what it measures.
RUN_SPECIFIC_KEYS = {"seed", "resume", "device", "torch_threads", "progress", "log_every_s", "video_episodes",
                     "checkpoint_every", "keep_checkpoints"}
METRICS = {"success": "eval_success_rate", "return": "eval_return"}
STEP_COLUMNS = ("env_steps", "gradient_steps")  # what a run counts: online runs env steps, offline runs gradient steps


@dataclass
class Run:
    """One run directory: its flattened config and its evaluation rows (each array has shape (evals,)), at `steps`
    counted in `unit` (env_steps, or gradient_steps for an offline run)."""

    path: Path
    config: dict[str, Any]
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    unit: str = "env_steps"

    @property
    def task(self) -> tuple[str, str, str]:
        """(agent, env, reward): the reward module's name (reward=NAME), or for the env's own reward (reward=none)
        its `env.kwargs.reward_type` (sparse / dense) where the env has one, else "env"."""
        reward = self.config.get("reward.name", "none")
        if reward == "none":
            reward = self.config.get("env.kwargs.reward_type", "env")
        return str(self.config["agent.name"]), str(self.config["env.name"]), str(reward)


@dataclass
class Group:
    """Runs of one experiment: same task and same config up to `RUN_SPECIFIC_KEYS`."""

    agent: str
    env: str
    reward: str
    variant: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.agent + (f" ({variant_text(self.variant)})" if self.variant else "")


def variant_text(variant: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in variant.items())


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"agent": {"lr": 1}} -> {"agent.lr": 1}; lists become tuples so values can be compared and hashed."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def read_curve(path: Path) -> dict[str, np.ndarray]:
    """A run's metrics.csv (or a benchmark record's curve CSV) as columns, {"env_steps": (T,), "eval_success_rate":
    (T,), ...}; an empty cell (a column that appeared mid-run) reads as NaN. crlab's one reader of evaluation curves."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = list(reader.fieldnames or ["env_steps"])
    return {c: np.array([float(r[c]) if r.get(c) not in (None, "") else np.nan for r in rows]) for c in columns}


def read_rows(path: Path) -> list[dict[str, float]]:
    """`read_curve`, row-wise: one {column: value} per evaluation."""
    columns = read_curve(path)
    return [dict(zip(columns, values)) for values in zip(*(v.tolist() for v in columns.values()))]


def step_column(columns: dict[str, Any]) -> str:
    """The step column of a curve: `gradient_steps` for an offline run, else `env_steps`."""
    return next((c for c in STEP_COLUMNS if c in columns), "env_steps")


def last_row(path: Path) -> dict[str, float]:
    """The last evaluation row of a metrics.csv; ValueError if it has none yet."""
    columns = read_curve(path)
    if not len(columns[step_column(columns)]):
        raise ValueError(f"{path} has no evaluation rows")
    return {c: float(v[-1]) for c, v in columns.items()}


def load_run(run_dir: Path) -> Run | None:
    """Read `config.yaml` and `metrics.csv`; None (with a warning) if the run has no evaluation row yet."""
    config = flatten(OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True))
    config.setdefault("reward.name", "none")  # runs from before reward=NAME existed used the env's reward
    columns = read_curve(run_dir / "metrics.csv")
    unit = step_column(columns)
    if not len(columns[unit]):
        print(f"warning: {run_dir} has no evaluation rows yet; skipped", file=sys.stderr)
        return None
    return Run(run_dir, config, columns[unit].astype(int), {name: columns[column] for name, column in METRICS.items()},
               unit)


def find_runs(paths: list[Path]) -> list[Run]:
    """Every run directory at or below `paths` (a directory with both metrics.csv and config.yaml)."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        for metrics in sorted([path / "metrics.csv"] if (path / "metrics.csv").exists() else path.rglob("metrics.csv")):
            if (metrics.parent / "config.yaml").exists():
                found[metrics.parent.resolve()] = None
    return [run for run in map(load_run, found) if run is not None]


def group_runs(runs: list[Run]) -> list[Group]:
    """Group by task, then by the values of the non-run-specific keys that differ inside the task."""
    by_task: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    groups = []
    for (agent, env, reward), task_runs in sorted(by_task.items()):
        keys = sorted({k for r in task_runs for k in r.config} - RUN_SPECIFIC_KEYS)
        varying = [k for k in keys if len({repr(r.config.get(k)) for r in task_runs}) > 1]
        variants: dict[tuple, Group] = {}
        for run in sorted(task_runs, key=lambda r: (repr([r.config.get(k) for k in varying]), r.config.get("seed", 0))):
            variant = {k: run.config.get(k) for k in varying}
            key = tuple(repr(v) for v in variant.values())
            variants.setdefault(key, Group(agent, env, reward, variant)).runs.append(run)
        groups.extend(variants.values())
    return groups


def interval(values: np.ndarray | list[np.ndarray], reps: int, confidence: float, seed: int) -> dict[str, Any]:
    """IQM, CI, mean and per-run values of final scores; `values` is one task's (runs,) array or a list of them."""
    tasks = values if isinstance(values, list) else [values]
    low, high = stratified_bootstrap_ci(tasks, iqm, reps, confidence, seed)
    pooled = np.concatenate(tasks)
    return {"iqm": float(iqm(pooled)), "ci": [float(low), float(high)], "mean": float(pooled.mean()),
            "per_run": pooled.tolist()}


def curve(group: Group, reps: int, confidence: float, seed: int) -> dict[str, list[float]]:
    """IQM and CI per evaluation step, over the steps that every run of the group has evaluated."""
    steps = sorted(set.intersection(*(set(r.steps.tolist()) for r in group.runs)))
    out: dict[str, list[float]] = {group.runs[0].unit: steps}
    for name in METRICS:
        table = np.stack([r.metrics[name][np.searchsorted(r.steps, steps)] for r in group.runs])  # (runs, T)
        low, high = stratified_bootstrap_ci([table], iqm, reps, confidence, seed)
        out.update({f"{name}_iqm": iqm(table).tolist(), f"{name}_ci_low": low.tolist(), f"{name}_ci_high": high.tolist()})
    return out


def summarize(group: Group, reps: int, confidence: float, seed: int) -> dict[str, Any]:
    final_steps = [int(r.steps[-1]) for r in group.runs]
    unit = group.runs[0].unit
    return {
        "agent": group.agent, "env": group.env, "reward": group.reward, "variant": group.variant,
        "runs": [str(r.path) for r in group.runs], "seeds": [r.config.get("seed") for r in group.runs],
        "unit": unit, f"final_{unit}": final_steps,
        **{name: interval(np.array([r.metrics[name][-1] for r in group.runs]), reps, confidence, seed)
           for name in METRICS},
        "curve": curve(group, reps, confidence, seed),
    }


def across_envs(groups: list[Group], reps: int, confidence: float, seed: int) -> list[dict[str, Any]]:
    """Final success rate per (agent, reward, variant) over all its envs: each env is a stratum of the bootstrap.
    Returns are on per-env scales, so only the success rate is pooled."""
    pooled: dict[tuple[str, str, str], list[Group]] = {}
    for g in groups:
        pooled.setdefault((g.agent, g.reward, variant_text(g.variant)), []).append(g)
    return [{"agent": agent, "reward": reward, "variant": variant, "envs": [g.env for g in gs],
             "success": interval([np.array([r.metrics["success"][-1] for r in g.runs]) for g in gs], reps, confidence, seed)}
            for (agent, reward, variant), gs in pooled.items() if len(gs) > 1]


def ci_text(stat: dict[str, Any], digits: int) -> str:
    low, high = stat["ci"]
    return f"{stat['iqm']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def slug(*parts: str) -> str:
    return re.sub(r"[^\w.-]+", "_", "_".join(parts))


def plot_curves(summaries: list[dict[str, Any]], out_dir: Path, confidence: float) -> list[Path]:
    """One PNG per (env, reward): success rate and return against the runs' steps (env steps, or gradient steps
    offline), a line and band per group."""
    paths = []
    tasks = sorted({(s["env"], s["reward"]) for s in summaries})
    for env, reward in tasks:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
        group_summaries = [s for s in summaries if (s["env"], s["reward"]) == (env, reward)]
        units = sorted({s["unit"].replace("_", " ") for s in group_summaries})
        for s in group_summaries:
            c = s["curve"]
            label = s["agent"] + (f" ({variant_text(s['variant'])})" if s["variant"] else "") + f", {len(s['runs'])} seeds"
            label = textwrap.fill(label, 110)  # a long variant (several differing keys) wraps instead of squashing the axes
            for ax, name in zip(axes, METRICS):
                x = c[s["unit"]]
                line, = ax.plot(x, c[f"{name}_iqm"], label=label, marker="." if len(x) < 30 else None)
                ax.fill_between(x, c[f"{name}_ci_low"], c[f"{name}_ci_high"], color=line.get_color(), alpha=0.2)
        for ax, name in zip(axes, METRICS):
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 20k, 1M
            ax.set_xlabel(" / ".join(units))
            ax.set_ylabel(f"eval {name} (IQM over seeds)")
            ax.grid(alpha=0.3)
        axes[0].set_ylim(-0.03, 1.03)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8)
        fig.suptitle(f"{env} / {reward}: IQM with {confidence:.0%} stratified-bootstrap CI")
        path = out_dir / f"curves_{slug(env, reward)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(summaries: list[dict[str, Any]], pooled: list[dict[str, Any]], pngs: list[Path], reps: int,
             confidence: float) -> str:
    show_variant = any(s["variant"] for s in summaries)
    head = ["agent", "env", "reward"] + (["variant"] if show_variant else []) + [
        "seeds", "steps (env; offline: gradient)", f"success IQM [{confidence:.0%} CI]", f"return IQM [{confidence:.0%} CI]"]
    lines = ["# Report", "",
             f"{sum(len(s['runs']) for s in summaries)} runs in {len(summaries)} group{'s' * (len(summaries) > 1)}. Final = the last evaluation of "
             "each run. IQM = interquartile mean over seeds (25 % trimmed mean; with fewer than 4 seeds nothing is "
             f"trimmed and it is the mean); CI = {confidence:.0%} percentile interval of a stratified bootstrap over "
             f"seeds ({reps} resamples), as in Agarwal et al. 2021.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in summaries:
        steps = sorted(set(s[f"final_{s['unit']}"]))
        row = [s["agent"], s["env"], s["reward"]] + ([variant_text(s["variant"])] if show_variant else []) + [
            str(len(s["runs"])), f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}–{steps[-1]:,} (unequal!)",
            ci_text(s["success"], 2), ci_text(s["return"], 1)]
        lines.append("| " + " | ".join(row) + " |")
    if pooled:
        lines += ["", "## Across environments (success rate; each env a bootstrap stratum)", "",
                  "| agent | reward | variant | envs | success IQM [CI] |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {p['agent']} | {p['reward']} | {p['variant']} | {', '.join(p['envs'])} | {ci_text(p['success'], 2)} |"
                  for p in pooled]
    lines += [""] + [f"![{png.stem}]({png.name})" for png in pngs]
    return "\n".join(lines) + "\n"


def write_report(paths: list[Path], out_dir: Path, reps: int = 10_000, confidence: float = 0.95,
                 seed: int = 0) -> Path:
    """Aggregate the runs under `paths` into `out_dir`/{report.md, report.json, curves_*.png}; returns `out_dir`."""
    runs = find_runs(paths)
    if not runs:
        raise FileNotFoundError(f"no run directories (metrics.csv + config.yaml) under {', '.join(map(str, paths))}")
    groups = group_runs(runs)
    summaries = [summarize(g, reps, confidence, seed) for g in groups]
    pooled = across_envs(groups, reps, confidence, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = plot_curves(summaries, out_dir, confidence)
    meta = {"confidence": confidence, "bootstrap_reps": reps, "bootstrap_seed": seed, "statistic": "iqm"}
    (out_dir / "report.json").write_text(json.dumps({**meta, "groups": summaries, "across_envs": pooled}, indent=1))
    (out_dir / "report.md").write_text(markdown(summaries, pooled, pngs, reps, confidence))
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or folders holding them (e.g. a sweep_dir)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUNS/report for one RUNS folder, else ./report)")
    parser.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed")
    args = parser.parse_args(argv)
    out = args.out or (args.runs[0] / "report" if len(args.runs) == 1 else Path("report"))
    try:
        write_report(args.runs, out, args.reps, args.confidence, args.seed)
    except FileNotFoundError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
    print((out / "report.md").read_text(), end="")
    print(f"report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
