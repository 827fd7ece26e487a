"""Forked children and GL: once this process holds an EGL (or OSMesa) context, a child made by `fork` inherits the
driver's half-held locks and hangs the first time it renders (gymnasium's AsyncVectorEnv forks by default on
Linux, so `make_vec(..., vectorization_mode="async")` after any `render()` froze with no error).

`before_first_gl_context()` is called where crlab creates a GL context (envs/mujoco_batch.new_renderer, the dm_control
tasks' first render). If the program has not chosen a multiprocessing start method, it chooses "forkserver" (the
default from Python 3.14 on): children then start from a clean server process that never touched GL. A start method
the program set itself is left alone (with "fork", async envs that render will hang, as before).
"""

from __future__ import annotations

import multiprocessing

SAFE_START_METHOD = "forkserver"


def before_first_gl_context() -> None:
    """Make multiprocessing's default start method fork-safe for GL, unless the program already picked one."""
    if multiprocessing.get_start_method(allow_none=True) is None:
        multiprocessing.set_start_method(SAFE_START_METHOD)
