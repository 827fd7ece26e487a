"""Learning benchmark on crlab/Reach-v0: our CRL (`scripts.train`) against SB3 SAC + HER.

    python -m scripts.bench.reach [--time-limit 600] [--threshold 0.9] [--seed 0] [--out-dir DIR] [--out FILE]

Both are evaluated the same way (`scripts.evaluate.evaluate`: `--eval-episodes` deterministic episodes in one
vector env, success at each episode's final step) every `--eval-every` env steps, the evaluation time counted in
the wall clock. Reported: wall time and env steps to the first evaluation with success >= threshold, and the last
evaluation. Both are runs of `scripts.train` (`agent=crl`, and `agent=sb3_sac env.num_envs=1`, HER on) to the time
limit; the time to the threshold is read from metrics.csv.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from agents import resolve_device
from scripts.bench import add_record_args, machine_info, write_results
from scripts.engine import train
from scripts.report import read_rows
from scripts.run_setup import compose_config


def first_crossing(rows: list[dict[str, float]], threshold: float) -> dict[str, float | None]:
    """Time/steps to the first row with success >= threshold (None if never), and the last row's numbers."""
    hit = next((r for r in rows if r["eval_success_rate"] >= threshold), None)
    last = rows[-1]
    return {
        "time_to_threshold_s": None if hit is None else hit["wall_time_s"],
        "env_steps_to_threshold": None if hit is None else int(hit["env_steps"]),
        "final_success": last["eval_success_rate"],
        "final_env_steps": int(last["env_steps"]),
        "final_wall_time_s": last["wall_time_s"],
        "peak_rss_mb": last.get("peak_rss_mb", float("nan")),
    }


def run_agent(cfg: DictConfig, run_dir: Path) -> list[dict[str, float]]:
    """Train with `scripts.train`'s engine; return the run's metrics.csv rows."""
    train(cfg, run_dir)
    return read_rows(run_dir / "metrics.csv")


def fmt(value: float | int | None) -> str:
    """`never` for a threshold not reached; thousands separators for steps; 2 decimals otherwise."""
    if value is None:
        return "never"
    return f"{value:,}" if isinstance(value, int) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", type=float, default=600.0, help="wall-clock seconds per method")
    parser.add_argument("--threshold", type=float, default=0.9, help="evaluation success rate to reach")
    parser.add_argument("--seed", type=int, default=0, help="seed for both methods")
    parser.add_argument("--eval-every", type=int, default=5_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=50, help="episodes per evaluation")
    parser.add_argument("--max-env-steps", type=int, default=1_000_000, help="env-step cap per method")
    parser.add_argument("--device", default="auto", help="torch device for both (auto: CUDA if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both (default: torch's)")
    parser.add_argument("--methods", nargs="+", default=["crl", "sac_her"], choices=["crl", "sac_her"])
    parser.add_argument("--crl-override", action="append", default=[], help="extra Hydra override for CRL (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=None, help="run directories go here (default: a temp dir)")
    add_record_args(parser)
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_reach_"))
    overrides = [f"seed={args.seed}", f"time_limit_s={args.time_limit}", f"eval_every={args.eval_every}",
                 f"eval_episodes={args.eval_episodes}", f"total_env_steps={args.max_env_steps}", f"device={args.device}",
                 "progress=false", "video_episodes=0", "env=reach"]
    cfg = compose_config("train", [*overrides, "agent=crl", *args.crl_override])

    results: dict[str, Any] = {}
    # SB3 SAC + HER with FetchReach-style settings (conf/agent/sb3_sac.yaml) on one env copy, as the HER papers
    sac = compose_config("train", [*overrides, "agent=sb3_sac", "env.num_envs=1"])
    runners = {"crl": lambda: run_agent(cfg, out_dir / "crl"), "sac_her": lambda: run_agent(sac, out_dir / "sac_her")}
    for name in args.methods:
        print(f"running {name} (up to {args.time_limit:.0f} s) ...", flush=True)
        results[name] = first_crossing(runners[name](), args.threshold)

    device = resolve_device(args.device)
    machine = machine_info(device)
    pct = f"{args.threshold:.0%}"
    labels = {"time_to_threshold_s": f"time to {pct} (s)", "env_steps_to_threshold": f"env steps to {pct}",
              "final_success": "last eval success", "final_env_steps": "last eval env steps",
              "final_wall_time_s": "last eval time (s)", "peak_rss_mb": "peak RSS (MB)"}
    names = {"crl": "CRL (ours)", "sac_her": "SAC+HER (SB3)"}
    print(f"\ncrlab/Reach-v0, seed {args.seed}, time limit {args.time_limit:.0f} s, {args.eval_episodes} eval episodes "
          f"every {args.eval_every} steps")
    print(f"machine: {machine['processor']}, {machine['cpu_count']} CPUs, torch device {device}"
          + (f" ({machine['gpu']})" if machine["gpu"] else ""))
    print(f"{'':<22}" + "".join(f"{names[m]:>16}" for m in results))
    for key, label in labels.items():
        cells = [fmt(results[m][key]) for m in results]
        print(f"{label:<22}" + "".join(f"{c:>16}" for c in cells))
    write_results(args.out, args, out_dir, machine, results, device=str(device))


if __name__ == "__main__":
    main()
