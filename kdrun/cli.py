"""The ``kdrun`` command: a Hydra app, with a pre-flight check that turns config mistakes into one line.

``main`` first composes the config the way Hydra will and checks it (unknown options, bad
values, a run or sweep directory that holds a different run); only then does Hydra create the
run directory and call :func:`hydra_app`. So bad input never creates or overwrites anything.
With ``-m`` it also names the sweep's folders after the command (kdrun/config/sweeps.py), so the same
command finds its earlier jobs again: :func:`hydra_app` skips those that completed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from kdrun.config.headline import apply_benchmark_default
from kdrun.config.checked import forget
from kdrun.config.hydra_flags import canonical_args, refuse_unsafe_flags
from kdrun.config.override_values import expand_home
from kdrun.config.preflight import PairCheck, check_pairs_here, passes_through, parse_overrides, preflight
from kdrun.conf_dir import config_dir
from kdrun.config.store import open_model_options, presets_needed, register_configs, register_user_archs
from kdrun.config.sweep_workers import WorkerCheckFailed, start_workers
from kdrun.config.sweeps import is_multirun, jobs_at_once, quote, sweep_arguments
from kdrun.environment import PARALLEL_JOBS_ENV, SWEEP_PID_ENV, started_by_torchrun
from kdrun.errors import KdrunError
from kdrun.interrupts import exit_status, how, stop_on_sigterm
from kdrun.parent_watch import die_with_parent
from kdrun.runs.folders import check_run_folder, check_sweep_folder, claim_run_folder
from kdrun.runs.lock import reserve_run_dir, run_dir_lock
from kdrun.version import __version__

log = logging.getLogger("kdrun")
_new_run_dir: Path | None = None  # set by main(): the run directory this invocation creates, if any
_new_parents: list[Path] = []  # the folders above it that do not exist yet
_run_folder_checked = False  # set by main(): the single run's folder was checked before Hydra wrote into it
_last_error: str | None = None  # the one line fail() printed last (call() raises it)
_last_run_dir: Path | None = None  # the run folder the last hydra_app used (call() returns it)
_last_exception: BaseException | None = None  # an unexpected error of the last run (call() re-raises it)
# What a sweep's jobs import before their first step: its worker processes import them while they
# start, all at once, while this process composes the sweep (kdrun/config/sweep_workers.py)
WORKER_MODULES = ("kdrun.cli", "kdrun.runs.pipeline")
PRINTS_CONFIG = ("-c", "--cfg", "-p", "--package", "--resolve", "--info", "-i")
# Hydra's modes besides a run: one at a time, so none of them goes with -m
OTHER_MODES = ("-c", "--cfg", "--info", "-i", "-sc", "--shell-completion")


CONFIG_DIR = config_dir()


def fail(message: str) -> None:
    global _last_error
    _last_error = message
    try:
        print(f"kdrun: error: {message}", file=sys.stderr)
    except OSError:  # a terminal that hung up (SIGHUP): the line cannot be shown; kdrun.log has what matters
        pass


def log_to_file(message: str) -> None:
    """``message`` as a warning in the run's log files (kdrun.log) only: the console already gets it
    from :func:`fail`, once."""
    record = log.makeRecord(log.name, logging.WARNING, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_app(cfg: DictConfig) -> float | None:
    from kdrun.runs.launch import launcher_rank
    from kdrun.distributed.state import is_main

    global _last_run_dir
    hc = HydraConfig.get()
    run_dir = _last_run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and os.environ.get(SWEEP_PID_ENV) == str(os.getppid()):  # a parallel sweep's worker process
        stop_on_sigterm()  # a worker's main thread runs the job: stop it as the sweep's own process stops
        die_with_parent()  # a sweep killed outright (kill -9) leaves no worker training (kdrun/parent_watch.py)
    with contextlib.ExitStack() as held:
        try:  # one process per run folder (data-parallel: rank 0 holds it for all ranks)
            if is_main() and launcher_rank() == 0:  # the group may not exist yet: ask the launcher
                held.enter_context(run_dir_lock(run_dir))
                claim_run_folder(run_dir, hc, checked=_run_folder_checked and not multirun)  # what kdrun may touch
        except KdrunError as e:  # the folder is another process's, or holds another's files: leave it alone
            fail(str(e))
            if multirun:
                return None
            sys.exit(2)
        return _run_job(cfg, run_dir, multirun)


def _run_job(cfg: DictConfig, run_dir: Path, multirun: bool) -> float | None:
    global _last_exception
    from kdrun.distributed.state import is_main
    from kdrun.runs.launch import run_data_parallel
    from kdrun.runs.pipeline import run
    from kdrun.runs.status import completed_results, set_aside_invalid

    try:
        invalid = set_aside_invalid(run_dir) if is_main() else None  # never counted as completed, nor lost
    except KdrunError as e:
        fail(str(e))
        if multirun:
            return None
        sys.exit(2)
    if invalid:
        log.warning("%s; set aside as %s, running it again", invalid, run_dir / "results.json.invalid")
    results = completed_results(run_dir)
    if results is not None:
        _skip(run_dir, results, multirun)
    else:
        try:
            results = run_data_parallel(run, cfg, run_dir)
        except KdrunError as e:
            fail(str(e))
            if multirun:
                mark_failed(run_dir, str(e))  # a sweep reports failed jobs beside the others
                return None
            discard_if_nothing_ran(run_dir, str(e))
            sys.exit(2)
        except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP (kdrun/interrupts.py)
            from kdrun.distributed.state import is_main  # noqa: F811 - as the rank sees itself now

            mark_status(run_dir, "interrupted")
            again = "run the same command again" if multirun else f"run the same command with hydra.run.dir={run_dir}"
            if is_main():  # torchrun: every rank got the signal; one line says it
                line = f"{how(e)}; to resume, {again}"
                log_to_file(line)  # after SIGHUP the terminal is gone: kdrun.log keeps the line
                fail(line)
            sys.exit(exit_status(e))
        except OSError as e:  # a write kdrun does not wrap itself (a library's file): still one line
            message = f"{e.strerror or type(e).__name__}: {e.filename}" if e.filename else f"{type(e).__name__}: {e}"
            fail(f"could not complete the run ({message}); what was written before is kept")
            mark_failed(run_dir, message)
            if multirun:
                return None
            sys.exit(1)
        except Exception as e:
            _last_exception = e
            mark_failed(run_dir, f"{type(e).__name__}: {e}")
            if not multirun:
                raise
            # Hydra would re-raise it after the sweep and skip the end-of-sweep report; the job's
            # log keeps the traceback, results.json the error, and kdrun exits non-zero at the end.
            log.exception("job %s failed", run_dir)
            return None
    return sweep_value(results)


def sweep_value(results: dict) -> float | None:
    """What a sweeper optimizes (Optuna maximizes it): kdrun/report/study.py's objective."""
    from kdrun.report.study import objective

    return objective(results)


def mark_failed(run_dir: Path, error: str) -> None:
    mark_status(run_dir, "failed", error)


def mark_status(run_dir: Path, status: str, error: str | None = None) -> None:
    from kdrun.distributed.state import is_main
    from kdrun.runs.status import mark

    if is_main():  # data-parallel: rank 0 (or the process that spawned the ranks) owns results.json
        mark(run_dir, status, error)


def discard_if_nothing_ran(run_dir: Path, error: str) -> None:
    """A single run that failed during setup (missing data, bad checkpoint) leaves no half-made directory."""
    from kdrun.distributed.state import is_main

    if not is_main():
        return
    if _new_run_dir is not None and run_dir.resolve() == _new_run_dir and not (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        _remove_empty_parents(run_dir.resolve())
    else:
        mark_failed(run_dir, error)


def _remove_empty_parents(run_dir: Path) -> None:
    """Folders above the run folder that this invocation created (``outputs/runs/``), if left empty."""
    parent = run_dir.parent
    while _new_parents and parent in _new_parents:
        try:
            parent.rmdir()  # only if empty: a concurrent run's folder stays
        except OSError:
            return
        parent = parent.parent


def _skip(run_dir: Path, results: dict, multirun: bool) -> None:
    log.info("%s: completed before, skipping (delete its results.json to run it again)", run_dir)
    if not multirun:
        from kdrun.logs import output
        from kdrun.report.files import TABLE_MD
        from kdrun.report.table import rich_table, table_rows, table_title

        output().print(rich_table(table_rows(results), title=table_title(results) + " (completed before)"))
        output().print(f"full table (every column, footnotes): {run_dir / TABLE_MD}", highlight=False,
                       soft_wrap=True, markup=False)


def main() -> None:
    try:
        _main()
    finally:
        forget()  # the configs this command checked count for its own jobs only (kdrun/config/checked.py)


def _main() -> None:
    # A log file on a full or read-only disk: no "--- Logging error ---" traceback per record (the
    # library's advice for production); the write that matters fails in one line of its own.
    logging.raiseExceptions = False
    global _run_folder_checked
    _run_folder_checked = False
    stop_on_sigterm()  # kill, timeout, a scheduler's end of job: stop as on Ctrl-C (kdrun/interrupts.py)
    args = canonical_args(sys.argv[1:])  # Hydra's flags in full, each with its value (kdrun/config/hydra_flags.py)
    try:
        refuse_unsafe_flags(args)  # --experimental-rerun unpickles a file: refused before anything reads it
        register_options(args)
    except KdrunError as e:
        fail(str(e))
        sys.exit(2)
    if "--version" in args:  # kdrun's own version, not Hydra's (Hydra's: kdrun --hydra-help)
        print(f"kdrun {__version__} (Hydra {hydra.__version__}, Python {platform.python_version()})")
        return
    if args and args[0].split("=")[0] == "--list":
        _print_listing(args)
        return
    if passes_through(args):  # --help, --cfg job, ...: Hydra answers, nothing runs
        mode = next((a.split("=")[0] for a in args if a.split("=")[0] in OTHER_MODES), None)
        if mode and is_multirun(args):  # Hydra raised a ValueError traceback
            fail(f"-m cannot be combined with {mode} (Hydra does one at a time); to see one job's config, leave "
                 f"out -m and give each swept option one value, e.g. kdrun --cfg job distill.T=1")
            sys.exit(2)
        sys.argv = [sys.argv[0], *_printed_config_args(args)]
        hydra_app()
        return
    try:
        args, cfg = checked_arguments(args, _plan_parallel_jobs if is_multirun(args) else check_pairs_here)
        check_output_folder(args, cfg)
        args = _join_torchrun(_pin_run_dir(args, cfg), cfg)
    except KdrunError as e:
        fail(str(e))
        sys.exit(2)
    except KeyboardInterrupt as e:
        fail(f"{how(e)} while checking the command; nothing ran")
        sys.exit(exit_status(e))
    sys.argv = [sys.argv[0], *args]
    try:
        hydra_app()
    except WorkerCheckFailed as e:  # raised before any job was launched (conf/config.yaml's await_workers)
        fail(str(e))
        sys.exit(2)
    except KeyboardInterrupt as e:  # a job catches its own (_run_job): this is a parallel sweep's own process
        _stop_interrupted_sweep(cfg, e)
    _exit_if_jobs_failed()


def call(args: list[str]) -> Path:
    """``kdrun <args>`` from Python (kdrun.run): exactly main()'s path in this process; returns the run folder.
    What main() would print as its one error line and exit with is raised as a KdrunError with that line
    (an interrupt as KeyboardInterrupt)."""
    global _new_run_dir, _last_error, _last_run_dir, _last_exception
    _new_run_dir, _last_error, _last_run_dir, _last_exception = None, None, None, None
    _new_parents.clear()
    argv = sys.argv
    sys.argv = [argv[0] if argv else "kdrun", *args]
    try:
        main()
    except SystemExit as e:
        if _last_exception is not None:  # Hydra printed it and exited 1: Python callers get the exception
            raise _last_exception from None
        if e.code not in (0, None):
            message = _last_error or f"kdrun {' '.join(args)} exited with status {e.code}"
            if e.code in (130, 143):
                raise KeyboardInterrupt(message) from None
            raise KdrunError(message) from None
    finally:
        sys.argv = argv
    if _last_run_dir is None:
        raise KdrunError(f"kdrun {' '.join(args)} ran nothing (a flag that only prints?)")
    return _last_run_dir


def _stop_interrupted_sweep(cfg: DictConfig, interrupt: KeyboardInterrupt) -> None:
    """Ctrl-C (or SIGTERM) in a parallel sweep's own process. joblib has stopped the workers by now; a job that was
    killed before it could record its interruption (the signal went to this process alone) would keep
    "running" or no status at all: it is marked interrupted, so its folder tells the truth (the next
    run of the same command resumes it either way). Submitit's jobs are not this process's to stop: Slurm
    jobs run on by design, and so do local ones the signal did not reach (they ignore SIGTERM, waiting for
    Slurm's preemption signal); their folders are left to them, and the line says so."""
    from kdrun.runs.status import mark_if_unfinished

    if "submitit" in str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or ""):
        fail(f"sweep {how(interrupt)}; its submitit jobs run on unless the signal reached them too (scancel "
             f"Slurm jobs; local ones ignore SIGTERM: kill -9 them); run the same command again to resume or "
             f"collect them")
        sys.exit(exit_status(interrupt))
    try:
        sweep_dir = Path(str(cfg.hydra.sweep.dir))
    except Exception:  # noqa: BLE001 - an unresolvable folder: nothing to mark, the line below still holds
        sweep_dir = None
    job_dirs = sorted(d.parent for d in sweep_dir.glob("**/.hydra")) if sweep_dir and sweep_dir.is_dir() else []
    for job_dir in job_dirs:  # the folders Hydra made for the jobs that started
        mark_if_unfinished(job_dir, "interrupted")
    fail(f"sweep {how(interrupt)}; finished jobs are kept; to resume the others, run the same command again")
    sys.exit(exit_status(interrupt))


def check_output_folder(args: list[str], cfg: DictConfig) -> None:
    """The run or sweep folder holds nothing of another's where kdrun would write (kdrun/runs/folders.py)."""
    global _run_folder_checked
    if is_multirun(args):
        check_sweep_folder(Path(str(cfg.hydra.sweep.dir)))
    else:
        check_run_folder(Path(str(cfg.hydra.run.dir)), cfg.hydra)
        _run_folder_checked = True


def _plan_parallel_jobs(cfg: DictConfig, pair_jobs: list[DictConfig], overrides: list) -> None:
    """Preflight's last check for a sweep (``overrides``: its command line's, parsed). Its jobs learn how many run at
    once (they share the cores and pack the GPUs by it); in a parallel sweep the checks that import
    torch (model pairs, GPU packing) run in the launcher's worker processes, started here and warmed in
    the background while Hydra composes the sweep; their result is awaited before Hydra launches any job
    (kdrun/config/sweep_workers.py), so that this process, which only launches and reports, never imports torch."""
    at_once = jobs_at_once(cfg.hydra.get("launcher"), overrides)
    os.environ[PARALLEL_JOBS_ENV] = str(at_once)  # inherited by the launcher's worker processes
    os.environ[SWEEP_PID_ENV] = str(os.getpid())  # their parent: they die with it (kdrun/parent_watch.py)
    if at_once == 1:
        check_pairs_here(cfg, pair_jobs)
        return
    packing = None
    if cfg.device.type != "cpu" and cfg.device.get("nproc", 1) == 1:
        packing = {"jobs": at_once, "job_memory": float(cfg.device.get("job_memory", 4))}
    start_workers(cfg.hydra.launcher, at_once, list(WORKER_MODULES), pair_jobs, packing)


def checked_arguments(args: list[str], pair_check: PairCheck = check_pairs_here) -> tuple[list[str], DictConfig]:
    """The command line as Hydra will get it (the headline rule, a sweep's stable folders) and the
    composed, checked config of its (first) job. Raises KdrunError; creates nothing but, with
    main()'s ``pair_check``, a parallel sweep's worker processes. Each override is parsed once."""
    register_options(args)  # main() did already; kdrun.compose() (kdrun/api.py) comes here first
    args = expand_home(args)  # '~/ck/t.pt' -> /home/me/ck/t.pt, for every key (kdrun/config/override_values.py)
    args = open_model_options(args)
    parsed = parse_overrides([a for a in args if not a.startswith("-")])
    for rewrite in (apply_benchmark_default, sweep_arguments):  # each adds overrides at the end, or none
        longer = rewrite(args, parsed)
        parsed = parsed + parse_overrides(longer[len(args):])
        args = longer
    return args, preflight(CONFIG_DIR, args, pair_check, parsed)


def register_options(args: list[str]) -> None:
    """The config options ``args`` can use, into Hydra's ConfigStore: the generated ones (the presets where
    the command can use them) and the user's own architectures. Idempotent; the one place that decides it."""
    register_configs(presets=presets_needed(args))
    register_user_archs(args)


def _print_listing(args: list[str]) -> None:
    """``kdrun --list [category]`` / ``--list=category``: one line per choice, then exit."""
    from kdrun.config.listing import listing

    category = args[0].split("=", 1)[1] if "=" in args[0] else (args[1] if len(args) > 1 else None)
    if category is not None and ("=" in category or category.startswith("-")):  # --list hydra.searchpath=[...]
        category = None
    try:
        text = listing(category, CONFIG_DIR, args)
    except KdrunError as e:
        fail(str(e))
        sys.exit(2)
    print(text, end="")


def _printed_config_args(args: list[str]) -> list[str]:
    """``--cfg job`` and friends print the config the same command would run (the headline rule applied)."""
    if not any(a.split("=")[0] in PRINTS_CONFIG for a in args):
        return args
    args = expand_home(args)
    try:
        args = open_model_options(args)
        return apply_benchmark_default(args, parse_overrides([a for a in args if "=" in a and not a.startswith("-")]))
    except KdrunError:
        return args  # Hydra reports the bad override itself


def _pin_run_dir(args: list[str], cfg: DictConfig) -> list[str]:
    """A single run that creates its directory: remember it (see discard_if_nothing_ran) and pin it,
    as Hydra would otherwise evaluate the start time in its name again a moment later."""
    global _new_run_dir
    run_dir = Path(str(cfg.hydra.run.dir))
    if is_multirun(args):
        return args
    pinned = any(a.startswith("hydra.run.dir=") for a in args)
    if cfg.get("name") is None and not pinned:  # an automatic name: reserve a folder no other process shares
        if started_by_torchrun() and os.environ.get("RANK", "0") != "0":
            return args  # rank 0 reserves it; _join_torchrun hands its name to every rank
        _new_parents.extend(p for p in run_dir.resolve().parents if not p.exists())
        _new_run_dir = reserve_run_dir(run_dir).resolve()
        with read_write(cfg):
            cfg.hydra.run.dir = str(_new_run_dir)
        return [*args, f"hydra.run.dir={quote(str(_new_run_dir))}"]
    if run_dir.exists():
        return args
    _new_run_dir = run_dir.resolve()
    _new_parents.extend(p for p in _new_run_dir.parents if not p.exists())
    if pinned:
        return args
    return [*args, f"hydra.run.dir={quote(str(_new_run_dir))}"]


def _join_torchrun(args: list[str], cfg: DictConfig) -> list[str]:
    """Under torchrun, join the process group now and use rank 0's run (or sweep) directory."""
    if not started_by_torchrun():
        return args
    from kdrun.runs.launch import agree_on_run_dir, init_from_environment

    if not init_from_environment(cfg.device):
        return args
    return agree_on_run_dir(args, str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir))


def _exit_if_jobs_failed() -> None:
    from kdrun.report import sweep_callback

    outcome = sweep_callback.LAST_SWEEP
    if outcome is not None and outcome.report_error:
        fail(f"the sweep's report could not be made: {outcome.report_error}")
        sys.exit(1)
    if outcome is not None and outcome.failed:
        fail(f"{len(outcome.failed)} job(s) of the sweep failed or hold invalid files (see the report above and "
             f"{outcome.failed[0] / 'kdrun.log'}); re-run the same command to retry them")
        sys.exit(1)


if __name__ == "__main__":
    main()
