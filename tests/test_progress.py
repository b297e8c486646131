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


def test_the_first_steps_project_the_stage_and_the_run(monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    reporter = ProgressReporter(rich=False)
    reporter.set_position(1, 5)
    reporter.start_stage("teacher", 240, 1)
    reporter.start_epoch(1, 391)  # the CIFAR recipe: 391 steps of 128 per epoch, 240 epochs
    clock[0] += 20.0  # 20 steps in 20 s
    with caplog.at_level(logging.INFO, logger="kdrun"):
        reporter.batch(20, 4.0, 10.0)
        reporter.batch(40, 3.9, 11.0)  # projected once per stage
    lines = [r.getMessage() for r in caplog.records if "pace" in r.getMessage()]
    assert len(lines) == 1
    # 391 s per epoch; the stage: 240 epochs = 26.1 h; the run: this and 4 more stages like it = 5.4 days
    assert "7 min per epoch" in lines[0] and "stage ≈ 26.1 h" in lines[0]
    assert "rest of the run ≈ 5.4 days" in lines[0] and "4 later stages" in lines[0]


def test_short_stages_print_no_projection(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    reporter = ProgressReporter(rich=False)
    reporter.set_position(5, 5)
    reporter.start_stage("quantized", 1, 1)
    reporter.start_epoch(1, 3)
    clock[0] += 0.3
    with caplog.at_level(logging.INFO, logger="kdrun"):
        reporter.batch(3, 1.0, 50.0)
    assert not [r for r in caplog.records if "pace" in r.getMessage()]
