"""A run's results.json and metrics.jsonl, read through one validated shape.

Every reader (a sweep re-run deciding what to skip, resume, kdrun-report, the sweep's end) goes through
:func:`read_results` and :func:`read_metrics`, so a file of another shape is never mistaken for a run:
``{"status": "completed"}`` without stages is not a completed run, ``"last_top1": "n/a"`` is no number.

* results.json: a JSON object with a known ``status`` and a ``stages`` object whose records hold
  numbers where numbers belong; anything else raises :class:`InvalidRunFile`, one line naming the
  file and the first problem. Keys this module does not know pass through (newer writers add some).
* metrics.jsonl: one JSON object per line, each an epoch's record (``stage``, ``epoch``, ``lr``, the top-1
  of the set it was evaluated on, ``test_top1`` or ``val_top1``, numbers where numbers belong). A line that is not (a line torn by a kill,
  ``42``, ``{"foo": 1}``, bytes that are not UTF-8) is skipped and counted; it never hides the good
  lines around it, and a rewrite (resume) keeps it as it was.

The checks are a few lines of Python instead of a JSON-Schema library: kdrun-report and the sweep's
own process stay light, and each problem reads as one sentence.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdrun.errors import KdrunError
from kdrun.report.files import METRICS_FILE, RESULTS_FILE

STATUSES = ("running", "completed", "failed", "interrupted")
# A stage record's fields that readers use, by type (a field may be absent, or null where noted).
STAGE_NUMBERS = ("last_top1", "best_top1")  # required: every finished stage has them
STAGE_OPTIONAL_NUMBERS = ("test_top1", "best_epoch", "epochs", "params", "size_bytes", "wall_time", "artifact_bytes",
                          "compressed_bytes", "sparsity", "trained_top1", "val_loss", "generation")
STAGE_TEXTS = ("role", "arch", "method", "precision", "source", "checkpoint", "note", "artifact", "int8_runtime")
STAGE_OBJECTS = ("latency", "teacher_outputs", "models")
TOP_TEXTS = ("error", "primary_stage", "reference_stage", "dataset", "method", "scheme", "device")
TOP_OBJECTS = ("evaluation", "objective", "distill", "versions", "speed")
METRIC_TOP1 = ("test_top1", "val_top1")  # every epoch's record has one: the set it was evaluated on
METRIC_PREFIXES = ("train_", "val_", "test_")  # numbers wherever they appear


class InvalidRunFile(KdrunError):
    """A run file that is not of the shape kdrun writes."""


def read_results(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``run_dir``'s results.json, validated; None when there is none."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidRunFile(f"{path} is a folder, not kdrun's results file") from None
    except OSError as e:
        raise InvalidRunFile(f"{path} cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        results = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRunFile(f"{path} is not JSON text (torn, binary or another format); not a kdrun run's "
                             f"results") from None
    problem = results_problem(results)
    if problem:
        raise InvalidRunFile(f"{path} is not a kdrun run's results: {problem}")
    return results


def results_problem(results: Any) -> str | None:
    """What makes ``results`` not a kdrun results.json (the first problem), or None."""
    if not isinstance(results, dict):
        return f"a JSON {_kind(results)}, not an object"
    if results.get("status") not in STATUSES:
        return f"status is {_shown(results.get('status'))}, expected one of {', '.join(STATUSES)}"
    stages = results.get("stages")
    if not isinstance(stages, dict):
        return f"stages is {_shown(stages)}, expected an object of stage records"
    for key in TOP_TEXTS:
        if results.get(key) is not None and not isinstance(results[key], str):
            return f"{key} is {_shown(results[key])}, expected text"
    for key in TOP_OBJECTS:
        if results.get(key) is not None and not isinstance(results[key], dict):
            return f"{key} is {_shown(results[key])}, expected an object"
    if "seed" in results and not (results["seed"] is None or _is_int(results["seed"])):
        return f"seed is {_shown(results['seed'])}, expected a whole number"
    for name, record in stages.items():
        problem = _stage_problem(record)
        if problem:
            return f"stages.{name}: {problem}"
    return None


def _stage_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"a JSON {_kind(record)}, not a stage record"
    for key in STAGE_NUMBERS:
        if not _is_number(record.get(key)):
            return f"{key} is {_shown(record.get(key))}, expected a number"
    checks = ((STAGE_OPTIONAL_NUMBERS, _is_number, "a number"), (STAGE_TEXTS, _is_text, "text"),
              (STAGE_OBJECTS, _is_object, "an object"))
    for keys, fits, expected in checks:
        for key in keys:
            if record.get(key) is not None and not fits(record[key]):
                return f"{key} is {_shown(record[key])}, expected {expected}"
    if "in_table" in record and not isinstance(record["in_table"], bool):
        return f"in_table is {_shown(record['in_table'])}, expected true or false"
    return None


@dataclass
class MetricsLine:
    raw: bytes  # the line as stored, without its newline
    record: dict[str, Any] | None  # the epoch's record, or None for a line that is not one
    problem: str | None = None


@dataclass
class Metrics:
    lines: list[MetricsLine] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [line.record for line in self.lines if line.record is not None]

    @property
    def skipped(self) -> list[tuple[int, str]]:
        """(line number, problem) of every line that is not an epoch's record."""
        return [(i, line.problem or "") for i, line in enumerate(self.lines, 1) if line.record is None]

    def skipped_note(self, path: str | os.PathLike) -> str | None:
        """One line saying what was skipped, or None when every line was a record."""
        skipped = self.skipped
        if not skipped:
            return None
        n, (first, problem) = len(skipped), skipped[0]
        return (f"{path}: skipped {n} line{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} not an epoch's "
                f"record (line {first}: {problem}); the other {len(self.lines) - n} were read")


def read_metrics(path: str | os.PathLike) -> Metrics:
    """Every line of a metrics.jsonl (``path``: the file, or the run folder holding it); none if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return Metrics()
    return Metrics([_metrics_line(raw) for raw in data.split(b"\n") if raw.strip()])


def _metrics_line(raw: bytes) -> MetricsLine:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return MetricsLine(raw, None, "not UTF-8 text")
    except ValueError:
        return MetricsLine(raw, None, "not JSON (a line torn by a kill?)")
    problem = metrics_problem(record)
    return MetricsLine(raw, None if problem else record, problem)


def metrics_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"a JSON {_kind(record)}, not an object"
    if not isinstance(record.get("stage"), str) or not record["stage"]:
        return f"stage is {_shown(record.get('stage'))}, expected a stage name"
    if not _is_int(record.get("epoch")) or record["epoch"] < 0:
        return f"epoch is {_shown(record.get('epoch'))}, expected a whole number >= 0"
    if not _is_number(record.get("lr")):
        return f"lr is {_shown(record.get('lr'))}, expected a number"
    if not any(key in record for key in METRIC_TOP1):
        return f"no {' or '.join(METRIC_TOP1)}: not an evaluated epoch"
    for key, value in record.items():
        if key.startswith(METRIC_PREFIXES) and not _is_number(value):
            return f"{key} is {_shown(value)}, expected a number"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # NaN counts: a diverged run's value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _kind(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    if value is None:
        return "missing"
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
