"""What kdrun made in a folder, so that it replaces or deletes nothing else.

A folder kdrun writes into (a run, a sweep, a report) holds a manifest, ``.kdrun-manifest.json``,
naming the entries kdrun claimed there: the files and folders it creates, replaces or deletes
(``results.json``, ``tb/``, ``report.md``, ...). kdrun claims an entry only while it is absent or
already kdrun's, so:

* an entry kdrun would write that exists without a claim (the user's ``config.yaml`` or ``tb/`` in
  ``hydra.run.dir=.``, another tool's ``report.md``) stops the command in one line, before anything
  is written;
* every other entry of the folder (the user's notes, data, code) is left alone: kdrun never writes,
  moves or deletes a name it did not claim.

Folders written before kdrun kept manifests are recognized by their callers (a run folder whose saved
``.hydra/config.yaml`` is the same run's, a sweep folder's ``multirun.yaml``) and claimed as they are.
The names themselves belong to their writers (kdrun/report/files.py); this module only keeps the record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from kdrun.errors import KdrunError
from kdrun.io import one_line, write_json_atomic

MANIFEST = ".kdrun-manifest.json"
FORMAT = 1


def claimed(folder: str | os.PathLike) -> set[str] | None:
    """The entries kdrun claimed in ``folder``; None when it holds no manifest (kdrun never wrote there,
    or wrote there before manifests). A manifest that is not kdrun's is one line."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise KdrunError(f"{path} cannot be read as kdrun's record of its files ({one_line(e, limit=80)}); "
                         f"move the folder's own files elsewhere and delete it, or choose another folder") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise KdrunError(f"{path} is not kdrun's record of its files (no list of entries); choose another folder")
    return set(entries)


def unclaimed(folder: str | os.PathLike, entries: Iterable[str]) -> list[str]:
    """Those of ``entries`` that exist in ``folder`` without kdrun's claim: not kdrun's to touch."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mine = claimed(folder) or set()
    return [e for e in entries if e not in mine and os.path.lexists(folder / e)]


def check_unclaimed(folder: str | os.PathLike, entries: Iterable[str], where: str, advice: str) -> None:
    """One line when ``folder`` holds any of ``entries`` that kdrun did not make (``where`` names the folder
    as the user gave it, ``advice`` says what to do instead)."""
    foreign = unclaimed(folder, entries)
    if foreign:
        shown = ", ".join(_shown(Path(folder), e) for e in foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise KdrunError(f"{where} holds {shown}, which kdrun did not write; kdrun never replaces or deletes "
                         f"files it did not make: {advice}")


def claim(folder: str | os.PathLike, entries: Iterable[str], kind: str) -> None:
    """Record ``entries`` as kdrun's in ``folder`` (created if needed), beside what it claimed before."""
    folder = Path(folder)
    before = claimed(folder)
    wanted = set(entries)
    if before is not None and wanted <= before:
        return
    record = {"format": FORMAT, "kind": _kind(folder) or kind, "entries": sorted((before or set()) | wanted),
              "note": "files and folders here that kdrun made and may replace or delete; it touches no others"}
    write_json_atomic(folder / MANIFEST, record, "kdrun's record of its files")


def _kind(folder: Path) -> str | None:
    """What the folder is to kdrun (run, sweep, report) as its manifest first said; a run folder stays one when
    kdrun-report writes into it."""
    try:
        data = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def _shown(folder: Path, entry: str) -> str:
    return entry + "/" if (folder / entry).is_dir() else entry
