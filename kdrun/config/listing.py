"""``kdrun --list [methods|models|datasets|schemes|presets]``: what can be chosen, one line each.

Handled before Hydra, like ``--version``: Hydra's ``--help`` lists option names, this says what
each one is. Methods, datasets and schemes are described by the first comment line of their config
file (one source of truth); models come from the registry, with their input kind and parameter
count (built on the meta device, so nothing is allocated); presets from the published tables.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from kdrun.errors import KdrunError

CATEGORIES = ("methods", "models", "datasets", "schemes", "presets")
GROUPS = {"methods": "method", "datasets": "dataset", "schemes": "scheme"}


def _first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#") and "@package" not in line:
            return line.lstrip("# ").strip()
    return ""


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1].rstrip() + "…"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned columns; the last (the description) is cut so that each entry stays on one line of the
    terminal (``COLUMNS`` respected; 100 when piped)."""
    width = shutil.get_terminal_size((100, 24)).columns
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        lines.append(f"  {head}  {_cut(row[-1].replace('``', ''), max(width - len(head) - 5, 30))}".rstrip())
    return lines


def group_rows(config_dir: str, group: str) -> list[tuple[str, str]]:
    return [(p.stem, _first_comment(p)) for p in sorted((Path(config_dir) / group).glob("*.yaml"))]


def _params(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count:,}"


def model_rows(args: list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """name, input kind, parameters (for CIFAR-100 images, MNIST-1D signals or ListOps tokens), first docstring line; then the
    user's own architectures (``arch/*.yaml`` in the folders ``args`` name) and the three open kinds. Torch-free:
    the built-ins' counts were counted once (kdrun/models/param_count.py); a user's are counted when built."""
    from kdrun.models.catalog import ARCHS
    from kdrun.models.foreign_nodes import FOREIGN_DOCS
    from kdrun.models.param_count import saved_counts
    from kdrun.models.user_archs import user_archs

    counts = saved_counts()
    rows = [(name, a.input_kind, _params(counts.get(name)), a.doc) for name, a in sorted(ARCHS.items())]
    for name, arch in user_archs(args or [], set(ARCHS)).items():
        rows.append((name, arch["node"]["input_kind"], "yours", f"{arch['doc'] or arch['node']['_target_']} "
                                                              f"({arch['file']})"))
    rows += [(kind, "-", "-", doc) for kind, doc in FOREIGN_DOCS.items()]
    return rows


def preset_rows() -> list[tuple[str, str]]:
    from kdrun.config.presets import all_presets
    from kdrun.benchmarks.published import load_table

    rows = []
    for name, node in all_presets().items():
        b = node["benchmark"]
        table = load_table(b["table"])
        if b["pair"] is None:
            what = f"{b['arch']} alone ({b['row']} row)"
        else:
            pair = table.pairs[b["pair"]]
            published = pair.value(b["row"])
            what = f"{pair.teacher} -> {pair.student}, {table.rows[b['row']].label}" + (
                f": published {published:.2f}" if published is not None else "")
        rows.append((name, f"{table.name}: {what}"))
    return rows


def listing(category: str | None, config_dir: str, args: list[str] | None = None) -> str:
    """The text of ``kdrun --list [category]`` (every category when None)."""
    if category is not None and f"{category}s" in CATEGORIES:
        category = f"{category}s"  # --list method
    if category is not None and category not in CATEGORIES:
        close = difflib.get_close_matches(category, CATEGORIES, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise KdrunError(f"--list {category} is not valid; {hint}valid choices: {', '.join(CATEGORIES)}")
    out = []
    for name in [category] if category else CATEGORIES:
        if name in GROUPS:
            rows = group_rows(config_dir, GROUPS[name])
            title = f"{name} ({GROUPS[name]}=<name>)"
        elif name == "models":
            rows = model_rows(args)
            title = "models (teacher=<name>, student=<name>; input kind; parameters for CIFAR-100 or MNIST-1D)"
        else:
            rows = preset_rows()
            title = f"presets (experiment=<name>; {len(rows)} published cells)"
        out += [title, *_table(rows), ""]
    return "\n".join(out).rstrip() + "\n"
