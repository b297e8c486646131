"""Progress: stage k/n, and the projected time of the stage and of the run after the first steps."""

from __future__ import annotations

import logging

import pytest

from kdrun.engine import progress
from kdrun.engine.progress import ProgressReporter, duration


@pytest.mark.parametrize("seconds, text", [(0.42, "0.4 s"), (45, "45 s"), (720, "12 min"), (3.4 * 3600, "3.4 h"),
                                           (2.9 * 86400, "2.9 days")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def started(monkeypatch, position: tuple[int, int], stage: str, epochs: int, batches: int):
    """A plain reporter at the first epoch of ``stage``, with a fake clock (``clock[0]``, seconds)."""
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    reporter = ProgressReporter(rich=False)
    reporter.set_position(*position)
    reporter.start_stage(stage, epochs, 1)
    reporter.start_epoch(1, batches)
    return reporter, clock


def projections(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "/epoch" in r.getMessage()]


def test_a_long_epoch_is_projected_from_its_measured_steps_not_the_warm_up(monkeypatch, caplog):
    # the CIFAR recipe on a CPU: 391 steps per epoch, 240 epochs; the first 20 steps took 60 s (warm-up),
    # the next ones 1 s each
    reporter, clock = started(monkeypatch, (1, 5), "teacher", 240, 391)
    with caplog.at_level(logging.INFO, logger="kdrun"):
        clock[0] += 60.0
        reporter.batch(20, 4.0, 10.0)  # the warm-up: no projection from it
        assert not projections(caplog)
        for step in (40, 60):
            clock[0] += 20.0
            reporter.batch(step, 3.9, 11.0)  # projected once per stage
    lines = projections(caplog)
    assert len(lines) == 1
    # 391 s per epoch; the stage: 240 epochs = 26.1 h; the run: this and 4 more stages like it = 5.4 days
    assert "7 min/epoch (measured steps)" in lines[0] and "stage ≈ 26.1 h" in lines[0]
    assert "run ≈ 5.4 days if 4 more stages match" in lines[0]


def test_a_short_epoch_is_projected_at_its_end_from_its_steps_and_its_evaluation(monkeypatch, caplog):
    # the default run: 63 steps per epoch, 30 epochs; a slow first refresh (the warm-up: 5 s), then 10 ms per
    # step, then 0.5 s of evaluation: 1.1 s per epoch, not the 5 s the first steps' pace says
    reporter, clock = started(monkeypatch, (3, 5), "self_distilled", 30, 63)
    with caplog.at_level(logging.INFO, logger="kdrun"):
        clock[0] += 5.0
        reporter.batch(20)
        for step, steps in ((40, 20), (60, 20), (63, 3)):
            clock[0] += 0.01 * steps
            reporter.batch(step)
        assert not projections(caplog)
        clock[0] += 0.5
        reporter.end_epoch(1, 30, "")
    (line,) = projections(caplog)
    assert "1.1 s/epoch (first epoch)" in line and "stage ≈ 34 s" in line


def test_short_stages_print_no_projection(monkeypatch, caplog):
    reporter, clock = started(monkeypatch, (5, 5), "quantized", 1, 3)
    with caplog.at_level(logging.INFO, logger="kdrun"):
        clock[0] += 0.3
        reporter.batch(3, 1.0, 50.0)
        reporter.end_epoch(1, 1, "")
    assert not projections(caplog)


@pytest.mark.parametrize("columns", [80, 100])
def test_every_bar_line_fits_and_shows_its_times_whole(columns):
    """A stage's bars at 80 and 100 columns: the elapsed and remaining times show in full (the loss and accuracy
    give way), and no line runs past the terminal."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=columns, force_terminal=True, color_system=None)
    reporter = ProgressReporter(console, rich=True)
    reporter.set_position(3, 5)
    reporter.start_stage("self_distilled", 30, 1)
    reporter.start_epoch(1, 63)
    reporter.batch(20, 0.123456, 87.5)
    reporter.end_epoch(1, 30, "loss 0.1234  train 95.25%  test 93.40%  lr 0.05")
    reporter._bars.refresh()
    text = console.export_text() if console.record else out.getvalue()
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if "epochs" in ln or "batches" in ln]
    reporter.end_stage()
    assert lines
    for line in lines:
        plain = __import__("re").sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)
        assert len(plain) <= columns, plain
        assert __import__("re").search(r"\d:\d\d:\d\d\s+(\d:\d\d:\d\d|-:--:--)\s*$", plain), plain
