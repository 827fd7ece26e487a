"""Child processes and GL. A process forked from one that holds an EGL (or OSMesa) context inherits the driver's
half-held locks and blocks for good the first time it renders; gymnasium's AsyncVectorEnv forks by default on
Linux. `before_gl_context()` runs before crlab makes a GL context (envs/mujoco_batch.new_renderer):

- the first time in a process, it makes multiprocessing's default start method "forkserver" (Python 3.14's default):
  later children start from a clean server process that never touched GL. A start method that is already "fork" is
  switched too, with a warning: the program may have chosen it, but more often an async env made before anything
  rendered fixed it (multiprocessing fixes its default on first use), and after this point a forked child that
  renders would block. "spawn" and "forkserver" are kept.
- in a forked child of a process that made one (an explicit `context="fork"`), it raises at once, naming the fix,
  instead of letting the render block.

With "forkserver" (and "spawn") every worker imports the main script again before it starts; a script that makes
envs at its top level, without `if __name__ == "__main__":`, would run in every worker before the worker serves its
parent. `check_not_importing_main()` (called when a crlab env is made) raises there instead, as Python does for a
process started during that import.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings

SAFE_START_METHOD = "forkserver"
_gl_owner_pid: int | None = None  # the process that made crlab's first GL context; a forked child inherits the value


def check_not_importing_main() -> None:
    """Refuse to make an env while a worker process imports an unguarded main script again."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # the flag Python's own check reads
        raise RuntimeError(
            "a crlab env was made while this worker process imports the main script again (start method "
            f"{multiprocessing.get_start_method()!r}): make envs under `if __name__ == \"__main__\":` in that script")


def before_gl_context() -> None:
    """Call before making a GL context: refuses in a forked child of a process that holds one (it would block); the
    first time, makes later children start clean (see the module's docstring)."""
    global _gl_owner_pid
    if _gl_owner_pid is not None and _gl_owner_pid != os.getpid():
        raise RuntimeError(
            "this process was forked from one that renders with GL, and rendering here would block for good; start "
            "worker processes with 'forkserver' or 'spawn': multiprocessing.set_start_method('forkserver') at the top "
            "of the main script, or make_vec(..., vectorization_mode='async', vector_kwargs={'context': 'forkserver'})")
    if _gl_owner_pid is None:
        method = multiprocessing.get_start_method(allow_none=True)
        if method in (None, "fork"):
            multiprocessing.set_start_method(SAFE_START_METHOD, force=True)
        if method == "fork":
            warnings.warn("multiprocessing's start method was 'fork'; this process now renders with GL, where a forked "
                          f"child would block on its first frame, so crlab made it {SAFE_START_METHOD!r}. Workers started "
                          "from now on import the main script again: keep its top level under "
                          "`if __name__ == \"__main__\":`", RuntimeWarning, stacklevel=3)
    _gl_owner_pid = os.getpid()
