"""A `BatchedTask` whose copies live in worker processes, for suites whose step is mostly Python (MetaWorld).

Threads (envs/suite.py) parallelise only what releases the GIL (MuJoCo's `mj_step`); MetaWorld spends most of a
step in Python reward and observation code, so there the copies are split into contiguous chunks, one worker
process per core, each stepping its chunk with a plain loop. Unlike `AsyncVectorEnv` (a process per copy) a step
costs one message per worker, not per copy. Workers are fresh interpreters (`python -m envs.subprocess_task`
over a socket pair), not forks: a forked child of a process that has rendered through EGL inherits its GL state
and can hang, and unlike multiprocessing's `spawn` this never re-imports the user's main script, so a plain
script without an `if __name__ == "__main__"` guard works. A worker exits when its socket closes.

Copy i of the whole lives in worker w as local copy i - start_w and is seeded `seed + i`, so the copies match
the in-process task exactly. Pixel observations are made inside the workers (the factory builds the PixelTask),
so this task only forwards steps, observations, frames of whole copies and descriptions.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

import numpy as np

from envs.batched import BatchedTask, Obs


def _worker(conn: Connection) -> None:
    """A worker's life: build the task it is sent, then answer method calls until told to close."""
    try:
        make, num_copies, kwargs = conn.recv()
        task = make(num_copies, **kwargs)
        conn.send(("ok", (task.observation_space, task.action_space, task.metadata, hasattr(task, "compute_reward"))))
    except Exception as error:  # noqa: BLE001  (reported to the parent, which raises it)
        conn.send(("error", (error, traceback.format_exc())))
        return
    while True:
        try:
            method, args = conn.recv()
        except EOFError:  # the parent is gone
            task.close()
            return
        if method == "close":
            task.close()
            conn.send(("ok", None))
            return
        try:
            if method in ("step", "reset_copies"):  # the new observation comes back with it: one round trip
                conn.send(("ok", (getattr(task, method)(*args), task.observe())))
            else:
                conn.send(("ok", getattr(task, method)(*args)))
        except Exception as error:  # noqa: BLE001
            conn.send(("error", (error, traceback.format_exc())))


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


class SubprocessTask(BatchedTask):
    """`make(n, **kwargs)` (a picklable task factory such as `envs.pixels.make_task` bound to a task class) for
    `num_envs` copies, split over `workers` processes (default: one per core, at most one per copy)."""

    def __init__(self, make: Callable[..., BatchedTask], num_envs: int, workers: int | None = None,
                 **kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.rngs = []  # the workers' tasks draw all randomness
        workers = min(num_envs, workers or os.cpu_count() or 1)
        self.chunks = [c for c in np.array_split(np.arange(num_envs), workers) if len(c)]
        self.owner = np.concatenate([np.full(len(c), w) for w, c in enumerate(self.chunks)])
        self.conns, self.processes = [], []
        # one BLAS / OpenMP thread per worker: the workers already fill the cores, and idle BLAS threads spin
        threads = {k: os.environ.get(k, "1") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        environ = {**os.environ, **threads, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        for chunk in self.chunks:
            parent, child = socket.socketpair()
            process = subprocess.Popen([sys.executable, "-m", "envs.subprocess_task", str(child.fileno())],
                                       pass_fds=(child.fileno(),), env=environ)
            child.close()
            conn = Connection(parent.detach())
            conn.send((make, len(chunk), kwargs))
            self.conns.append(conn)
            self.processes.append(process)
        replies = [self._receive(c) for c in self.conns]
        self.observation_space, self.action_space, self.metadata, self._has_reward = replies[0]
        self._obs: list[Obs] = [None] * len(self.chunks)  # type: ignore[list-item]  # each worker's latest

    def _receive(self, conn: Any) -> Any:
        status, value = conn.recv()
        if status == "error":
            error, trace = value
            raise type(error)(f"{error} (in an env worker process:\n{trace})") from None
        return value

    def _call_all(self, method: str, args_per_worker: list[tuple]) -> list[Any]:
        for conn, args in zip(self.conns, args_per_worker):
            conn.send((method, args))
        return [self._receive(conn) for conn in self.conns]

    def _call_one(self, worker: int, method: str, *args: Any) -> Any:
        self.conns[worker].send((method, args))
        return self._receive(self.conns[worker])

    def _local(self, copy: int) -> tuple[int, int]:
        worker = int(self.owner[copy])
        return worker, int(copy - self.chunks[worker][0])

    # --- BatchedTask ---------------------------------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        self._call_all("seed", [(None if seed is None else seed + int(c[0]),) for c in self.chunks])

    def reset_copies(self, copies: np.ndarray) -> None:
        copies = np.asarray(copies)
        for w, chunk in enumerate(self.chunks):
            mine = copies[self.owner[copies] == w] - chunk[0]
            if len(mine):
                self.conns[w].send(("reset_copies", (mine,)))
        for w in range(len(self.chunks)):
            if np.any(self.owner[copies] == w):
                _, self._obs[w] = self._receive(self.conns[w])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions)  # checked at the env boundary, before any worker sees them
        replies = self._call_all("step", [(actions[c],) for c in self.chunks])
        parts, self._obs = [result for result, _ in replies], [obs for _, obs in replies]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                _concat([p[2] for p in parts]))

    def observe(self) -> Obs:
        """The copies' observations as of the last step / reset (the workers sent them along)."""
        if any(obs is None for obs in self._obs):
            self._obs = self._call_all("observe", [()] * len(self.chunks))
        return _concat(self._obs)

    def render(self, copy: int) -> np.ndarray:
        worker, local = self._local(copy)
        return self._call_one(worker, "render", local)

    def describe(self, copy: int) -> str:
        worker, local = self._local(copy)
        return self._call_one(worker, "describe", local)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """The task's goal reward, computed by the first worker."""
        if not self._has_reward:
            raise AttributeError("this task has no compute_reward (not a goal env)")
        return self._call_one(0, "compute_reward", achieved_goal, desired_goal, info)

    def close(self) -> None:
        for conn, process in zip(self.conns, self.processes):
            try:
                conn.send(("close", ()))
                conn.recv()
            except (OSError, EOFError):  # already gone
                pass
            conn.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self.conns, self.processes = [], []


if __name__ == "__main__":
    _worker(Connection(int(sys.argv[1])))
