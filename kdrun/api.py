"""The Python API: ``kdrun.run``, ``kdrun.compose``, ``kdrun.load`` -- the command line's second door.

``kdrun.run(["method=rkd", "dataset=digits"])`` is ``kdrun method=rkd dataset=digits``: the same entry point
(kdrun/cli.py's ``main``: the headline rule, composition, every check, Hydra's run folder, the pipeline) runs
in this process, and its result is read back from the files it wrote (kdrun/report/result.py). An error is
raised as :class:`KdrunError` whose message is the one line the command prints; Ctrl-C as KeyboardInterrupt.
What a run changes in the process (argv, signal handlers, logging, Hydra's singletons, torch's thread count) is
put back afterwards, so a notebook can call it again and again. Sweeps stay on the command line (``kdrun -m``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError
from kdrun.logs import logger_state, restore_loggers
from kdrun.runs.result import Result
from kdrun.runs.stage_model import load_stage_model
from kdrun.config.sweeps import MULTIRUN_FLAGS, quote

__all__ = ["Result", "compose", "load", "run"]


def run(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Result:
    """Run the experiment ``kdrun <overrides>`` would run (in ``run_dir``, or a new outputs/runs/<time>/;
    an existing run folder of the same config resumes) and return its :class:`Result`."""
    args = _arguments(overrides)
    if run_dir is not None:
        args.append(f"hydra.run.dir={quote(str(Path(run_dir).absolute()))}")
    from kdrun import cli

    with _process_state_restored():
        where = cli.call(args)
    return Result.of(where)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``kdrun <overrides>`` would run, composed and checked as the command checks it (the model
    pairs too); nothing is created or run. Raises :class:`KdrunError` with the command's one line."""
    args = _arguments(overrides)
    from kdrun import cli

    with _process_state_restored():
        _, cfg = cli.checked_arguments(args)
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def load(run_dir: str | Path, stage: str = "distilled") -> Any:
    """A row of a finished run as a ready model: an ``nn.Module`` on the CPU in eval mode with the weights its
    top-1 was measured with (``stage="quantized"``: the int8 program, ``torch.export``'s module)."""
    return load_stage_model(run_dir, stage)


def _arguments(overrides: Sequence[str]) -> list[str]:
    if isinstance(overrides, str):
        raise KdrunError(f"overrides={overrides!r}: give a list of overrides, e.g. [\"method=rkd\", \"dataset=digits\"]")
    args = [str(o) for o in overrides]
    flags = [a for a in args if a.startswith("-")]
    if any(a in MULTIRUN_FLAGS for a in flags):
        raise KdrunError("kdrun.run runs one experiment; sweeps stay on the command line: kdrun -m ...")
    if flags:
        raise KdrunError(f"{flags[0]}: kdrun.run takes config overrides only (key=value); "
                         f"for Hydra's flags use the command line")
    return args


@contextlib.contextmanager
def _process_state_restored() -> Iterator[None]:
    """Put back what a run changes in this process (the command line's main() owns its process)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved = logger_state()
    raise_exceptions, hydra_cfg = logging.raiseExceptions, HydraConfig.instance().cfg
    threads = _torch_threads()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = hydra_cfg
        restore_loggers(saved)
        logging.raiseExceptions = raise_exceptions
        if threading.current_thread() is threading.main_thread():
            for s, handler in handlers.items():
                if handler is not None and signal.getsignal(s) is not handler:
                    signal.signal(s, handler)
        if threads is not None and "torch" in sys.modules and sys.modules["torch"].get_num_threads() != threads:
            sys.modules["torch"].set_num_threads(threads)


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")  # never imported here: a run imports it, compose() may not
    return torch.get_num_threads() if torch is not None else None


