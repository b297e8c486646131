"""One exception type for every user-facing problem.

Anything raised as a ``KdrunError`` is shown as a single line (no traceback) and the
process exits with status 2. The message must name the key, the bad value and the
valid choices, so the user can fix the command without reading code.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class KdrunError(Exception):
    """A problem with the user's input or environment, reported in one line."""


def choice_error(key: str, value: object, choices: Iterable[object], what: str = "") -> KdrunError:
    """Build the standard 'unknown value' error: names the key, the value and the valid choices."""
    names = sorted((str(c) for c in choices))
    detail = f" {what}" if what else ""
    return KdrunError(f"{key}={value!s} is not valid{detail}; {did_you_mean(str(value), names)}"
                      f"valid choices: {', '.join(names)}")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"did you mean X? "`` for the closest choice to a mistyped ``value`` (difflib), or ``""``."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EROFS: "the filesystem is read-only: {choose}",
    errno.EACCES: "no permission to write there: {choose}",
    errno.EPERM: "no permission to write there: {choose}",
}
OUTPUTS = "choose a writable paths.outputs (or hydra.run.dir)"  # what a run writes: its folder, the model cache
DATA = "point KDRUN_DATA (or paths.data) at a writable folder"  # datasets and transfer sets (kdrun/data/cache_dir.py)


def write_error(path: object, what: str, error: OSError, choose: str = OUTPUTS) -> KdrunError:
    """An OSError met while writing ``what`` to ``path``, as one line with what to do about it (``choose``: how
    to give the write another place)."""
    reason = error.strerror or type(error).__name__
    hint = _WRITE_HINTS.get(error.errno, "check the path and the disk").format(choose=choose)
    return KdrunError(f"could not write {what} to {path} ({reason}); {hint}, then run the same command again "
                      "(what was written before is kept)")
