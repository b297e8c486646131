"""Progress: stage k/n, and the projected time of the stage and of the run after the first steps."""

from __future__ import annotations

import logging

import pytest

from kdrun.engine import progress
from kdrun.engine.progress import ProgressReporter, duration


@pytest.mark.parametrize("seconds, text", [(45, "45 s"), (720, "12 min"), (3.4 * 3600, "3.4 h"),
                                           (2.9 * 86400, "2.9 days")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def started(monkeypatch, position: tuple[int, int], stage: str, epochs: int, batches: int, seconds: float):
    """A plain reporter at the first epoch of ``stage``, ``seconds`` after the epoch began (a fake clock)."""
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    reporter = ProgressReporter(rich=False)
    reporter.set_position(*position)
    reporter.start_stage(stage, epochs, 1)
    reporter.start_epoch(1, batches)
    clock[0] += seconds
    return reporter


def test_the_first_steps_project_the_stage_and_the_run(monkeypatch, caplog):
    # the CIFAR recipe: 391 steps of 128 per epoch, 240 epochs; 20 steps in 20 s
    reporter = started(monkeypatch, (1, 5), "teacher", 240, 391, 20.0)
    with caplog.at_level(logging.INFO, logger="kdrun"):
        reporter.batch(20, 4.0, 10.0)
        reporter.batch(40, 3.9, 11.0)  # projected once per stage
    lines = [r.getMessage() for r in caplog.records if "pace" in r.getMessage()]
    assert len(lines) == 1
    # 391 s per epoch; the stage: 240 epochs = 26.1 h; the run: this and 4 more stages like it = 5.4 days
    assert "7 min per epoch" in lines[0] and "stage ≈ 26.1 h" in lines[0]
    assert "rest of the run ≈ 5.4 days" in lines[0] and "4 later stages" in lines[0]


def test_short_stages_print_no_projection(monkeypatch, caplog):
    reporter = started(monkeypatch, (5, 5), "quantized", 1, 3, 0.3)
    with caplog.at_level(logging.INFO, logger="kdrun"):
        reporter.batch(3, 1.0, 50.0)
    assert not [r for r in caplog.records if "pace" in r.getMessage()]
