"""kdrun's layers only point down (docs/DESIGN's picture), checked on the import graph drawn from the sources.

No kdrun module is imported: the graph comes from ``ast``, so this runs in well under a second and
needs no torch. Every ``import`` counts, lazy ones inside functions included (they cost the same at
run time, only later). An import that points up is allowed only with a ``# upward import: <reason>``
comment on its line, at most five of them; at most one import circle may remain (a registry that
loads its members lazily). Imports under ``if TYPE_CHECKING:`` never run: they count for the layers
(a type hint that names an upper layer is a dependency too) but cannot close a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kdrun"
MAX_UPWARD = 5
UPWARD_MARK = "# upward import:"

# Lowest layer first; a module imports from its own layer or lower ones. Longest prefix wins.
LAYERS: dict[str, int] = {
    "kdrun": 1, "kdrun.errors": 1, "kdrun.logs": 1, "kdrun.io": 1,
    "kdrun.run_lock": 1,  # one process per run folder: an OS lock, like io's atomic writes
    "kdrun.interrupts": 1,  # SIGTERM stops a run as Ctrl-C does
    "kdrun.owned_files": 1,  # the manifest of what kdrun made in a folder, like io's atomic writes
    "kdrun.objects": 1,  # Hydra instantiate with kdrun's one-line errors (torch-free)
    "kdrun.models": 2, "kdrun.data": 2, "kdrun.quant": 2, "kdrun.distributed": 2,
    "kdrun.benchmarks.published": 2,  # the published tables: data, read by presets and teacher lookup
    "kdrun.benchmarks.teachers": 2,  # where trained teachers lie: the zoo's weights
    "kdrun.engine": 3,
    "kdrun.methods": 4,
    "kdrun.build": 5,
    "kdrun.schemes": 6,
    "kdrun.config_checks": 7, "kdrun.preflight": 7, "kdrun.sweeps": 7, "kdrun.config_store": 7,
    "kdrun.sweep_workers": 7,  # a parallel sweep's worker processes: warmed, and the torch checks run there
    "kdrun.config_schema": 7,  # the types of every config value (torch-free)
    "kdrun.benchmarks.presets": 7,  # experiment= options, registered into the config store
    "kdrun.benchmark_default": 7,  # the headline rule: rewrites the overrides before Hydra composes
    "kdrun.listing": 7,  # kdrun --list: what the config groups, the registry and the presets offer
    "kdrun.pipeline": 8,
    "kdrun.report": 8,  # reads only the files a run wrote; sits beside the pipeline
    "kdrun.run_folders": 8,  # which folders a run or sweep may write into (the names: kdrun.report.files)
    "kdrun.distributed.launch": 8,  # starts the pipeline's processes (torchrun, sweep jobs)
    "kdrun.benchmarks.compare": 8,  # a report against the published tables
    "kdrun.cli": 9, "kdrun.__main__": 9,
    "kdrun.benchmarks.smoke": 9,  # runs the command line on every preset
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def kdrun_imports(path: Path, runtime_only: bool = False) -> list[tuple[str, int, str]]:
    """(imported kdrun module, line number, line text) for every import in ``path`` (``runtime_only``:
    leaving out those under ``if TYPE_CHECKING:``)."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(source)
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if runtime_only and id(node) in type_only:
            continue
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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def _existing(name: str) -> str:
    """The module an import names (drops a trailing attribute)."""
    while name and not _is_module(name):
        name = name.rpartition(".")[0]
    return name


def import_graph(runtime_only: bool = False) -> dict[str, list[tuple[str, int, str]]]:
    return {module_name(p): kdrun_imports(p, runtime_only) for p in sorted(ROOT.rglob("*.py"))}


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
    found = circles(import_graph(runtime_only=True))
    assert len(found) <= 1, f"import circles: {[sorted(c) for c in found]}"


def test_upward_imports_are_few_and_explained():
    upward = upward_imports(import_graph())
    unexplained = [f"{src}:{lineno} imports {dst} (layer {layer(src)} -> {layer(dst)})"
                   for src, dst, lineno, text in upward if UPWARD_MARK not in text]
    assert not unexplained, "imports pointing up a layer (move the name down, or explain with "\
                            f"'{UPWARD_MARK} <reason>'):\n" + "\n".join(unexplained)
    assert len(upward) <= MAX_UPWARD, [f"{s} -> {d}" for s, d, _, _ in upward]


def test_the_checker_sees_an_upward_import(tmp_path):
    """The graph is really drawn: a known downward edge is present, a made-up upward one is found."""
    graph = import_graph()
    assert "kdrun.engine.task" in {dst for dst, _, _ in graph["kdrun.engine.loop"]}
    # a type hint's import (under TYPE_CHECKING) is a dependency, but not one that runs
    assert "kdrun.schemes.context" in {dst for dst, _, _ in graph["kdrun.schemes.base"]}
    assert "kdrun.schemes.context" not in {dst for dst, _, _ in import_graph(runtime_only=True)["kdrun.schemes.base"]}
    fake = {"kdrun.engine.loop": [("kdrun.schemes.context", 1, "from kdrun.schemes.context import X")],
            "kdrun.schemes.context": [("kdrun.engine.loop", 1, "")]}
    assert upward_imports(fake) == [("kdrun.engine.loop", "kdrun.schemes.context", 1,
                                     "from kdrun.schemes.context import X")]
    assert circles(fake) == [{"kdrun.engine.loop", "kdrun.schemes.context"}]
