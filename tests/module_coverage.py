"""Which kdrun modules a test selection left unimported (the check behind conftest's ``pytest_sessionfinish``).

"Covered" here means: imported by the test processes themselves (pytest's, or its xdist workers'), so at least
its module body ran under the tests and its functions were reachable from them; a module only a ``kdrun``
subprocess imports does not count. The not-slow selection (``pytest -m "not slow"``) must cover every
``kdrun/**/*.py``: conftest fails such a run that leaves any out, naming them, so a module added without a
cheap test is noticed the day it lands.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kdrun"
COVERED_SELECTIONS = ("", "not slow")  # -m expressions whose runs must import every module


def source_modules(package: Path = PACKAGE) -> set[str]:
    """Dotted names of every module under ``package`` (``kdrun.engine``, ``kdrun.engine.fit``, ...)."""
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def unimported(imported: Iterable[str], package: Path = PACKAGE) -> list[str]:
    return sorted(source_modules(package) - set(imported))


def imported_here() -> list[str]:
    return sorted(m for m in sys.modules if m == PACKAGE.name or m.startswith(PACKAGE.name + "."))


def selects_every_module(config: pytest.Config, session: pytest.Session) -> bool:
    """Whether this run is the whole suite or its not-slow part (no -k, no files or nodes picked, not stopped
    early): only such a run is expected to import every module."""
    tests = Path(__file__).resolve().parent
    if config.option.collectonly or config.option.keyword or config.option.markexpr not in COVERED_SELECTIONS:
        return False
    if config.getoption("deselect", None) or getattr(config.option, "lf", False):
        return False
    here = Path(config.invocation_params.dir)
    if any((here / str(a).split("::")[0]).resolve() != tests for a in config.args):
        return False
    return session.testscollected > 0 and not session.shouldstop and not session.shouldfail
