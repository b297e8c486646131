"""Which stages a run needs: the ones asked for in ``stages`` plus whatever those depend on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def needed(wanted: Iterable[str], requires: Mapping[str, Iterable[str]]) -> set[str]:
    """``wanted`` closed under ``requires`` (stage -> the stages whose models it uses)."""
    out: set[str] = set()
    todo = list(wanted)
    while todo:
        stage = todo.pop()
        if stage not in out:
            out.add(stage)
            todo.extend(requires.get(stage, ()))
    return out
