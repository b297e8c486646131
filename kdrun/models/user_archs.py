"""A user's named architectures: YAML files in their own config folder, ``<dir>/arch/<name>.yaml``.

Each file is one architecture, written like a node kdrun builds (torch-free to read; docs/models_and_data.md)::

    # A small CNN for 8x8 digits          <- the first comment line: its description in kdrun --list models
    _target_: mynets.Net                  # the factory or class, by import path
    input_kind: image                     # image | signal | any: checked against the dataset before data work
    family: mynets                        # optional: the family scheme=assistant picks a middle model from
    taps: [layer1, layer2]                # optional: the modules feature methods read
    width: 16                             # every other key is an argument of _target_ (teacher.width=32 changes it)

The folder is the one given with ``hydra.searchpath=[file://<dir>]`` or ``--config-dir <dir>``; each file
becomes ``teacher=<name>``, ``student=<name>`` and ``assistant=<name>``, beside the built-in ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdrun.errors import KdrunError

INPUT_KINDS = ("image", "signal", "any")


def search_dirs(args: list[str]) -> list[Path]:
    """The user's config folders named on a command line: ``--config-dir``/``-cd`` and ``hydra.searchpath``."""
    found: list[str] = []
    for i, a in enumerate(args):
        key, eq, value = a.partition("=")
        if key in ("--config-dir", "-cd"):
            found.append(value if eq else (args[i + 1] if i + 1 < len(args) else ""))
        elif key.lstrip("+") == "hydra.searchpath":
            found += [v.strip().strip("'\"") for v in value.strip("[]").split(",") if v.strip()]
    paths = []
    for entry in found:
        if entry.startswith("pkg://"):
            continue
        paths.append(Path(entry.removeprefix("file://")).expanduser())
    return paths


def _description(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def read_arch(path: Path) -> dict[str, Any]:
    """One architecture file as a plain dict (``doc``: its first comment line); one line for what is wrong."""
    import yaml

    text = path.read_text()
    try:
        node = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise KdrunError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(node, dict) or not node.get("_target_"):
        raise KdrunError(f"{path}: an architecture file needs _target_: <module.function or module.Class> "
                         f"(and input_kind: image|signal|any)")
    kind = node.setdefault("input_kind", "any")
    if kind not in INPUT_KINDS:
        raise KdrunError(f"{path}: input_kind={kind} is not valid; valid choices: {', '.join(INPUT_KINDS)}")
    return {"doc": _description(text), "node": node}


def user_archs(args: list[str], builtin: set[str] | frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """name -> {doc, node, file} for every ``arch/*.yaml`` in the folders the command line names."""
    archs: dict[str, dict[str, Any]] = {}
    for folder in search_dirs(args):
        for path in sorted((folder / "arch").glob("*.yaml")):
            if path.stem in builtin:
                raise KdrunError(f"{path} has the name of a built-in architecture ({path.stem}); rename the file")
            archs.setdefault(path.stem, {**read_arch(path), "file": str(path)})
    return archs
