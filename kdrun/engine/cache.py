"""Sharing cross-entropy-trained models (teachers, baselines) between runs and sweep jobs.

A cache entry is ``<cache>/<key>/model.pt`` plus ``outcome.json``, which records the model file's
SHA-256 (the way pip and the HF hub verify what they download). An entry is written only for a
completed stage whose weights are all finite, and its hash is checked before every reuse: an entry
that is incomplete, altered, unreadable or non-finite is moved aside to ``<key>.bad-<time>`` with a
one-line warning and the stage trains again, so a bad entry never poisons or blocks later runs.

Jobs that need the same
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
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from kdrun.distributed.state import broadcast_object, is_main
from kdrun.engine.finite import first_non_finite, floating_tensors
from kdrun.io import atomic_path, write_json_atomic

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
        """The verified entry of ``key`` (model file, recorded outcome), or None; a bad entry is set aside."""
        return broadcast_object(self._read(key) if is_main() else None)

    def _read(self, key: str) -> tuple[Path, dict] | None:
        entry = self.entry(key)
        if not entry.exists():
            return None
        problem = entry_problem(entry)
        if problem is not None:
            self.set_aside(key, problem)
            return None
        return entry / "model.pt", json.loads((entry / "outcome.json").read_text())

    def set_aside(self, key: str, problem: str) -> None:
        """Move a bad entry out of the way (kept for inspection) so the stage trains again."""
        if not is_main():
            return
        entry = self.entry(key)
        aside = entry.with_name(f"{key}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            entry.rename(aside)
            where = f"moved to {aside}"
        except OSError:
            shutil.rmtree(entry, ignore_errors=True)
            where = "removed"
        log.warning("cache entry %s is not usable (%s); %s, training it again", entry, problem, where)

    def put(self, key: str, checkpoint: Path, outcome: dict) -> Path | None:
        """Publish a completed stage's weights; None (nothing cached) when they are not all finite."""
        entry = self.entry(key)
        if not is_main():
            return entry / "model.pt"
        problem = weights_problem(checkpoint) or outcome_problem(outcome)
        if problem is not None:
            log.warning("%s is not cached: %s", checkpoint, problem)
            return None
        entry.mkdir(parents=True, exist_ok=True)
        with atomic_path(entry / "model.pt", "a cached model") as tmp:
            shutil.copyfile(checkpoint, tmp)
        record = {**outcome, "sha256": sha256_of(entry / "model.pt")}
        write_json_atomic(entry / "outcome.json", record, "a cached model's record")  # last: the entry is complete
        return entry / "model.pt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_problem(entry: Path) -> str | None:
    """Why a cache entry cannot be trusted, or None when its model file matches its recorded hash."""
    model, record = entry / "model.pt", entry / "outcome.json"
    if not record.is_file() or not model.is_file():
        return "incomplete: a writer stopped before finishing it"
    try:
        outcome = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable outcome.json ({type(e).__name__})"
    expected = outcome.get("sha256") if isinstance(outcome, dict) else None
    if not expected:
        return "no recorded content hash (written by an older kdrun)"
    if sha256_of(model) != expected:
        return "model.pt does not match its recorded SHA-256 (altered or corrupt)"
    return outcome_problem(outcome) or weights_problem(model)


def outcome_problem(outcome: dict) -> str | None:
    numbers = [outcome.get("best_top1"), outcome.get("last_top1")]
    if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in numbers):
        return "its recorded accuracy is not a finite number"
    return None


def weights_problem(path: Path) -> str | None:
    """None when ``path`` loads safely (weights only) and every floating tensor in it is finite."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, a pickle with code, random bytes
        return f"cannot be loaded as weights ({type(e).__name__})"
    state = saved.get("model") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        return "holds no 'model' weights"
    bad = first_non_finite(floating_tensors(state))
    return None if bad is None else f"weight '{bad}' is not finite"
