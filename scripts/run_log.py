"""Everything a run leaves in its directory: metrics.csv, TensorBoard events, checkpoints/."""

from __future__ import annotations

import csv
import resource
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from agents.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from envs.atomic_file import TMP_MARK

METRIC_COLUMNS = ("wall_time_s", "eval_success_rate", "eval_return", "peak_rss_mb")  # after the step column
LATEST = "latest.pt"


def peak_memory_mb() -> dict[str, float]:
    """This process's peak resident memory so far (MB), and its peak CUDA memory allocated when CUDA is in use."""
    peaks = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: ru_maxrss in KB
    if torch.cuda.is_initialized():
        peaks["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peaks


class RunLog:
    """Writes evaluation rows to `metrics.csv` (flushed per row) and scalars to TensorBoard. Its first column is
    the run's step count: `env_steps` online, `gradient_steps` offline."""

    def __init__(self, run_dir: Path, resume_from_step: int | None = None, extra_columns: tuple[str, ...] = (),
                 step_column: str = "env_steps") -> None:
        self.run_dir = run_dir
        self.csv_path = run_dir / "metrics.csv"
        self.step_column = step_column
        self.columns = [step_column, *METRIC_COLUMNS, *extra_columns]  # e.g. eval_proxy_return with a reward module
        self.last_eval_step: int | None = None  # of the rows kept on resume: a finished run is not evaluated again
        if resume_from_step is not None and self.csv_path.exists():
            self._truncate_after(resume_from_step)
        new_file = not self.csv_path.exists()
        self._file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if new_file:
            self._csv.writeheader()
            self._file.flush()
        self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from: they will be produced again. The kept rows are
        written to a temporary file that then replaces metrics.csv, so a crash here loses nothing."""
        with open(self.csv_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r[self.step_column]) <= step]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.csv_path)
        self.last_eval_step = int(rows[-1][self.step_column]) if rows else None

    def eval_row(self, row: dict[str, float]) -> None:
        self._csv.writerow(row)
        self._file.flush()
        for key, value in row.items():
            if key != self.step_column:
                self.tb.add_scalar(f"eval/{key}", value, row[self.step_column])

    def train_scalars(self, metrics: dict[str, float], env_steps: int) -> None:
        for key, value in metrics.items():
            self.tb.add_scalar(f"train/{key}", value, env_steps)

    def close(self) -> None:
        self._file.close()
        self.tb.close()


def write_checkpoint(run_dir: Path, agent: Any, env_steps: int, wall_time_s: float, config_yaml: str, keep: int = 3) -> Path:
    """Atomically write checkpoints/step_<N>.pt and checkpoints/latest.pt (same content); keep the newest `keep`
    step files."""
    state = {"agent": agent.state_dict(), "env_steps": env_steps, "wall_time_s": wall_time_s, "config": config_yaml,
             "torch_rng": torch.get_rng_state()}
    path = run_dir / "checkpoints" / f"step_{env_steps}.pt"
    save_checkpoint(path, state)
    save_checkpoint(run_dir / "checkpoints" / LATEST, state)
    steps = sorted(path.parent.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    for old in steps[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Load `run_dir/checkpoints/latest.pt`; if it is missing or corrupt, the newest intact step_<N>.pt, with a
    warning naming the unusable file(s). Temp files of checkpoint writes that a kill interrupted are removed first.
    CheckpointError (naming the folder) when no checkpoint is usable."""
    folder = run_dir / "checkpoints"
    for stale in folder.glob(f".*{TMP_MARK}*"):  # a killed write's leftovers: never renamed into place
        stale.unlink(missing_ok=True)
    candidates = [folder / LATEST, *sorted(folder.glob("step_*.pt"), key=lambda p: -int(p.stem.split("_")[1]))]
    unusable: list[str] = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            if path.exists():
                unusable.append(str(err))
            continue
        if unusable:
            warnings.warn(f"resuming from {path}: {'; '.join(unusable)}", stacklevel=2)
        return state
    raise CheckpointError(f"no usable checkpoint in {folder}" + (f" ({'; '.join(unusable)})" if unusable else ""))
