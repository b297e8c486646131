"""One run folder, one process: an OS lock held for as long as a process uses a run folder.

Two ``kdrun`` processes in one folder (the same ``hydra.run.dir``, or one sweep started twice)
would resume from each other's checkpoints, duplicate epochs in ``metrics.jsonl`` and race on
every file. The lock is an ``flock`` on ``<run dir>/.kdrun.lock``: the kernel releases it when the
holder exits for any reason (kill -9 included), so a lock left by a dead process never blocks, and
the file names the holder's PID for the second process's error. Automatic run-folder names are
reserved with an exclusive ``mkdir`` (:func:`reserve_run_dir`), so they cannot collide either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from kdrun.errors import KdrunError, write_error
from kdrun.report.files import LOCK_FILE



class RunDirInUse(KdrunError):
    """Another live process holds the run folder."""


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike, key: str = "hydra.run.dir") -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; :class:`RunDirInUse` (one line, naming the holder's
    PID) when another process holds it."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_error(path, "the run folder's lock", e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirInUse(f"{key}={run_dir} is in use by another kdrun process (PID {holder}); wait for it "
                              f"to finish, or choose another {key}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def reserve_run_dir(run_dir: str | os.PathLike) -> Path:
    """Create ``run_dir``, or ``run_dir-2``, ``-3``, ... if it exists: an automatic name taken by
    another process starting in the same second is never shared (``mkdir`` is atomic)."""
    base = Path(run_dir)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(base.parent, "the run folder", e) from None
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as e:
            raise write_error(candidate, "the run folder", e) from None
    raise KdrunError(f"hydra.run.dir={base}: too many run folders with this name; set name=... or hydra.run.dir")
