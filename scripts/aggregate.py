"""Aggregate scores over seeds as in Agarwal et al. 2021 ("Deep RL at the Edge of the Statistical Precipice"):
the interquartile mean (IQM) and percentile confidence intervals from a stratified bootstrap.

Definitions follow the rliable library: the IQM is `scipy.stats.trim_mean(x, 0.25)` over all runs of all tasks,
and the stratified bootstrap resamples runs with replacement within each task, keeping each task's run count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

Statistic = Callable[[np.ndarray, int], np.ndarray]
_CHUNK_ELEMENTS = 4_000_000


def iqm(scores: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean along `axis`: the 25 % trimmed mean. scipy (and rliable) cut `int(0.25 * n)` runs from
    each end, so with fewer than 4 runs nothing is cut and the IQM is the mean."""
    return stats.trim_mean(np.asarray(scores, dtype=float), proportiontocut=0.25, axis=axis)


def stratified_bootstrap_ci(tasks: Sequence[np.ndarray], statistic: Statistic = iqm, reps: int = 10_000,
                            confidence: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of `statistic` over the pooled runs of all tasks; each resample draws every task's runs with
    replacement from that task only. `tasks[m]` has shape (runs_m, *rest), e.g. (seeds,) for final scores or
    (seeds, T) for curves; `statistic(x, axis)` reduces the runs axis. Returns (low, high), each of shape `rest`."""
    tasks = [np.asarray(task, dtype=float) for task in tasks]
    if not tasks or any(len(task) == 0 for task in tasks):
        raise ValueError("stratified_bootstrap_ci needs at least one run per task")
    rng = np.random.default_rng(seed)
    runs = sum(len(task) for task in tasks)
    chunk = max(1, _CHUNK_ELEMENTS // (runs * tasks[0][0].size))  # bounds memory for long curves
    estimates = []
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        pooled = np.concatenate([task[rng.integers(0, len(task), size=(n, len(task)))] for task in tasks], axis=1)
        estimates.append(statistic(pooled, 1))  # pooled: (n, runs, *rest) -> (n, *rest)
    estimates = np.concatenate(estimates)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    return low, high
