"""What trackers remember in the folders kdrun owns: a run's tracker run ids (``<run>/trackers.json``), so a
resumed run continues its tracker run instead of starting another, and a sweep's shared entries
(``<sweep>/trackers.json``: MLflow's parent run), created once under a lock however many jobs start at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kdrun.io import write_json_atomic
from kdrun.report.files import TRACKERS_FILE as STATE_FILE
from kdrun.report.files import TRACKERS_LOCK as LOCK_FILE


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: trackers start afresh
        return {}
    return state if isinstance(state, dict) else {}


def remember(folder: Path, tracker: str, entry: dict[str, Any]) -> None:
    with _locked(folder):
        state = read_state(folder)
        state[tracker] = entry
        write_json_atomic(folder / STATE_FILE, state, "the trackers' run ids")


def shared_entry(folder: Path, tracker: str, matches: Callable[[dict], bool], create: Callable[[], dict]) -> dict:
    """``folder``'s entry for ``tracker`` if it ``matches``, else the one ``create`` makes, stored: the first
    job of a sweep creates it, the others (processes started at the same time) find it."""
    with _locked(folder):
        entry = read_state(folder).get(tracker)
        if isinstance(entry, dict) and matches(entry):
            return entry
        entry = create()
        state = read_state(folder)
        state[tracker] = entry
        write_json_atomic(folder / STATE_FILE, state, "the trackers' run ids")
        return entry


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
