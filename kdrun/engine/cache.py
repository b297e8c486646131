"""Sharing cross-entropy-trained models (teachers, baselines) between runs and sweep jobs.

A cache entry is ``<cache>/<key>/model.pt`` plus ``outcome.json``. Jobs that need the same
entry serialize on ``<cache>/<key>.lock`` (an OS file lock, released even if the holder dies):
the first trains and publishes, the others wait and reuse.

In a data-parallel run only rank 0 takes the lock and looks into the cache; the other ranks
follow its answer (:func:`kdrun.distributed.state.broadcast_object`). They cannot queue on the
lock themselves: the holder trains *with* them, so they would wait for a training that needs
them. The lock is an ``flock``: on a cluster, keep ``paths.cache`` on a filesystem that supports
it across nodes (NFSv4, Lustre mounted with ``flock``, GPFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from kdrun.distributed.state import broadcast_object, is_main
from kdrun.io import write_json_atomic

log = logging.getLogger("kdrun")


class StageCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        if not is_main():
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for %s: another job is training it", key)
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def get(self, key: str) -> tuple[Path, dict] | None:
        return broadcast_object(self._read(key) if is_main() else None)

    def _read(self, key: str) -> tuple[Path, dict] | None:
        entry = self.entry(key)
        if (entry / "outcome.json").is_file() and (entry / "model.pt").is_file():
            return entry / "model.pt", json.loads((entry / "outcome.json").read_text())
        return None

    def put(self, key: str, checkpoint: Path, outcome: dict) -> Path:
        entry = self.entry(key)
        if not is_main():
            return entry / "model.pt"
        entry.mkdir(parents=True, exist_ok=True)
        tmp = entry / ".model.pt.tmp"
        shutil.copyfile(checkpoint, tmp)
        tmp.replace(entry / "model.pt")
        write_json_atomic(entry / "outcome.json", outcome)  # written last: marks the entry complete
        return entry / "model.pt"
