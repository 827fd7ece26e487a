"""Records: what one benchmark run leaves in the repository, small text files that generated pages are made of.

A training run's record is `RECORDS/<study>/<run>.seed<N>.json` (the study's text, the resolved scripts.train
config, how its data was prepared, package versions, the machine, what else ran, wall clock, the final
evaluation) beside `<run>.seed<N>.csv` (its evaluation curve: metrics.csv as the run wrote it). A throughput
benchmark's record is one JSON under `RECORDS/throughput/`. Nothing else is needed to regenerate a page
(scripts/bench/pages.py) or to run it again (`python -m scripts.bench rerun RECORD`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from scripts.report import read_curve

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs" / "benchmarks" / "records"
PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "stable-baselines3", "gymnasium-robotics", "metaworld",
            "dm-control", "ogbench", "open-clip-torch")
RECORD_VERSION = 1


def versions() -> dict[str, str]:
    """Python, the packages a result depends on, and crlab's git commit (+dirty when the tree had changes)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["crlab"] = commit + ("+dirty" if dirty else "") if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        out["crlab"] = "unknown"
    return out


def machine(device: str | None = None) -> dict[str, Any]:
    """CPU model, cores, memory and the GPU (when the run used one)."""
    cpu = platform.processor() or platform.machine()
    memory_gb = None
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), cpu)
        meminfo = Path("/proc/meminfo").read_text().split()
        memory_gb = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    out: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_gb, "gpu": None}
    if device and device.startswith("cuda"):
        import torch

        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how busy the machine was (a 2-core machine at 2.0 was fully used)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def record_stem(study: str, run: str, seed: int, root: Path = RECORDS) -> Path:
    return root / study / f"{run}.seed{seed}"


def write_record(stem: Path, record: dict[str, Any], metrics_csv: Path | None = None) -> Path:
    """Write `stem`.json (and copy `metrics_csv` to `stem`.csv); temp files renamed into place. Returns the JSON."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if metrics_csv is not None:
        tmp = stem.with_name(stem.name + ".csv.tmp")
        shutil.copyfile(metrics_csv, tmp)
        os.replace(tmp, stem.with_name(stem.name + ".csv"))
        record = {**record, "curve": stem.name + ".csv"}
    path = stem.with_name(stem.name + ".json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"record_version": RECORD_VERSION, **record}, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_record(path: Path) -> dict[str, Any]:
    """A record's JSON, with its curve (if it has one) read into `record["curve_columns"]` as arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"record {path} does not exist")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"record {path} is not JSON: {err}") from None
    if not isinstance(record, dict) or record.get("record_version") != RECORD_VERSION:
        raise ValueError(f"record {path} has no record_version {RECORD_VERSION}: not a crlab benchmark record")
    if record.get("curve"):
        record["curve_columns"] = read_curve(path.parent / record["curve"])
    return record


def training_records(root: Path = RECORDS) -> list[dict[str, Any]]:
    """Every training run's record under `root` (sorted by study, run, seed), each with `path`."""
    records = []
    for path in sorted(root.glob("*/*.seed*.json")):
        record = read_record(path)
        record["path"] = path
        records.append(record)
    return sorted(records, key=lambda r: (r["study"]["name"], r["run"], r["seed"]))


def metric_of(record: dict[str, Any]) -> str:
    """The curve column a record's study reports: eval_success_rate unless its study file names another metric."""
    return (record["study"].get("file") or {}).get("metric", "eval_success_rate")


def metric_text(metric: str, value: float) -> str:
    """A metric's value as pages and logs print it: success to two decimals, a return to one, megabytes whole."""
    if metric == "peak_rss_mb":
        return f"{value:,.0f}"
    return f"{value:.2f}" if metric == "eval_success_rate" else f"{value:.1f}"
