"""Several trackers at once, each one's failure a single warning line: results on disk are never lost to a tracker.

A tracker that raises (its server is down, its package is missing, its disk is full) is reported once, with the
tracker's name and the error in one line, and is not called again for this run; the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kdrun.io import one_line
from kdrun.loggers.base import Logger, RunInfo

log = logging.getLogger("kdrun")


class Loggers:
    def __init__(self, loggers: list[Logger]) -> None:
        self.active = list(loggers)
        self.failed: dict[str, str] = {}  # name -> the one line said about it

    @property
    def names(self) -> list[str]:
        return [lg.name for lg in self.active]

    def start(self, run: RunInfo) -> None:
        self._each("start", run)

    def log_epoch(self, stage: str, epoch: int, metrics: dict[str, Any]) -> None:
        self._each("log_epoch", stage, epoch, metrics)

    def log_final(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self._each("log_final", hparams, metrics)

    def log_files(self, files: list[tuple[Path, str]]) -> None:
        self._each("log_files", [(p, folder) for p, folder in files if Path(p).is_file()])

    def close(self, status: str) -> None:
        self._each("close", status)
        self.active = []

    def _each(self, method: str, *args: Any) -> None:
        for logger in list(self.active):
            try:
                getattr(logger, method)(*args)
            except Exception as e:  # noqa: BLE001 - any tracker error: one line, the run goes on
                self.active.remove(logger)
                self.failed[logger.name] = one_line(e)
                log.warning("logger=%s failed (%s: %s); the run goes on without it (its results are on disk)",
                            logger.name, type(e).__name__, one_line(e))
                if method != "close":
                    _close_quietly(logger)


def _close_quietly(logger: Logger) -> None:
    try:
        logger.close("failed")
    except Exception:  # noqa: BLE001 - already reported once
        pass
