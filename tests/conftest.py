"""Shared test helpers: compose the real configs, run the real CLI in a subprocess."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"

# Tests never read or write the user's data cache (~/.cache/kdrun, see kdrun/data/cache_dir.py): this
# process and every kdrun it starts use a throwaway XDG cache, unless a test sets KDRUN_DATA itself.
_TEST_XDG_CACHE = tempfile.mkdtemp(prefix="kdrun-test-xdg-")
os.environ["XDG_CACHE_HOME"] = _TEST_XDG_CACHE
os.environ.pop("KDRUN_DATA", None)
atexit.register(shutil.rmtree, _TEST_XDG_CACHE, ignore_errors=True)

# Under xdist (-n 2 on 2 cores) each worker is its own process: intra-op thread pools only contend
# (a busy machine made tiny forward passes several times slower). Subprocesses get the same setting.
XDIST = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if XDIST:
    import torch

    torch.set_num_threads(1)

# Tiny settings any CLI test can add: fast smoke epochs on the embedded digits data.
TINY = ["debug=fast", "dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[32]", "student.hidden=[16]"]


def compose_config(overrides: list[str] | None = None, hydra: bool = False):
    """The config exactly as ``kdrun <overrides>`` would compose it."""
    from kdrun.config_store import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="kdrun"):
        return compose(config_name="config", overrides=overrides or [], return_hydra_config=hydra)


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kdrun_env(cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a kdrun subprocess: this checkout's sources, data under ``cwd``."""
    threads = {"OMP_NUM_THREADS": "1"} if XDIST else {}
    return {**os.environ, **threads, "PYTHONPATH": str(REPO), "KDRUN_DATA": str(cwd / "data"), **(env or {})}


def run_kdrun(args: list[str], cwd: Path, check: bool = True, timeout: float = 600,
              env: dict[str, str] | None = None, module: str = "kdrun") -> subprocess.CompletedProcess:
    """``python -m kdrun <args>`` in ``cwd`` against this checkout's sources."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=kdrun_env(cwd, env), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdrun {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def kdrun_in_process(args: list[str]) -> int:
    """``kdrun <args>`` through the real entry point (``kdrun.cli.main``: preflight, Hydra, the pipeline) in this
    process; its exit status. Output goes to this process's stdout/stderr (read it with ``capsys``)."""
    from kdrun import cli

    cli._new_run_dir = None
    old_argv, sys.argv = sys.argv, ["kdrun", *args]
    try:
        cli.main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old_argv
    return 0


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to start kdrun from (its outputs/ and data/ land here)."""
    return tmp_path


# --- every module covered by the not-slow selection (tests/module_coverage.py says what "covered" means) ----
_worker_modules: list[list[str]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist: a worker finished; keep the kdrun modules it imported."""
    _worker_modules.append(getattr(node, "workeroutput", {}).get("kdrun_modules", []))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from module_coverage import imported_here, selects_every_module, unimported

    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller checks the union of all workers
        config.workeroutput["kdrun_modules"] = imported_here()
        return
    if not selects_every_module(config, session):
        return
    imported = {m for modules in _worker_modules for m in modules} if _worker_modules else set(imported_here())
    missing = unimported(imported)
    if missing:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        line = (f"module coverage: {len(missing)} kdrun module(s) not imported by this selection "
                f"(-m {config.option.markexpr or 'all'!r}): {', '.join(missing)}; give each a cheap test")
        if reporter is not None:
            reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
