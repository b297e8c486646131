"""Names of the files a run writes, and how to write them safely."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdrun.errors import write_error

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` to write; renamed over ``path`` when the block succeeds.

    The temporary name is unique (``mkstemp``), so two writers never share one; it keeps ``path``'s
    suffix (``torch.export.save`` and ``np.save`` look at it). When the block fails the temporary
    file is removed and ``path`` is left as it was; an ``OSError`` (disk full, read-only) becomes a
    one-line :class:`KdrunError` naming ``path`` and ``what`` was being written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, what, e) from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, what, e) from None
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "a file") -> None:
    with atomic_path(path, what) as tmp:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "a file") -> None:
    write_bytes_atomic(path, text.encode(), what)


def write_json_atomic(path: str | os.PathLike, obj: Any, what: str = "a file") -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n", what)
