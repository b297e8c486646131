"""Timestamps of a sweep's phases, for ``scripts/bench_parallel.py --trace`` (not part of kdrun).

Python imports ``sitecustomize`` at start-up from the path, so with this folder on PYTHONPATH every
process of a sweep -- its own, joblib's workers -- appends ``<unix time> <pid> <event>`` lines to the
file named by $KDRUN_TRACE: its start, entering and leaving the functions below, and a few imports.
"""

import atexit
import functools
import importlib.abc
import importlib.util
import os
import sys
import time

TRACE = os.environ.get("KDRUN_TRACE")
FUNCTIONS = {
    "kdrun.cli": ["main", "checked_arguments", "_run_job"],
    "kdrun.config.sweep_workers": ["start_workers", "prepare_worker", "await_workers"],
    "kdrun.runs.pipeline": ["run"],
    "hydra_plugins.hydra_joblib_launcher._core": ["launch", "execute_job"],
    "kdrun.report.sweep_callback": ["SweepReport.on_multirun_end"],
}
IMPORTS = {"torch", "torch._dynamo", "sklearn", "matplotlib", "kdrun.cli", "kdrun.runs.pipeline", "joblib"}


def stamp(event: str) -> None:
    with open(TRACE, "a") as f:
        f.write(f"{time.time():.3f} {os.getpid()} {event}\n")


def _traced(fn, label):
    @functools.wraps(fn)  # same name and module: pickled functions still resolve to it
    def traced(*args, **kwargs):
        stamp(f"> {label}")
        try:
            return fn(*args, **kwargs)
        finally:
            stamp(f"< {label}")
    return traced


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, name):
        self.inner, self.name = inner, name

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if self.name in IMPORTS:
            stamp(f"> import {self.name}")
        self.inner.exec_module(module)
        if self.name in IMPORTS:
            stamp(f"< import {self.name}")
        for path in FUNCTIONS.get(self.name, []):
            *cls, attr = path.split(".")
            owner = getattr(module, cls[0]) if cls else module
            if hasattr(owner, attr):  # an older checkout may not have it
                setattr(owner, attr, _traced(getattr(owner, attr), f"{self.name.rsplit('.', 1)[-1]}.{path}"))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in FUNCTIONS and name not in IMPORTS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, name)
        return spec


if TRACE:
    stamp("start " + " ".join(sys.argv)[:60])
    atexit.register(stamp, "exit handlers")
    sys.meta_path.insert(0, _Finder())
