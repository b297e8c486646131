"""Console logging: rich in a terminal (sharing the console with the progress bars), plain otherwise."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

_console: Console | None = None
_out: Console | None = None


def console() -> Console:
    """The console for logs and progress bars (stderr), shared so bars and log lines don't collide."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


def output() -> Console:
    """Where results (tables) go: stdout, as wide as the terminal (``COLUMNS`` when set; 80 for a pipe
    or a file). The tables printed here fit 80 columns; table.md has every column."""
    global _out
    if _out is None:
        _out = Console()
    return _out


def console_handler() -> logging.Handler:
    if console().is_terminal:
        from rich.logging import RichHandler

        # the same [hh:mm:ss] stamp as the plain lines below (rich's default adds the date)
        return RichHandler(console=console(), show_path=False, show_level=False, markup=False,
                           log_time_format="[%H:%M:%S]")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    return handler


def logger_state() -> dict[logging.Logger, tuple]:
    """Every logger's handlers, level, propagation and switch, as :func:`restore_loggers` puts them back."""
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    return {lg: (list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers}


def restore_loggers(state: dict[logging.Logger, tuple]) -> None:
    """The loggers of ``state`` as they were (Hydra's dictConfig resets the root logger and the ones it names),
    the handlers added since (a run's console, its kdrun.log) closed. Loggers created since (a library imported
    for the first time) keep what their library gave them."""
    kept = {h for handlers, *_ in state.values() for h in handlers}
    for lg, (handlers, level, propagate, disabled) in state.items():
        for h in lg.handlers:
            if h not in kept:
                h.close()
        lg.handlers, lg.propagate, lg.disabled = list(handlers), propagate, disabled
        lg.setLevel(level)  # also clears the loggers' cached levels

