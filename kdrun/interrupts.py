"""Stopping a run from outside: Ctrl-C (SIGINT), SIGTERM and SIGHUP end it the same way.

SIGTERM is what ``kill``, ``timeout``, ``docker stop`` and a cluster scheduler ending or preempting a
job send; SIGHUP is what a run started from an ssh session or a terminal gets when the session drops.
Python's default for both ends the process on the spot, leaving the run's results.json at "running"
and no word anywhere. kdrun turns them into :class:`Terminated`, a ``KeyboardInterrupt``, so every
place that handles Ctrl-C handles them too: the run is marked interrupted, its checkpoints stay, one
line says how to resume (in kdrun.log as well: after SIGHUP there is no terminal to read it on), and
the exit status is 128 + the signal's number (130, 143 or 129), as a shell reports a process a signal
ended. (PyTorch Lightning's signal connector does the same for SIGTERM.) A run meant to outlive its
session is started detached (``nohup kdrun ... &``, or inside tmux/screen): then no SIGHUP comes.
"""

from __future__ import annotations

import signal
import threading

# The signals that stop a run as Ctrl-C does, and how its one line names each
STOP_SIGNALS = {signal.SIGTERM: "terminated (SIGTERM)",
                signal.SIGHUP: "hung up (SIGHUP: its terminal or ssh session closed)"}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop as on Ctrl-C."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


def stop_on_sigterm() -> None:
    """From now on, SIGTERM and SIGHUP raise :class:`Terminated` in this process's main thread. Each is
    left alone where it already has a handler of its own (a program that embeds kdrun; ``nohup``, which
    ignores SIGHUP) or off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _raise_terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 after SIGTERM, 129 after SIGHUP, 130 after Ctrl-C."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def how(interrupt: KeyboardInterrupt) -> str:
    """How the run was stopped, for its one line: "interrupted", "terminated (SIGTERM)", "hung up (SIGHUP...)"."""
    return STOP_SIGNALS.get(interrupt.signum, "interrupted") if isinstance(interrupt, Terminated) else "interrupted"
