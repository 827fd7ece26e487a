"""A benchmark study: a YAML file in scripts/bench/studies/ that declares its runs, seeds, budget, the data it
prepares and the published numbers it is compared with. The runner (scripts/bench/runner.py) turns each
(run, seed) into a `scripts.train` config; nothing about a study lives in Python code.

    title: Push, 20 minutes of wall clock
    description: what the study asks, in one paragraph
    env: push                          # an env config (scripts/conf/env/); a run may name another
    budget: {time_limit_s: 1200}       # or {env_steps: N} or {gradient_steps: N} (offline agents)
    eval_every: 25000                  # env steps (gradient steps offline) between evaluations
    seeds: [0, 1, 2]
    overrides: [eval_episodes=50]      # scripts.train overrides for every run
    prepare:                           # optional, in order: datasets / policies the runs read
      data: {kind: make_dataset, overrides: [env=push, policy=noisy, episodes=1000]}
    runs:
      crl: {agent: crl, overrides: ["agent.dataset={{data}}"], note: what this row is}
    references:                        # published numbers shown beside the table
      - {label: "OGBench cube-single-noisy-v0, CRL", value: "38 ± 2 %", source: "Park et al. 2024, OGBench, Table 2"}
    headline: {run: crl, baseline: sb3_sac_her, label: Push (20 min)}   # optional: a row of the README's headline
                                                  # table (baseline: optional, the run shown beside it)
    metric: eval_return                # optional: what the pages report, eval_success_rate (default), eval_return
                                       # or peak_rss_mb (the run's peak resident memory so far, at each evaluation)
    target: 0.8                        # optional: a success rate; the page gives each seed's wall clock and steps to
                                       # its first evaluation at or above it
    x_label: agent steps               # optional: what the pages call the budget's steps (default: env steps, or
                                       # gradient steps offline), e.g. where an env repeats each action
    grid:                              # optional: runs as rows x columns on the page, published values beside
      columns: [navigate, stitch]
      rows: [{label: GCBC, runs: [gcbc_navigate, gcbc_stitch], published: ["9 ± 6 %", "23 ± 18 %"]}]

Placeholders in overrides: `{{seed}}`, `{{dir}}` (a prepare step's own folder), `{{NAME}}` (what prepare step
NAME made: a dataset file, or a run directory for kind `train`), `{{NAME.checkpoint}}` (that run's checkpoint:
its latest, or with `pick_success: 0.5` the evaluated one whose success is nearest 0.5, earliest on ties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STUDIES = Path(__file__).resolve().parent / "studies"
BUDGET_KEYS = ("time_limit_s", "env_steps", "gradient_steps")
PREPARE_KINDS = ("make_dataset", "make_preferences", "train")
PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
STUDY_KEYS = {"title", "description", "env", "budget", "eval_every", "seeds", "overrides", "prepare", "runs",
              "references", "headline", "metric", "grid", "target", "x_label"}
METRICS = {"eval_success_rate": "success", "eval_return": "return",   # metrics.csv column -> its name on pages
           "peak_rss_mb": "peak RSS (MB)"}
RUN_KEYS = {"agent", "env", "overrides", "budget", "eval_every", "note"}


class StudyError(ValueError):
    """A study file that cannot run: the message names the file, the key and the valid choices."""


@dataclass(frozen=True)
class Budget:
    """How long each run trains: one of wall-clock seconds, env steps or gradient steps."""

    kind: str
    amount: float

    @classmethod
    def parse(cls, raw: Any, where: str) -> "Budget":
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in BUDGET_KEYS:
            raise StudyError(f"{where}: budget {raw!r} must be one of {{{', '.join(k + ': N' for k in BUDGET_KEYS)}}}")
        kind, amount = next(iter(raw.items()))
        if not isinstance(amount, (int, float)) or amount <= 0:
            raise StudyError(f"{where}: budget {kind}={amount!r} must be a positive number")
        return cls(kind, amount)

    def overrides(self, unit: str = "env_steps") -> list[str]:
        """scripts.train keys for this budget, for a run that counts `unit` (env_steps, or gradient_steps offline)."""
        total = "total_gradient_steps" if unit == "gradient_steps" else "total_env_steps"
        if self.kind == "time_limit_s":
            return [f"time_limit_s={self.amount}", f"{total}=1_000_000_000"]
        if self.kind != unit:
            raise ValueError(f"budget {self.kind}={self.amount} does not fit a run that counts {unit.replace('_', ' ')}")
        return [f"{total}={int(self.amount)}"]

    @property
    def x_label(self) -> str:
        return "gradient steps" if self.kind == "gradient_steps" else "env steps"

    def text(self, x_label: str | None = None) -> str:
        """The budget in words; `x_label` names the steps where a study calls them something else."""
        if self.kind == "time_limit_s":
            return f"{self.amount / 60:g} min of wall clock" if self.amount >= 60 else f"{self.amount:g} s of wall clock"
        return f"{int(self.amount):,} {x_label or self.x_label}"


@dataclass(frozen=True)
class PrepareStep:
    """Something the runs read, made before them: a dataset (scripts.make_dataset), segment preferences
    (scripts.make_preferences) or a trained policy (scripts.train). Made once per seed when it uses `{{seed}}`."""

    name: str
    kind: str
    overrides: tuple[str, ...]
    pick_success: float | None = None

    @property
    def per_seed(self) -> bool:
        return any("{{seed}}" in o.replace(" ", "") for o in self.overrides)


@dataclass(frozen=True)
class RunSpec:
    """One row of a study: an agent on an env with overrides, trained for every seed of the study."""

    name: str
    agent: str
    env: str
    overrides: tuple[str, ...]
    budget: Budget
    eval_every: int
    note: str = ""


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    title: str
    description: str
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    prepare: tuple[PrepareStep, ...]
    runs: dict[str, RunSpec]
    references: tuple[dict[str, str], ...] = ()
    headline: dict[str, str] | None = None
    metric: str = "eval_success_rate"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def steps_label(self, spec: RunSpec) -> str:
        """What this study calls a run's steps ("updates", "agent steps"): its `x_label`, else the budget's."""
        return self.raw.get("x_label") or spec.budget.x_label

    def selected(self, only: list[str] | None) -> list[RunSpec]:
        """The runs named by `only` (all without it); ValueError naming the runs there are."""
        unknown = sorted(set(only or ()) - set(self.runs))
        if unknown:
            raise ValueError(f"--only {', '.join(unknown)}: not a run of {self.name}; runs: {', '.join(self.runs)}")
        return [spec for spec in self.runs.values() if not only or spec.name in only]


def study_path(name_or_path: str | Path) -> Path:
    """A study's file from its name (`push` -> scripts/bench/studies/push.yaml) or its path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise StudyError(f"study file {path} does not exist")
        return path
    candidate = STUDIES / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise StudyError(f"unknown study {str(name_or_path)!r}; known: {', '.join(known_studies())}")
    return candidate


def known_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES.glob("*.yaml"))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StudyError(f"{where} must be a list of 'key=value' strings, got {value!r}")
    return tuple(value)


def _unknown(keys: Any, allowed: set[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise StudyError(f"{where}: unknown key(s) {', '.join(extra)}; valid: {', '.join(sorted(allowed))}")


def load_study(name_or_path: str | Path) -> Study:
    """Read and check a study file; StudyError (one line) on anything that would fail later."""
    path = study_path(name_or_path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError(f"{where}: not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: a study is a mapping of {', '.join(sorted(STUDY_KEYS))}")
    _unknown(raw, STUDY_KEYS, where)
    for key in ("title", "runs", "budget", "seeds"):
        if key not in raw:
            raise StudyError(f"{where}: missing key '{key}'")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise StudyError(f"{where}: seeds {seeds!r} must be a non-empty list of non-negative integers")
    budget = Budget.parse(raw["budget"], where)
    eval_every = raw.get("eval_every", 10_000)
    prepare = []
    for name, step in (raw.get("prepare") or {}).items():
        if not isinstance(step, dict) or step.get("kind") not in PREPARE_KINDS:
            raise StudyError(f"{where}: prepare.{name}.kind must be one of {', '.join(PREPARE_KINDS)}")
        _unknown(step, {"kind", "overrides", "pick_success"}, f"{where}: prepare.{name}")
        prepare.append(PrepareStep(name, step["kind"], _strings(step.get("overrides"), f"{where}: prepare.{name}.overrides"),
                                   step.get("pick_success")))
    if not isinstance(raw["runs"], dict) or not raw["runs"]:
        raise StudyError(f"{where}: runs must map run names to {{agent, env, overrides}}")
    runs = {}
    for name, spec in raw["runs"].items():
        spec = spec or {}
        _unknown(spec, RUN_KEYS, f"{where}: runs.{name}")
        if not re.fullmatch(r"[\w-]+", str(name)):
            raise StudyError(f"{where}: run name {name!r} may hold letters, digits, '_' and '-' only")
        if "agent" not in spec:
            raise StudyError(f"{where}: runs.{name} names no agent")
        env = spec.get("env", raw.get("env"))
        if env is None:
            raise StudyError(f"{where}: runs.{name} has no env (set env: for the study or the run)")
        runs[str(name)] = RunSpec(str(name), str(spec["agent"]), str(env),
                                  _strings(spec.get("overrides"), f"{where}: runs.{name}.overrides"),
                                  Budget.parse(spec["budget"], f"{where}: runs.{name}") if "budget" in spec else budget,
                                  int(spec.get("eval_every", eval_every)), str(spec.get("note", "")).strip())
    names = {step.name for step in prepare} | {"seed", "dir"}
    for text in [o for r in runs.values() for o in r.overrides] + [o for s in prepare for o in s.overrides]:
        for ref in PLACEHOLDER.findall(text):
            if ref.split(".")[0] not in names:
                raise StudyError(f"{where}: '{text}' refers to {{{{{ref}}}}}; known: {', '.join(sorted(names))}")
    check_grid(raw.get("grid"), runs, where)
    headline = raw.get("headline")
    if headline is not None and (not isinstance(headline, dict) or headline.get("run") not in runs):
        raise StudyError(f"{where}: headline.run must be one of {', '.join(runs)}")
    if headline is not None and headline.get("baseline", headline["run"]) not in runs:
        raise StudyError(f"{where}: headline.baseline '{headline['baseline']}' must be one of {', '.join(runs)}")
    metric = raw.get("metric", "eval_success_rate")
    if metric not in METRICS:
        raise StudyError(f"{where}: metric {metric!r} must be one of {', '.join(METRICS)}")
    if metric != "eval_success_rate" and any(raw.get(k) is not None for k in ("headline", "grid", "target")):
        raise StudyError(f"{where}: headline, grid and target are success rates; a study with metric {metric} has none")
    target = raw.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1):
        raise StudyError(f"{where}: target {target!r} must be a success rate in (0, 1]")
    x_label = raw.get("x_label")
    if x_label is not None and (not isinstance(x_label, str) or not x_label.strip()):
        raise StudyError(f"{where}: x_label {x_label!r} must be a non-empty string (what the budget's steps are called)")
    return Study(path.stem, path, str(raw["title"]), str(raw.get("description", "")).strip(), tuple(seeds),
                 _strings(raw.get("overrides"), f"{where}: overrides"), tuple(prepare), runs,
                 tuple(raw.get("references") or ()), headline, metric, raw)


def check_grid(grid: Any, runs: dict[str, RunSpec], where: str) -> None:
    """A study's `grid`: its runs laid out as rows x columns on its page (e.g. agents x datasets), each row with the
    published values beside it where a paper reports them:
        grid: {columns: [navigate, stitch],
               rows: [{label: GCBC, runs: [gcbc_navigate, gcbc_stitch], published: ["9 ± 6 %", "23 ± 18 %"]}, ...]}"""
    if grid is None:
        return
    columns = grid.get("columns") if isinstance(grid, dict) else None
    if not isinstance(columns, list) or not columns or not isinstance(grid.get("rows"), list):
        raise StudyError(f"{where}: grid needs columns (a list) and rows (a list of {{label, runs, published}})")
    _unknown(grid, {"columns", "rows"}, f"{where}: grid")
    for row in grid["rows"]:
        _unknown(row, {"label", "runs", "published"}, f"{where}: grid row")
        cells = row.get("runs")
        if not isinstance(cells, list) or len(cells) != len(columns) or any(c not in runs for c in cells if c):
            raise StudyError(f"{where}: grid row {row.get('label')!r}: runs must name {len(columns)} runs of the study "
                             f"(null for none), got {cells!r}")
        if len(row.get("published") or columns) != len(columns):
            raise StudyError(f"{where}: grid row {row.get('label')!r}: published must hold {len(columns)} values")


def fill(text: str, values: dict[str, str]) -> str:
    """Replace `{{name}}` placeholders by `values[name]`."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
