"""One exception type for every user-facing problem.

Anything raised as a ``KdrunError`` is shown as a single line (no traceback) and the
process exits with status 2. The message must name the key, the bad value and the
valid choices, so the user can fix the command without reading code.
"""

from __future__ import annotations

from collections.abc import Iterable


class KdrunError(Exception):
    """A problem with the user's input or environment, reported in one line."""


def choice_error(key: str, value: object, choices: Iterable[object], what: str = "") -> KdrunError:
    """Build the standard 'unknown value' error: names the key, the value and the valid choices."""
    listed = ", ".join(str(c) for c in sorted(choices, key=str))
    detail = f" {what}" if what else ""
    return KdrunError(f"{key}={value!s} is not valid{detail}; valid choices: {listed}")
