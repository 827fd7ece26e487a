"""Benchmarks. Learning results are studies (scripts/bench/studies/*.yaml) run by `python -m scripts.bench run
STUDY`, each run leaving a record; the throughput benchmarks are modules of their own
(`python -m scripts.bench.NAME --help`: envs, gpu, ppo, reach, rewards, text) whose `--out FILE` writes a record
of the same kind (config, versions, machine, numbers). `python -m scripts.bench report` makes the pages of
docs/benchmarks/ from the records."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any


def machine_info(device: Any = None) -> dict[str, Any]:
    """What a benchmark ran on: processor, CPUs, torch threads, and the torch device / GPU when given."""
    import torch  # noqa: PLC0415 (keep `python -m scripts.bench report` free of torch)

    info: dict[str, Any] = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    if device is not None:
        info["torch_device"] = str(device)
        info["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return info


def add_record_args(parser: argparse.ArgumentParser, default_out: str | None = None) -> None:
    """--out FILE (a record: docs/benchmarks/records/throughput/NAME.json is where published ones live) and
    --beside TEXT (what else ran on the machine meanwhile)."""
    parser.add_argument("--out", type=str, default=default_out,
                        help="write a record (config, versions, machine, numbers) to this JSON file, e.g. "
                             "docs/benchmarks/records/throughput/NAME.json")
    parser.add_argument("--beside", default="", help="what else ran on the machine meanwhile (kept in the record)")


def command_line() -> str:
    """How this process was started, as `python -m scripts.bench.NAME ARGS` (quoted for a shell)."""
    script = Path(sys.argv[0]).with_suffix("").as_posix()
    module = "scripts." + script.split("scripts/", 1)[1].replace("/", ".") if "scripts/" in script else script
    args = [_repo_relative(a) for a in sys.argv[1:]]
    return " ".join(["python -m", module, shlex.join(args)]).rstrip()


def _repo_relative(arg: str) -> str:
    """docs/benchmarks/records/... for an absolute path into any checkout's records (a worktree writes main's)."""
    marker = "/docs/benchmarks/records/"
    return arg[arg.index(marker) + 1:] if arg.startswith("/") and marker in arg else arg


def write_results(path: str | os.PathLike | None, args: Any, out_dir: Path | None, machine: dict[str, Any],
                  results: Any, device: str | None = None) -> None:
    """Print where the run directories are and, with `--out PATH`, write the numbers as a throughput record."""
    from scripts.bench.record import load_average, now, versions, write_record  # noqa: PLC0415
    from scripts.bench.record import machine as machine_record

    if out_dir is not None:
        print(f"run directories: {out_dir}")
    if path:
        stem = Path(path).with_suffix("")
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        write_record(stem, {"kind": "throughput", "command": command_line(),
                            "config": config, "versions": versions(), "machine": {**machine_record(device), **machine},
                            "load_average": load_average(), "beside": getattr(args, "beside", ""), "finished": now(),
                            "results": results})
        print(f"wrote {stem.with_suffix('.json')}")
