"""kdrun's layers only point down (docs/DESIGN's picture), checked on the import graph drawn from the sources.

No kdrun module is imported: the graph comes from ``ast``, so this runs in well under a second and
needs no torch. Every ``import`` counts, lazy ones inside functions included (they cost the same at
run time, only later). No import points up; at most one import circle may remain (a registry that
loads its members lazily). Imports under ``if TYPE_CHECKING:`` count too: a type hint that names another
module is a dependency on it, and two modules that name each other's types want a third that both import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kdrun"
LAYER_TABLE = ROOT.parent / "docs" / "development.md"  # the layer table newcomers read

# One line per top-level folder of kdrun/, lowest layer first: a module imports from its own layer or lower ones.
# The path of a file says its layer; docs/development.md's layer table says the same.
LAYERS: dict[str, int] = {
    "kdrun": 1,  # the top-level files: environment, errors, interrupts, io, logs, objects, parent_watch
    "kdrun.models": 2, "kdrun.data": 2, "kdrun.quant": 2, "kdrun.distributed": 2, "kdrun.benchmarks": 2,
    "kdrun.export": 2,
    "kdrun.engine": 3, "kdrun.report": 3, "kdrun.loggers": 3,
    "kdrun.methods": 4,
    "kdrun.tasks": 5,
    "kdrun.schemes": 6,
    "kdrun.config": 7,
    "kdrun.runs": 8,
    "kdrun.cli": 9, "kdrun.__main__": 9, "kdrun.api": 9,  # the two doors: the command line and the Python API
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a module: its top-level folder's, or 1 for a top-level file without a line of its own."""
    top = ".".join(module.split(".")[:2])
    if top in LAYERS:
        return LAYERS[top]
    assert _is_top_level_file(top), f"kdrun/{top.split('.')[1]}/ has no layer: add its line to LAYERS"
    return LAYERS["kdrun"]


def _is_top_level_file(module: str) -> bool:
    return module == "kdrun" or (ROOT / f"{module.split('.')[1]}.py").is_file()


def kdrun_imports(path: Path) -> list[tuple[str, int, str]]:
    """(imported kdrun module, line number, line text) for every import in ``path``."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from kdrun.models import cnn1d" imports the submodule kdrun.models.cnn1d
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            if name == "kdrun" or name.startswith("kdrun."):
                found.append((_existing(name), node.lineno, lines[node.lineno - 1]))
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def _existing(name: str) -> str:
    """The module an import names (drops a trailing attribute)."""
    while name and not _is_module(name):
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, list[tuple[str, int, str]]]:
    return {module_name(p): kdrun_imports(p) for p in sorted(ROOT.rglob("*.py"))}


def circles(graph: dict[str, list]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, list]) -> list[tuple[str, str, int, str]]:
    return [(src, dst, lineno, text) for src, deps in graph.items() for dst, lineno, text in deps
            if layer(dst) > layer(src) and not (src == "kdrun" or dst == "kdrun")]


def test_every_module_has_a_layer():
    graph = import_graph()
    assert len(graph) > 50
    for module in graph:
        assert layer(module) >= 1


def test_at_most_one_import_circle():
    found = circles(import_graph())
    assert len(found) <= 1, f"import circles: {[sorted(c) for c in found]}"


def test_no_import_points_up():
    upward = [f"{src}:{lineno} imports {dst} (layer {layer(src)} -> {layer(dst)})"
              for src, dst, lineno, _ in upward_imports(import_graph())]
    assert not upward, "imports pointing up a layer (move the name down to where both sides see it):\n" + \
        "\n".join(upward)


def documented_layers() -> dict[str, int]:
    """The documented layer table as {module prefix: layer}: ``kdrun/runs/`` -> kdrun.runs, ``data/`` -> kdrun.data,
    ``kdrun/cli.py`` -> kdrun.cli, ``kdrun/*.py`` -> kdrun (the top-level files)."""
    table = {}
    for number, cell in re.findall(r"^\| (\d) \| ([^|]+) \|", LAYER_TABLE.read_text(), re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            path = path if path.startswith("kdrun/") else f"kdrun/{path}"
            name = "kdrun" if path == "kdrun/*.py" else path.rstrip("/").removesuffix(".py").replace("/", ".")
            table[name] = int(number)
    return table


def test_documented_table_matches_the_layers():
    """docs/development.md's table, the folders on disk and LAYERS say the same (LAYERS may name a folder the layout
    plans and no file has yet)."""
    existing = {name: n for name, n in LAYERS.items()
                if name == "kdrun" or _is_module(name) or (ROOT.parent / name.replace(".", "/")).is_dir()}
    assert documented_layers() == existing
    folders = {f"kdrun.{p.name}" for p in ROOT.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    assert folders <= set(LAYERS), f"folders without a layer: {sorted(folders - set(LAYERS))}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The graph is really drawn: a known downward edge is present, a made-up upward one is found."""
    graph = import_graph()
    assert "kdrun.engine.task" in {dst for dst, _, _ in graph["kdrun.engine.loop"]}
    # a type hint's import (under TYPE_CHECKING) is a dependency too
    assert "kdrun.schemes.context" in {dst for dst, _, _ in graph["kdrun.schemes.base"]}
    fake = {"kdrun.engine.loop": [("kdrun.schemes.context", 1, "from kdrun.schemes.context import X")],
            "kdrun.schemes.context": [("kdrun.engine.loop", 1, "")]}
    assert upward_imports(fake) == [("kdrun.engine.loop", "kdrun.schemes.context", 1,
                                     "from kdrun.schemes.context import X")]
    assert circles(fake) == [{"kdrun.engine.loop", "kdrun.schemes.context"}]


def test_run_file_names_are_spelled_in_one_place():
    """The names of the files a run writes live in kdrun/report/files.py; code elsewhere uses its constants (a
    string in a docstring or a message is text, not a file name the code opens, and is left alone)."""
    names = {"metrics.jsonl", "results.json", "table.md", "table.csv"}
    spelled = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "report" / "files.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # a name the code builds a path from: `run_dir / "results.json"`
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                    and node.right.value in names:
                spelled.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.right.value}")
    assert not spelled, "use kdrun/report/files.py's constants: " + ", ".join(spelled)
