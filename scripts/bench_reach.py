"""Learning benchmark on crlab/Reach-v0: our CRL (`scripts.train`) against SB3 SAC + HER.

    python -m scripts.bench_reach [--time-limit 600] [--threshold 0.9] [--seed 0] [--out-dir DIR] [--out FILE]

Both are evaluated the same way (`scripts.evaluate.evaluate`: `--eval-episodes` deterministic episodes in one
vector env, success at each episode's final step) every `--eval-every` env steps, the evaluation time counted in
the wall clock. Reported: wall time and env steps to the first evaluation with success >= threshold, and the last
evaluation (no extra evaluation at the stop). SAC+HER stops at the threshold or the time limit; `scripts.train`
has no early stop, so CRL always runs to the time limit (its time-to-threshold is read from metrics.csv).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from stable_baselines3 import SAC, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback

from agents import resolve_device
from agents.base import TensorObs
from scripts.evaluate import evaluate
from scripts.run_log import METRIC_COLUMNS
from scripts.train import make_envs, train

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


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
    }


def read_metrics(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_crl(cfg: DictConfig, run_dir: Path) -> list[dict[str, float]]:
    """Train CRL with `scripts.train.train`; return its metrics.csv rows."""
    train(cfg, run_dir)
    return read_metrics(run_dir / "metrics.csv")


class SB3Actor:
    """Gives an SB3 model the `act(obs, deterministic)` face that `scripts.evaluate.evaluate` calls."""

    def __init__(self, model: SAC) -> None:
        self.model, self.device = model, torch.device("cpu")

    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        numpy_obs = {k: v.cpu().numpy() for k, v in obs.items()}
        return torch.as_tensor(self.model.predict(numpy_obs, deterministic=deterministic)[0])


class EvalAndStop(BaseCallback):
    """Evaluates every `eval_every` env steps (and at step 0); stops at success >= threshold or the time limit."""

    def __init__(self, eval_env: gymnasium.vector.VectorEnv, eval_every: int, threshold: float, time_limit_s: float,
                 seed: int, csv_path: Path) -> None:
        super().__init__()
        self.eval_env, self.eval_every, self.threshold = eval_env, eval_every, threshold
        self.time_limit_s, self.seed, self.csv_path = time_limit_s, seed, csv_path
        self.rows: list[dict[str, float]] = []

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.evaluate()

    def evaluate(self) -> float:
        row = {"env_steps": self.num_timesteps, **evaluate(SB3Actor(self.model), self.eval_env, seed=self.seed)}
        row["wall_time_s"] = time.perf_counter() - self.start
        self.rows.append(row)
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(METRIC_COLUMNS))
            writer.writeheader()
            writer.writerows(self.rows)
        return row["eval_success_rate"]

    def _on_step(self) -> bool:
        if self.num_timesteps % self.eval_every == 0 and self.evaluate() >= self.threshold:
            return False
        return time.perf_counter() - self.start < self.time_limit_s


def run_sac_her(cfg: DictConfig, args: argparse.Namespace, run_dir: Path) -> list[dict[str, float]]:
    """Train SB3 SAC + HER (FetchReach-style settings) on one sparse-reward env; return its evaluation rows."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = gymnasium.make(cfg.env.id, max_episode_steps=cfg.env.max_episode_steps)
    model = SAC(
        "MultiInputPolicy", env, seed=args.seed, device=str(resolve_device(args.device)),
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(goal_selection_strategy="future", n_sampled_goal=4),
        learning_rate=1e-3, buffer_size=1_000_000, learning_starts=1_000, batch_size=256,
        gamma=0.95, tau=0.05, ent_coef="auto", policy_kwargs=dict(net_arch=[256, 256]),
    )
    eval_env = make_envs(cfg, cfg.eval_episodes)
    callback = EvalAndStop(eval_env, args.eval_every, args.threshold, args.time_limit, cfg.seed + 10_000,
                           run_dir / "metrics.csv")
    model.learn(total_timesteps=args.max_env_steps, callback=callback)
    env.close()
    eval_env.close()
    return callback.rows


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
    parser.add_argument("--out", type=str, default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_reach_"))
    overrides = [f"seed={args.seed}", f"time_limit_s={args.time_limit}", f"eval_every={args.eval_every}",
                 f"eval_episodes={args.eval_episodes}", f"total_env_steps={args.max_env_steps}", f"device={args.device}",
                 "progress=false", "video_episodes=0", "env=reach", "agent=crl", *args.crl_override]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)

    results: dict[str, Any] = {}
    runners = {"crl": lambda: run_crl(cfg, out_dir / "crl"), "sac_her": lambda: run_sac_her(cfg, args, out_dir / "sac_her")}
    for name in args.methods:
        print(f"running {name} (up to {args.time_limit:.0f} s) ...", flush=True)
        results[name] = first_crossing(runners[name](), args.threshold)

    device = resolve_device(args.device)
    machine = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "torch_device": str(device), "torch_threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    pct = f"{args.threshold:.0%}"
    labels = {"time_to_threshold_s": f"time to {pct} (s)", "env_steps_to_threshold": f"env steps to {pct}",
              "final_success": "last eval success", "final_env_steps": "last eval env steps",
              "final_wall_time_s": "last eval time (s)"}
    names = {"crl": "CRL (ours)", "sac_her": "SAC+HER (SB3)"}
    print(f"\ncrlab/Reach-v0, seed {args.seed}, time limit {args.time_limit:.0f} s, {args.eval_episodes} eval episodes "
          f"every {args.eval_every} steps")
    print(f"machine: {machine['processor']}, {machine['cpu_count']} CPUs, torch device {device}"
          + (f" ({machine['gpu']})" if machine["gpu"] else ""))
    print(f"{'':<22}" + "".join(f"{names[m]:>16}" for m in results))
    for key, label in labels.items():
        cells = [fmt(results[m][key]) for m in results]
        print(f"{label:<22}" + "".join(f"{c:>16}" for c in cells))
    print(f"run directories: {out_dir}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": {**vars(args), "out_dir": str(out_dir)}, "machine": machine, "results": results},
                      f, indent=2, default=str)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
