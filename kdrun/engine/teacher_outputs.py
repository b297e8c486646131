"""Teacher outputs computed once, replayed exactly (``distill.teacher_outputs``).

Every job of a T x alpha sweep that shares teacher, data, seed, augmentation, mix and transfer set
shows the teacher exactly the same inputs: kdrun's data order and augmentation are a pure function
of (seed, epoch, sample) (kdrun/data/loaders.py), and mixing draws from the generator the engine
reseeds every epoch. So the teacher's logits need computing once. The first job records them per
epoch; later jobs read them back instead of running the teacher. Unlike per-image cached soft
labels, which pair one teacher view with many student views (the pitfall of Beyer et al., CVPR
2022, sec. 4), a replayed step gives the student the logits of the very view it sees.

Layout: ``<cache>/teacher_outputs/<key>/epoch<e>.<fp32|fp16>``, one memory-mapped array of shape
(steps, batch, classes) per epoch: row ``(step, i)`` holds the logits of the i-th sample of that
step's distillation view, i.e. of one (epoch, sample, view) since the order within an epoch is a
pure function of the key. An epoch file appears (atomic rename) only once complete, so a killed
recorder leaves nothing half-written behind. ``meta.json`` keeps the key's parts for inspection.

Verified like the model cache (cache.py): the recorder writes ``epoch<e>.<precision>.json`` (the array's
SHA-256, shape and the logits' dtype) before the epoch file appears, and every use checks the file
against it first. A file that is truncated, altered, of another shape or without its record is moved
aside to ``epoch<e>.<precision>.bad-<time>-<pid>`` (its record beside it) with a one-line warning, and
the epoch's logits come from the teacher again (recorded again under ``replay``): a bad recording
never trains a student.

Jobs that run together: the recorder of an epoch holds ``<key>.lock`` (an OS file lock, as the
teacher cache in cache.py) while it records; a job that finds the lock taken computes that epoch
itself instead of waiting (a parallel sweep never queues behind one job).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kdrun.engine.cache import sha256_of
from kdrun.io import write_json_atomic

log = logging.getLogger("kdrun")
PRECISIONS = {"fp32": np.float32, "fp16": np.float16}


def weights_digest(model: nn.Module) -> str:
    """A hash of every parameter and buffer (name, shape, dtype, bytes): a retrained or corrected teacher
    is a different key."""
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class OutputStore:
    """The recorded epochs of one key: write one epoch under the lock, read any complete one."""

    def __init__(self, folder: Path, precision: str) -> None:
        self.folder, self.precision, self.dtype = folder, precision, PRECISIONS[precision]
        self._lock_file = None
        self._writing: np.memmap | None = None

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch{epoch:04d}.{self.precision}"

    def recorded(self, epoch: int) -> bool:
        return self.path(epoch).is_file()

    def record_path(self, epoch: int) -> Path:
        """The epoch's record: its SHA-256, shape and the dtype the teacher gave its logits in."""
        return self.path(epoch).with_name(self.path(epoch).name + ".json")

    def open(self, epoch: int, shape: tuple[int, ...]) -> tuple[np.memmap, torch.dtype] | None:
        """The epoch's verified array and the dtype of the teacher's logits (float32, or bf16 under AMP);
        None when the recording is not usable: it is then set aside (one warning) for the epoch to be
        computed again."""
        record, problem = self._checked_record(epoch, shape)
        if problem is None:
            return np.memmap(self.path(epoch), dtype=self.dtype, mode="r", shape=shape), record["dtype"]
        self._set_aside(epoch, problem)
        return None

    def _checked_record(self, epoch: int, shape: tuple[int, ...]) -> tuple[dict, str | None]:
        """The epoch's record (dtype resolved) and why its file cannot be trusted, or None when it can."""
        try:
            record = json.loads(self.record_path(epoch).read_text())
            dtype = getattr(torch, str(record["logits_dtype"]).removeprefix("torch."))
            expected_hash, recorded_shape = str(record["sha256"]), [int(n) for n in record["shape"]]
        except FileNotFoundError:
            return {}, "no record of its content hash (recorded by an older kdrun, or its record was removed)"
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            return {}, f"its record {self.record_path(epoch).name} is unreadable ({type(e).__name__})"
        if not isinstance(dtype, torch.dtype) or recorded_shape != list(shape):
            return {}, f"its record describes another array ({recorded_shape}, expected {list(shape)})"
        expected = math.prod(shape) * np.dtype(self.dtype).itemsize
        try:
            size = self.path(epoch).stat().st_size
            if size != expected:
                return {}, f"{size} bytes where {expected} were recorded (truncated or overwritten)"
            if sha256_of(self.path(epoch)) != expected_hash:
                return {}, "it does not match its recorded SHA-256 (altered or corrupt)"
        except OSError as e:
            return {}, f"it cannot be read ({e.strerror or type(e).__name__})"
        return {"dtype": dtype}, None

    def _set_aside(self, epoch: int, problem: str) -> None:
        """Move a bad recording (and its record) out of the way, kept for inspection."""
        stamp = f"bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        path, record = self.path(epoch), self.record_path(epoch)
        try:
            path.rename(path.with_name(f"{path.name}.{stamp}"))
            where = f"moved to {path.name}.{stamp}"
            if record.exists():
                record.rename(record.with_name(f"{record.name}.{stamp}"))
        except FileNotFoundError:  # another job set it aside first
            where = "set aside by another job"
        except OSError as e:  # a read-only cache: it stays, and every use checks it again
            where = f"left in place ({e.strerror or type(e).__name__})"
        log.warning("teacher outputs %s are not usable (%s); %s, the teacher computes epoch %d again",
                    path, problem, where, epoch)

    def try_record(self, epoch: int, shape: tuple[int, ...], meta: dict) -> bool:
        """Take the key's lock without waiting and start a temporary file for ``epoch``; False if busy."""
        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self.folder.with_suffix(".lock"), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        if self.recorded(epoch):  # another job finished it while we looked
            f.close()
            return False
        self._lock_file = f
        self._meta, self._shape = meta, shape
        self._writing = np.memmap(self._tmp(epoch), dtype=self.dtype, mode="w+", shape=shape)
        return True

    def write(self, step: int, logits: torch.Tensor) -> None:
        self._writing[step, : len(logits)] = logits.detach().to("cpu", torch.float32).numpy()

    def finish(self, epoch: int, logits_dtype: torch.dtype) -> None:
        self._writing.flush()
        self._writing = None
        write_json_atomic(self.folder / "meta.json", {**self._meta, "logits_dtype": str(logits_dtype)})
        record = {"sha256": sha256_of(self._tmp(epoch)), "shape": list(self._shape),
                  "logits_dtype": str(logits_dtype)}
        write_json_atomic(self.record_path(epoch), record, "a teacher-output record")  # before the epoch appears
        os.replace(self._tmp(epoch), self.path(epoch))  # the epoch exists only once complete
        self.release()

    def release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _tmp(self, epoch: int) -> Path:
        return self.folder / f".epoch{epoch:04d}.{self.precision}.{os.getpid()}.tmp"


class TeacherLogits:
    """Where a distillation task's teacher logits come from, epoch by epoch: the teacher, or a recording.

    ``mode``: ``compute`` always runs the teacher; ``auto`` replays every epoch already recorded and
    computes the others; ``replay`` also records the epochs not yet recorded (unless another job is
    recording them). ``key_parts`` describe everything but the teacher's weights, hashed at the first
    step (the teacher is trained by then). ``sources`` counts epochs by where their logits came from.
    """

    def __init__(self, teacher: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, root: str | Path,
                 key_parts: dict[str, Any], mode: str, precision: str) -> None:  # fmt: skip
        self.teacher, self.model, self.root = teacher, model, Path(root)
        self.key_parts, self.mode, self.precision = key_parts, mode, precision
        self.store: OutputStore | None = None
        self.sources: Counter = Counter()
        self._epoch, self._source, self._replay = 0, "compute", None
        self._dtype = torch.float32

    def key(self) -> str:
        parts = {**self.key_parts, "teacher": weights_digest(self.model), "precision": self.precision, "format": 1}
        return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def __call__(self, x: torch.Tensor, epoch: int, step: int, steps: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._start_epoch(x, epoch, steps)
        if self._source == "replay":
            rows = torch.from_numpy(np.array(self._replay[step, : len(x)]))
            return rows.to(device=x.device, dtype=self._dtype)
        logits = self.teacher(x)
        if self._source == "record":
            self.store.write(step, logits)
            if self.precision != "fp32":  # every job of the sweep then uses the same rounded values
                logits = logits.to(torch.float16).to(logits.dtype)
            if step == steps - 1:
                self.store.finish(epoch, logits.dtype)
        return logits

    def _start_epoch(self, x: torch.Tensor, epoch: int, steps: int) -> None:
        if self.store is None:
            self.store = OutputStore(self.root / self.key(), self.precision)
        self.store.release()  # an epoch left unfinished (interrupted) is recorded again later
        self._epoch = epoch
        shape = (steps, len(x), int(self.key_parts.get("num_classes", 0)))
        opened = self.store.open(epoch, shape) if self.store.recorded(epoch) else None
        if opened is not None:
            self._source = "replay"
            self._replay, self._dtype = opened
        elif self.mode == "replay" and self.store.try_record(epoch, shape, self.key_parts):
            self._source = "record"
        else:
            self._source = "compute"
        if not self.sources:
            what = {"replay": "replayed from", "record": "recorded to", "compute": "computed (none recorded in"}
            log.info("teacher outputs, epoch %d: %s %s%s", epoch, what[self._source], self.store.folder,
                     ")" if self._source == "compute" else "")
        self.sources[self._source] += 1
