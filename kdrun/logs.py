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
