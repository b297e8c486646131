"""Stopping a run from outside: Ctrl-C (SIGINT) and SIGTERM end it the same way.

SIGTERM is what ``kill``, ``timeout``, ``docker stop`` and a cluster scheduler ending or preempting a
job send. Python's default for it ends the process on the spot, leaving the run's results.json at
"running" and no word on the terminal. kdrun turns it into :class:`Terminated`, a ``KeyboardInterrupt``,
so every place that handles Ctrl-C handles it too: the run is marked interrupted, its checkpoints stay,
one line says how to resume, and the exit status is 128 + the signal's number (130 or 143), as a shell
reports a process a signal ended. (PyTorch Lightning's signal connector does the same for SIGTERM.)
"""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as on Ctrl-C."""


def stop_on_sigterm() -> None:
    """From now on, SIGTERM raises :class:`Terminated` in this process's main thread. Left alone where
    SIGTERM already has a handler of its own (a program that embeds kdrun) or off the main thread."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def how(interrupt: KeyboardInterrupt) -> str:
    """How the run was stopped, for its one line: "interrupted" or "terminated (SIGTERM)"."""
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
