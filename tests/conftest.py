"""Shared test helpers: compose the real configs, run the real CLI (in this process, or in its own)."""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
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

@pytest.fixture(autouse=True, scope="session")
def _generated_config_options():
    """The options kdrun generates into Hydra's ConfigStore (teacher=<arch>, ...), as kdrun's main() registers
    them before anything composes: tests compose and preflight without main()."""
    from kdrun.config.store import register_configs

    register_configs(presets=False)  # tests of experiment= presets add them, as main() does for such commands


def quick_sample(params: list, every: int, unpack: bool = False) -> list:
    """An exhaustive parametrization (every preset, every config option, every model): README's test
    command runs every case; the quick loop (``-m "not slow"``) runs every ``every``-th, spread over the
    list, and the rest are marked slow. ``unpack``: each param is a tuple of several arguments."""
    sampled = []
    for i, p in enumerate(params):
        if i % every == 0:
            sampled.append(p)
        else:
            sampled.append(pytest.param(*(p if unpack else (p,)), marks=pytest.mark.slow))
    return sampled


# Tiny settings any CLI test can add: fast smoke epochs on the embedded digits data.
TINY = ["debug=fast", "dataset=digits", "teacher=mlp", "student=mlp", "teacher.hidden=[32]", "student.hidden=[16]"]


def compose_config(overrides: list[str] | None = None, hydra: bool = False):
    """The config exactly as ``kdrun <overrides>`` would compose it."""
    from kdrun.config.store import register_configs

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


def start_kdrun(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m kdrun <args>`` started in ``cwd`` (the environment of :func:`kdrun_env`), output piped, for
    tests that signal it. It gets the SIGINT a terminal gives: a shell starts background jobs (``cmd &``)
    with SIGINT ignored, and Python keeps an ignored SIGINT ignored, so under such a parent (a CI script
    run in the background) a test's Ctrl-C would never reach kdrun."""
    return subprocess.Popen([sys.executable, "-m", "kdrun", *args], cwd=cwd, env=kdrun_env(Path(cwd), env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# Runs whose own processes are what they exercise: they always get a real ``python -m kdrun`` (see run_kdrun).
_OWN_PROCESS = ("hydra/launcher=joblib", "hydra/launcher=submitit", "device.nproc=")


def run_kdrun(args: list[str], cwd: Path, check: bool = True, timeout: float = 600,
              env: dict[str, str] | None = None, module: str = "kdrun",
              in_process: bool | None = None) -> subprocess.CompletedProcess:
    """``kdrun <args>`` in ``cwd`` against this checkout's sources, with the environment of
    :func:`kdrun_env`; its exit status and output as a ``CompletedProcess``.

    By default it runs in this process (:func:`kdrun_in_folder`: the real ``kdrun.cli.main``, output
    captured, every global a run changes put back), which saves a Python + torch + Hydra start per run.
    A real ``python -m <module>`` process is started when ``in_process=False``, for another ``module``,
    and for runs whose processes are the point (a joblib or submitit launcher, ``device.nproc``):
    signals, kill -9, two processes on one folder, what a process imports. ``timeout`` applies to
    a process only."""
    if in_process is None:
        in_process = module == "kdrun" and not any(a.startswith(_OWN_PROCESS) for a in args)
    if in_process:
        if module != "kdrun":
            raise ValueError(f"module={module!r} runs as a process: pass in_process=False")
        proc = kdrun_in_folder(args, cwd, env)
    else:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=kdrun_env(cwd, env),
                              capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdrun {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def kdrun_in_folder(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """What ``python -m kdrun <args>`` started in ``cwd`` with :func:`kdrun_env` would do, run in this
    process: its exit status (an uncaught exception: its traceback on stderr and 1, as Python does),
    its stdout and stderr. Everything the run changes in this process is put back afterwards
    (:func:`kdrun_globals_restored`)."""
    out, err = io.StringIO(), io.StringIO()
    with kdrun_globals_restored():
        run_env = kdrun_env(Path(cwd), env)  # from this process's environment: before clearing it
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(run_env)
        # Hydra's and kdrun's logging handlers bind sys.stdout/sys.stderr when the run configures them
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = _exit_status(args)
            except Exception:  # noqa: BLE001 - what the interpreter would print before exiting 1
                traceback.print_exc()
                code = 1
    return subprocess.CompletedProcess(["kdrun", *args], code, out.getvalue(), err.getvalue())


def kdrun_in_process(args: list[str]) -> int:
    """``kdrun <args>`` through the real entry point (``kdrun.cli.main``: preflight, Hydra, the pipeline) in this
    process and its folder; its exit status. Output goes to this process's stdout/stderr (read it with
    ``capsys``); an uncaught exception propagates. What the run changes in this process is put back."""
    with kdrun_globals_restored():
        return _exit_status(args)


def _exit_status(args: list[str]) -> int:
    from kdrun import cli

    sys.argv = ["kdrun", *args]
    try:
        cli.main()
    except SystemExit as e:  # as the interpreter turns it into a status
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def kdrun_globals_restored():
    """Put back what a kdrun run changes in its process: working folder, environment, argv, signal
    handlers, warning filters, logging (Hydra configures the root logger and opens <run>/kdrun.log),
    torch's thread count and the global RNGs, Hydra's singletons and kdrun's own module state."""
    import random

    import numpy as np
    import torch
    from hydra.core.hydra_config import HydraConfig

    cwd, environ, argv, argv_items = os.getcwd(), dict(os.environ), sys.argv, list(sys.argv)
    handlers = {s: signal.getsignal(s) for s in _settable_signals()}
    threads, rng = torch.get_num_threads(), (torch.get_rng_state(), random.getstate(), np.random.get_state())
    hydra_cfg, logs = HydraConfig.instance().cfg, _logging_state()
    _reset_kdrun_state()
    try:
        with warnings.catch_warnings():
            yield
    finally:
        _reset_kdrun_state()
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = hydra_cfg
        _restore_logging(logs)
        for s, handler in handlers.items():
            if signal.getsignal(s) is not handler and handler is not None:
                signal.signal(s, handler)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        argv[:] = argv_items
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)


def _settable_signals() -> list[signal.Signals]:
    return [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


def _reset_kdrun_state() -> None:
    """kdrun's module-level state of one invocation: the folder it created, the last sweep's outcome and
    its workers' warm-up, the consoles (they read COLUMNS when made)."""
    from kdrun import cli, logs
    from kdrun.config import sweep_workers
    from kdrun.report import sweep_callback

    cli._new_run_dir = None
    cli._new_parents.clear()
    sweep_callback.LAST_SWEEP = None
    sweep_workers._warmup = None
    logs._console = logs._out = None


def _logging_state() -> tuple:
    from kdrun.logs import logger_state

    return logger_state(), logging.raiseExceptions, logging.root.manager.disable  # kdrun.cli.main clears raiseExceptions


def _restore_logging(before: tuple) -> None:
    """The loggers as they were before the run (kdrun.logs.restore_loggers), and logging's own switches."""
    from kdrun.logs import restore_loggers

    state, logging.raiseExceptions, disable = before
    restore_loggers(state)
    logging.disable(disable)


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to start kdrun from (its outputs/ and data/ land here)."""
    return tmp_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long end-to-end (slow) tests first, the short ones after them: under ``-n 2`` the short tests
    then fill both workers to the end, instead of a long test running alone at the tail while the
    other worker idles (the suite's wall time varied 344-367 s with the same tests in file order).
    A stable sort: each group keeps its order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
