"""Files written atomically, checkpoints loaded safely, exceptions shortened to one line.

The bottom layer: imports nothing of kdrun but ``errors``, and torch only inside the functions that
need it, so config checks and the command line stay torch-free.

kdrun's checkpoint keeps the model weights under the key ``model`` -- the same layout as the
reference implementations' published teachers -- so any kdrun checkpoint can be used as a
teacher elsewhere, and published teachers load here.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from kdrun.errors import OUTPUTS, KdrunError, write_error


def one_line(error: object, limit: int | None = 200, lines: int | None = None) -> str:
    """An exception's text on one line (its first ``lines`` non-empty lines, whitespace collapsed, cut at
    ``limit`` characters): it goes inside a one-line user message."""
    text_lines = [ln for ln in str(error).splitlines() if ln.strip()]
    text = " ".join(" ".join(text_lines[:lines]).split()) or type(error).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "a file", choose: str = OUTPUTS) -> Iterator[Path]:
    """A fresh temporary file beside ``path`` to write; renamed over ``path`` when the block succeeds.

    A kill at any moment leaves either the old file or the new one, never a torn write. The
    temporary name is unique (``mkstemp``), so two writers (threads, sweep jobs) never share one; it
    keeps ``path``'s suffix (``torch.export.save`` and ``np.save`` look at it). When the block fails
    the temporary file is removed and ``path`` is left as it was; an ``OSError`` (disk full,
    read-only) becomes a one-line :class:`KdrunError` naming ``path`` and ``what`` was being written (and,
    ``choose``, how to write it elsewhere: :data:`kdrun.errors.OUTPUTS` or :data:`kdrun.errors.DATA`),
    also where a writer met it and then failed otherwise (torch.save's zip writer: the OSError, then a
    RuntimeError closing the archive).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600: give the file the mode open() would
    except OSError as e:
        raise write_error(path, what, e, choose) from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        # Ctrl-C or SIGTERM stays an interrupt, also where the writer then failed otherwise (torch.save's zip
        # writer, stopped mid-archive, raises "unexpected pos" closing it): the run is interrupted, not failed.
        interrupt = _first_in(e, KeyboardInterrupt)
        if interrupt is not None and interrupt is not e:
            raise interrupt from None
        os_error = _first_in(e, OSError) if interrupt is None else None
        if os_error is not None:
            raise write_error(path, what, os_error, choose) from None
        raise


def _first_in(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``error`` if it is a ``kind``, else the ``kind`` it was raised while handling (``__context__``), if any."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    return seen


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import (umask has no getter; setting it is not thread-safe)


def _write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None], what: str) -> None:
    """Write through ``write``, fsync, then rename over ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, what) as tmp, tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "a file") -> None:
    _write_atomic(path, lambda f: f.write(data), what)


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "a file") -> None:
    write_bytes_atomic(path, text.encode(), what)


def write_json_atomic(path: str | os.PathLike, obj: Any, what: str = "a file") -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n", what)


def save_atomic(obj: Any, path: str | os.PathLike, what: str = "a checkpoint") -> None:
    """``torch.save`` ``obj`` atomically (see :func:`atomic_path`)."""
    import torch

    _write_atomic(path, lambda f: torch.save(obj, f), what)


CHECKPOINT_FILES = "give the path of a checkpoint file (.pt, .pth or .safetensors)"


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a checkpoint file (missing, a folder, a pipe, a device), or None for a regular
    file. Reads nothing: a FIFO or /dev/zero would block or never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is a broken link" if os.path.islink(path) else "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    for test, what in ((stat.S_ISREG, None), (stat.S_ISDIR, "is a folder, not a file"),
                       (stat.S_ISFIFO, "is a named pipe (FIFO), not a file"),
                       (stat.S_ISCHR, "is a character device, not a file"),
                       (stat.S_ISBLK, "is a block device, not a file"), (stat.S_ISSOCK, "is a socket, not a file")):
        if test(mode):
            return what
    return "is not a regular file"


def is_safetensors(path: Path) -> bool:
    """The safetensors layout, whatever the file's name: an 8-byte little-endian header length, then a JSON header."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000


def load_checkpoint(path: str | os.PathLike, key: str = "checkpoint",
                    remedy: str = "replace it with an intact copy") -> dict[str, Any]:
    """Load a checkpoint without executing code from it; a bad file is a one-line error naming it and
    saying what it is and what to do (``remedy``). ``~`` is the home folder."""
    import torch

    path = Path(path).expanduser()
    problem = not_a_file(path)
    if problem is not None:
        raise KdrunError(f"{key}={path} {problem}; {CHECKPOINT_FILES}")
    if path.suffix == ".safetensors" or is_safetensors(path):
        return _load_safetensors(path, key, remedy)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, random bytes ...
        raise KdrunError(f"{key}={path} is corrupt, truncated or not a weights-only checkpoint "
                         f"({one_line(e, limit=160, lines=1)}); {remedy}") from None
    if not isinstance(obj, dict):
        raise KdrunError(f"{key}={path} holds a {type(obj).__name__}, expected a dict of weights")
    return obj


def _load_safetensors(path: Path, key: str, remedy: str) -> dict[str, Any]:
    """A ``.safetensors`` file: tensors only by design (nothing in it can run code)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise KdrunError(f"{key}={path} is a safetensors file: pip install safetensors (or the 'hf' extra)") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line
        raise KdrunError(f"{key}={path} is not a readable safetensors file ({one_line(e, limit=160, lines=1)}); "
                         f"{remedy}") from None


# Where checkpoints keep their weights: kdrun and the reference code ('model'), Lightning and most training
# scripts ('state_dict'), others ('model_state_dict', 'module', 'net'); a bare state dict is the weights itself.
WEIGHT_ENTRIES = ("model", "state_dict", "model_state_dict", "module", "net")


def state_dict_of(obj: dict[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """The weights inside a checkpoint, under the first of :data:`WEIGHT_ENTRIES` or the checkpoint itself;
    every value a tensor (``source`` names the checkpoint in the error)."""
    import torch

    for k in WEIGHT_ENTRIES:
        if isinstance(obj.get(k), dict) and any(isinstance(v, torch.Tensor) for v in obj[k].values()):
            return _tensors_only(obj[k], f"its '{k}' entry", source)
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    entry = next((k for k in WEIGHT_ENTRIES if isinstance(obj.get(k), dict) and obj[k]), None)
    if entry is not None:  # weights of another kind (lists, numbers): say what is there
        _tensors_only(obj[entry], f"its '{entry}' entry", source)
    raise KdrunError(f"no weights found in {source} (keys: {', '.join(map(str, list(obj)[:6]))}); expected a state "
                     f"dict, or one under {', '.join(repr(k) for k in WEIGHT_ENTRIES)}")


def _tensors_only(weights: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    import torch

    bad = next(((name, v) for name, v in weights.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise KdrunError(f"{source}: {where} holds a {type(bad[1]).__name__} at '{bad[0]}', not a tensor; give a "
                         f"checkpoint whose weights are a state dict (tensors only)")
    return weights
