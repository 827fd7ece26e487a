"""Benchmark pages made from the records alone: `python -m scripts.bench report [--check]`.

Per study `docs/benchmarks/<study>.md` (one row per run: final success, or return for a study with `metric:
eval_return`, as an interquartile mean over seeds with a 95 % stratified-bootstrap interval, per-seed values, steps
and wall clock at the stop, each seed's time to the study's `target`, the published numbers the study names, where
and with what it ran) and `<study>.png` (the metric against steps, IQM with its band, and each seed against wall
clock); `index.md` (every study's rows), `throughput.md` and `rewards.md` (the measurement records), and the
README's results block (headline rows and `headline.png`). `--check` regenerates into memory and fails when a
committed page differs: no number on these pages is typed by hand.
"""

from __future__ import annotations

import io
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from scripts.aggregate import iqm, stratified_bootstrap_ci  # noqa: E402
from scripts.bench.record import RECORDS, ROOT, metric_of, metric_text, read_record, training_records  # noqa: E402
from scripts.bench.study import METRICS, STUDIES, Budget, load_study  # noqa: E402
from scripts.report import step_column  # noqa: E402

PAGES = ROOT / "docs" / "benchmarks"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench:headline:begin (python -m scripts.bench report) -->", "<!-- bench:headline:end -->"
REPS, CONFIDENCE, BOOT_SEED = 2_000, 0.95, 0
PNG_META = {"Software": None}  # no version string in the file: the same records give the same bytes


def by_study(records: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    studies: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        studies.setdefault(record["study"]["name"], {}).setdefault(record["run"], []).append(record)
    return studies


def final_stat(records: list[dict[str, Any]]) -> dict[str, Any]:
    metric = metric_of(records[0])
    finals = np.array([r["curve_columns"][metric][-1] for r in records])
    low, high = stratified_bootstrap_ci([finals], iqm, REPS, CONFIDENCE, BOOT_SEED)
    return {"iqm": float(iqm(finals)), "low": float(low), "high": float(high), "finals": finals, "metric": metric}


def success_text(stat: dict[str, Any]) -> str:
    """The IQM and its interval; a study that reports returns says so ("return 520.3 [...]")."""
    metric = stat["metric"]
    mid, low, high = (metric_text(metric, stat[k]) for k in ("iqm", "low", "high"))
    text = f"{mid} (1 seed)" if len(stat["finals"]) == 1 else f"{mid} [{low}, {high}]"
    return text if metric == "eval_success_rate" else f"{METRICS[metric]} {text}"


def values_text(metric: str, values: Any) -> str:
    return " / ".join(metric_text(metric, v) for v in values)


def common_curve(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IQM and band of the study's metric over the steps every seed evaluated: (steps (T,), iqm, low, high)."""
    x = [r["curve_columns"][step_column(r["curve_columns"])] for r in records]
    steps = sorted(set.intersection(*(set(xs.astype(int).tolist()) for xs in x)))
    table = np.stack([r["curve_columns"][metric_of(r)][np.searchsorted(xs, steps)]
                      for r, xs in zip(records, x)])  # (seeds, T)
    low, high = stratified_bootstrap_ci([table], iqm, REPS, CONFIDENCE, BOOT_SEED)
    return np.array(steps), iqm(table), low, high


def plot_study(runs: dict[str, list[dict[str, Any]]], title: str, x_label: str, wall: bool = True) -> bytes:
    """Success (or return) against steps (IQM over seeds, band = 95 % bootstrap CI) and, per seed, against wall
    clock."""
    metric = metric_of(next(iter(runs.values()))[0])
    fig, axes = plt.subplots(1, 2 if wall else 1, figsize=(10 if wall else 5.2, 3.6), layout="constrained",
                             squeeze=False)
    axes = axes[0]
    for name, records in runs.items():
        steps, mid, low, high = common_curve(records)
        line, = axes[0].plot(steps, mid, marker="." if len(steps) < 30 else None,
                             label=f"{name} ({len(records)} seed{'s' * (len(records) > 1)})")
        axes[0].fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        if wall:
            for record in records:
                c = record["curve_columns"]
                axes[1].plot(c["wall_time_s"], c[metric], color=line.get_color(), alpha=0.8, lw=1)
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    axes[0].set_xlabel(x_label)
    name = f"eval {METRICS[metric]}" if metric.startswith("eval_") else METRICS[metric]
    axes[0].set_ylabel(f"{name} (IQM over seeds)")
    if wall:
        axes[1].set_xlabel("wall clock (s)")
        axes[1].set_ylabel(f"{name} (each seed)")
    for ax in axes:
        if metric == "eval_success_rate":
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=8,
               ncols=min(3 if wall or len(runs) <= 6 else 2, len(runs)))
    fig.suptitle(textwrap.fill(textwrap.shorten(title, 120), 90 if wall else 50), fontsize=11)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, metadata=PNG_META)
    plt.close(fig)
    return out.getvalue()


def machines_text(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in records:
        m, v = r["machine"], r["versions"]
        key = (f"{m['cpu']}, {m['cores']} cores" + (f", {m['gpu']}" if m.get("gpu") else "")
               + f"; torch {v.get('torch')}, mujoco {v.get('mujoco')}, crlab {v.get('crlab')}")
        seen.setdefault(key, []).append(f"{r['run']}.seed{r['seed']}")
    return [f"- {key}: {', '.join(names)}" for key, names in seen.items()]


def study_of(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The study as the records that know most of its runs saw it, the newest of them: the title, description and
    references a page shows (a study file that gained a run describes it; records of the older file go on being
    made). Every number still comes from each run's own records."""
    def knows(record: dict[str, Any]) -> tuple[int, str]:
        declared = (record["study"].get("file") or {}).get("runs") or {}
        return len(declared.keys() & runs.keys()), record.get("finished") or ""

    return max((r for records in runs.values() for r in records), key=knows)["study"]


def study_page(name: str, runs: dict[str, list[dict[str, Any]]]) -> tuple[str, bytes]:
    first = next(iter(runs.values()))[0]
    study, budget = study_of(runs), first["budget"]
    x_label, metric = steps_label(name, first), metric_of(first)
    head = ["run", "agent", "what it is", "seeds", f"final {METRICS[metric]}, IQM [95 % CI]", "per seed",
            "best evaluation, per seed", f"{x_label} at the end", "wall clock (s)"]
    lines = [f"# {study['title']}", "", textwrap.fill(study["description"], 120), "",
             f"Budget per run: {budget_text(budget, x_label)}. Final = the last evaluation of each run; best = its highest "
             "evaluation (the statistic some papers report; it favours noisy curves). IQM = interquartile "
             "mean over seeds (the mean below 4 seeds); CI = 95 % percentile interval of a stratified bootstrap over "
             f"seeds ({REPS:,} resamples).", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    all_records = [r for records in runs.values() for r in records]
    for run, records in runs.items():
        stat = final_stat(records)
        ends = [int(r["curve_columns"][step_column(r["curve_columns"])][-1]) for r in records]
        walls = [float(r["curve_columns"]["wall_time_s"][-1]) for r in records]
        lines.append("| " + " | ".join([
            f"`{run}`", f"`{records[0]['agent']}`", records[0]["note"].replace("|", "/"), ", ".join(str(r["seed"]) for r in records),
            success_text(stat), values_text(metric, stat["finals"]),
            values_text(metric, [max(r["curve_columns"][metric]) for r in records]),
            " / ".join(f"{e:,}" for e in ends), " / ".join(f"{w:.0f}" for w in walls)]) + " |")
    lines += grid_table(name, study, runs)
    lines += target_table(name, study, runs, x_label)
    if study.get("references"):
        lines += ["", "Published or target numbers beside it:", ""]
        lines += [f"- {ref['label']}: **{ref['value']}** ({ref['source']})" for ref in study["references"]]
    lines += ["", f"![{name}]({name}.png)", "", "## Records", "",
              f"Each run's config, versions, machine and curve: [`records/{name}/`](records/{name}/). "
              f"Re-run one with `python -m scripts.bench rerun docs/benchmarks/records/{name}/RUN.seedN.json`; "
              f"the whole study with `python -m scripts.bench run {name}`.", "", "Machines and versions:", ""]
    lines += machines_text(all_records)
    beside = sorted({r["beside"] for r in all_records if r.get("beside")})
    if beside:
        lines += ["", "What else ran meanwhile: " + "; ".join(beside) + "."]
    png = plot_study(runs, study["title"], x_label, wall=budget.get("kind") == "time_limit_s")
    return "\n".join(lines) + "\n", png


def study_key(name: str, study: dict[str, Any], key: str) -> Any:
    """A key of the records' study file, or of the study file in the repository when the records predate the key (a
    page's layout; every number still comes from the records)."""
    value = study["file"].get(key)
    if value is None and (STUDIES / f"{name}.yaml").is_file():
        value = load_study(name).raw.get(key)
    return value


def steps_label(name: str, record: dict[str, Any]) -> str:
    """What a study's pages call its steps: the study's `x_label`, else the label its records were made with."""
    return study_key(name, record["study"], "x_label") or record["budget"].get("x_label", "env steps")


def budget_text(budget: dict[str, Any], x_label: str) -> str:
    """A record's budget in words, its steps called `x_label` ("12,500 agent steps")."""
    return Budget(budget["kind"], budget["amount"]).text(x_label) if budget.get("kind") else budget.get("text", "")


def first_at(curve: dict[str, Any], target: float) -> tuple[float, int] | None:
    """(wall clock, steps) of a curve's first evaluation with success >= target; None if it never gets there."""
    hits = np.flatnonzero(curve["eval_success_rate"] >= target)
    if not len(hits):
        return None
    return float(curve["wall_time_s"][hits[0]]), int(curve[step_column(curve)][hits[0]])


def target_table(name: str, study: dict[str, Any], runs: dict[str, list[dict[str, Any]]], x_label: str) -> list[str]:
    """With the study's `target`: each seed's wall clock and steps to its first evaluation at or above it."""
    target = study_key(name, study, "target")
    if target is None:
        return []
    lines = ["", f"Time to the target: each seed's first evaluation with success >= {target:.2f} (never: not reached).",
             "", f"| run | seeds | wall clock (s) | {x_label} |", "| --- | --- | --- | --- |"]
    for run, records in runs.items():
        hits = [first_at(r["curve_columns"], target) for r in records]
        lines.append(f"| `{run}` | {', '.join(str(r['seed']) for r in records)} | "
                     + " / ".join("never" if h is None else f"{h[0]:.0f}" for h in hits) + " | "
                     + " / ".join("never" if h is None else f"{h[1]:,}" for h in hits) + " |")
    return lines


def grid_table(name: str, study: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The study's `grid` (scripts/bench/study.py check_grid) as a table of final success, IQM and per seed, with the
    published value beside each cell. The layout comes from the records' study file, or from the study file in the
    repository when the records predate their study's grid: every number still comes from the records."""
    grid = study_key(name, study, "grid")
    if not grid:
        return []
    published = any(row.get("published") for row in grid["rows"])
    head = [""] + [c for column in grid["columns"] for c in ([column, f"{column}, published"] if published else [column])]
    lines = ["", "At a glance (final success, IQM over seeds, then per seed):", "", "| " + " | ".join(head) + " |",
             "|" + " --- |" * len(head)]
    for row in grid["rows"]:
        cells = [row["label"]]
        for run, value in zip(row["runs"], row.get("published") or [""] * len(row["runs"])):
            records = runs.get(run) if run else None
            if records:
                stat = final_stat(records)
                cells.append(f"{stat['iqm']:.2f} ({' / '.join(f'{v:.2f}' for v in stat['finals'])})")
            else:
                cells.append("not run" if run else "")
            if published:
                cells.append(value or "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def headline_rows(studies: dict[str, dict[str, list[dict[str, Any]]]]) -> list[tuple[str, dict[str, Any]]]:
    """(study name, its headline: label, run, baseline) for each study that names one and has its run's records."""
    rows = []
    for name, runs in studies.items():
        headline = study_of(runs).get("headline")
        if (not headline or "baseline" not in headline) and (STUDIES / f"{name}.yaml").is_file():
            current = load_study(name).headline or {}  # records older than the study's headline or its baseline key
            headline = {**headline, "baseline": current.get("baseline")} if headline else current
        if headline and headline["run"] in runs:
            rows.append((name, {"label": name, **headline}))
    return rows


def headline_block(studies: dict[str, dict[str, list[dict[str, Any]]]]) -> tuple[str, bytes | None]:
    rows = headline_rows(studies)
    lines = [BEGIN, "", "| task, budget | run | final success, IQM [95 % CI] | baseline beside it | its final success | "
             "seeds (run / baseline) | details |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, headline in rows:
        stat, base = final_stat(studies[name][headline["run"]]), headline.get("baseline")
        base_stat = final_stat(studies[name][base]) if base in studies[name] else None
        base_cells = (f"`{base}` | {success_text(base_stat)} | {len(stat['finals'])} / {len(base_stat['finals'])}"
                      if base_stat else f"{f'`{base}`' if base else '—'} | {'not run' if base else ''} | "
                      f"{len(stat['finals'])}")
        lines.append(f"| {headline['label']} | `{headline['run']}` | {success_text(stat)} | {base_cells} | "
                     f"[page](docs/benchmarks/{name}.md) |")
    png = None
    if rows:
        fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 2.8), layout="constrained", squeeze=False)
        for ax, (name, headline) in zip(axes[0], rows):
            for run, records in studies[name].items():
                steps, mid, low, high = common_curve(records)
                line, = ax.plot(steps, mid, label=run)
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
            ax.set_title(headline["label"], fontsize=9)
            ax.set_ylim(-0.03, 1.03)
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
            ax.set_xlabel(steps_label(name, next(iter(studies[name].values()))[0]), fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("eval success (IQM)")
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=90, metadata=PNG_META)
        plt.close(fig)
        png = out.getvalue()
        lines += ["", "![headline learning curves](docs/benchmarks/headline.png)"]
    lines += ["", END]
    return "\n".join(lines), png


MEASUREMENT_PAGES = {  # records/<folder>/*.json -> <folder>.md: (title, what the numbers are)
    "throughput": ("Throughput", "env steps / s, updates / s; and the text-game policies' returns"),
    "rewards": ("Reward modules", "preference accuracy, correlation with the true reward, RL on a learned reward"),
}


def measurement_page(records_root: Path, folder: str, title: str) -> str | None:
    """One section per record of `records/<folder>/`: its command, machine and numbers (tables where the numbers are
    rows, a figure where the benchmark drew one beside its record)."""
    paths = sorted((records_root / folder).glob("*.json"))
    if not paths:
        return None
    lines = [f"# {title}", "", f"Each section is one record (`records/{folder}/`): the command that made it, "
             "the machine, and its numbers as written.", ""]
    for path in paths:
        record = read_record(path)
        m = record["machine"]
        lines += [f"## {path.stem}", "", f"`{command_text(record['command'])}`", "",
                  f"{m['cpu']}, {m['cores']} cores" + (f", {m['gpu']}" if m.get("gpu") else "")
                  + f"; torch {record['versions'].get('torch')}"
                  + (f"; mujoco {record['versions']['mujoco']}" if "mujoco" in record["versions"] else "")
                  + f"; crlab {record['versions'].get('crlab')}"
                  + (f"; finished {record['finished'][:10]}" if record.get("finished") else "")
                  + (f"; beside it: {record['beside']}" if record.get("beside") else ""), ""]
        lines += result_tables(record["results"])
        if path.with_suffix(".png").exists():
            lines += [f"![{path.stem}](records/{folder}/{path.stem}.png)", ""]
    return "\n".join(lines)


def command_text(command: str) -> str:
    """A record's command as a page shows it: without `--beside` (the page says what ran beside it) and with paths
    into a checkout's records relative to the repository."""
    command = re.sub(r" --beside (?:'[^']*'|.*?)(?= --|$)", "", command)
    return re.sub(r"/\S*?/(docs/benchmarks/records/)", r"\1", command)


def result_tables(results: dict[str, Any]) -> list[str]:
    """Scalars as one `measurement | value` table; a list of dicts, or a dict of dicts, as a table of its own (results
    that are all dicts of numbers, one per agent or setting, as one table)."""
    if results and all(isinstance(v, dict) and not any(isinstance(x, (dict, list)) for x in v.values())
                       for v in results.values()):
        results = {"": results}
    scalars, tables = [], []
    for key, value in results.items():
        rows = (value if isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
                else [{"": k, **v} for k, v in value.items()] if isinstance(value, dict) and value
                and all(isinstance(v, dict) for v in value.values()) else None)
        if rows is None:
            scalars += flat_items(key, value)
            continue
        columns = list(dict.fromkeys(c for row in rows for c, v in flat_items("", row) if not isinstance(v, list)))
        cells = [dict(flat_items("", row)) for row in rows]
        tables += ([f"**{key}**", ""] if key else []) + ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        tables += ["| " + " | ".join(cell_text(c.get(col, "")) for col in columns) + " |" for c in cells]
        tables.append("")
    head = ["| measurement | value |", "| --- | --- |", *[f"| {k} | {cell_text(v)} |" for k, v in scalars], ""]
    return (head if scalars else []) + tables


def cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list) and len(value) > 8:
        return f"{len(value)} values, last {cell_text(value[-1])}"
    return str(value)


def flat_items(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in flat_items(f"{prefix}.{k}" if prefix else k, v)]
    return [(prefix, value)]


def generate(records_root: Path = RECORDS, readme_text: str | None = None) -> dict[str, bytes | str]:
    """Every generated file, relative to the pages folder (the README's text under the key 'README.md')."""
    studies = by_study(training_records(records_root))
    files: dict[str, bytes | str] = {}
    index = ["# Benchmarks", "", "Generated from the records in [`records/`](records/) by `python -m scripts.bench "
             "report`; a study is a file in `scripts/bench/studies/`, run with `python -m scripts.bench run STUDY`.", "",
             "| study | run | final success (or return), IQM [95 % CI] | seeds | budget |",
             "| --- | --- | --- | --- | --- |"]
    for name, runs in studies.items():
        page, png = study_page(name, runs)
        files[f"{name}.md"], files[f"{name}.png"] = page, png
        for run, records in runs.items():
            index.append(f"| [{study_of(runs)['title']}]({name}.md) | `{run}` | {success_text(final_stat(records))} | "
                         f"{len(records)} | {records[0]['budget'].get('text', '')} |")
    for folder, (title, what) in MEASUREMENT_PAGES.items():
        page = measurement_page(records_root, folder, title)
        if page:
            files[f"{folder}.md"] = page
            index += ["", f"{title} ({what}): [{folder}.md]({folder}.md)."]
    files["index.md"] = "\n".join(index) + "\n"
    block, png = headline_block(studies)
    if png is not None:
        files["headline.png"] = png
    if readme_text is not None:
        if BEGIN not in readme_text or END not in readme_text:
            raise ValueError(f"the README has no results block ({BEGIN} ... {END})")
        files["README.md"] = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, readme_text, flags=re.S)
    return files


def main(records_root: Path | None = None, out: Path | None = None, readme: Path | None = None,
         check: bool = False) -> int:
    if records_root is not None and records_root.resolve() != RECORDS.resolve() and (out is None or readme is None):
        raise ValueError(f"--records {records_root} without --out and --readme would rewrite {PAGES} and the README "
                         "from other records; give --out DIR --readme FILE too")
    records_root, out, readme = records_root or RECORDS, out or PAGES, readme or README
    if not any(records_root.glob("*/*.json")):
        raise ValueError(f"--records {records_root} holds no records (STUDY/RUN.seedN.json); nothing written")
    files = generate(records_root, readme.read_text() if readme.exists() else None)
    differ = []
    for rel, content in files.items():
        path = readme if rel == "README.md" else out / rel
        data = content.encode() if isinstance(content, str) else content
        if path.exists() and path.read_bytes() == data:
            continue
        differ.append(str(path))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    stale = [p for p in out.glob("*.md") if p.name not in files] + [p for p in out.glob("*.png") if p.name not in files]
    if check:
        if differ or stale:
            sys.stderr.write("generated pages differ from the records: " + ", ".join(differ + [str(p) for p in stale])
                             + "\n(run python -m scripts.bench report)\n")
            return 1
        print(f"{len(files)} generated files match the records")
        return 0
    for path in stale:
        path.unlink()
    print(f"{len(differ)} of {len(files)} generated files written" + (f", {len(stale)} stale removed" if stale else "")
          + f" ({out})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
