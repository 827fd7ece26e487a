"""Atomic file writes for everything crlab saves (checkpoints, rollouts, reward models): a temp file in the target's
folder, flushed to disk, given the user's normal permissions, then renamed onto the target, so a reader (or a
resumed run after kill -9) never sees a half-written file and nothing already there is lost on failure."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

TMP_MARK = ".tmp"  # in every temp file's name: `.NAME.RANDOM.tmp.SUFFIX`


def default_file_mode() -> int:
    """0o666 minus the process umask: the mode `open()` gives a new file (mkstemp's own is 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` to fill a temp file beside `path`, then fsync, chmod and rename it onto `path`.
    The temp name ends in the target's suffix (numpy's savez appends `.npz` to any other name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_MARK + path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """`atomic_write` of a bytes payload."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
