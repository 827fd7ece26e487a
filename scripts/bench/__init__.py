"""Benchmarks: `python -m scripts.bench.NAME --help` (agents, envs, gpu, reach, rewards). Each drives the run
engine (scripts/engine.py) or a run of scripts.train, and prints its comparison in one call."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch


def machine_info(device: torch.device | None = None) -> dict[str, Any]:
    """What a benchmark ran on: processor, CPUs, torch threads, and the torch device / GPU when given."""
    info: dict[str, Any] = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    if device is not None:
        info["torch_device"] = str(device)
        info["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return info


def write_results(path: str | None, args: Any, out_dir: Path, machine: dict[str, Any], results: dict[str, Any]) -> None:
    """Print where the run directories are and, with `--out PATH`, write config, machine and numbers as JSON."""
    print(f"run directories: {out_dir}")
    if path:
        with open(path, "w") as f:
            json.dump({"config": {**vars(args), "out_dir": str(out_dir)}, "machine": machine, "results": results},
                      f, indent=2, default=str)
        print(f"wrote {path}")
