"""results.json and metrics.jsonl of the wrong shape, written for real into real run folders (issue 20,
items 7 to 10): one schema reads them everywhere; an invalid job is reported as such, never counted, and
re-run by its sweep; bad metrics lines are skipped, counted, said once and kept; one line, non-zero exit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import TINY, kdrun_in_process, read_results, run_kdrun

from kdrun.report.report_cli import main as report_main
from kdrun.report.run_files import InvalidRunFile, read_metrics, read_results as read_valid
from kdrun.runs.status import completed_results

FAST = [*TINY, "stages=[teacher,baseline]", "measure.enabled=false"]
SWEEP = ["-m", *FAST, "distill.T=1,4"]

# results.json files of other shapes, and the problem each is reported with
NOT_RESULTS = {
    "list": (b"[]", "a JSON list, not an object"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff", "not JSON text"),
    "stages as a list": (b'{"status": "completed", "stages": [{"last_top1": 1}]}', "stages is [{"),
    "top-1 as text": (None, 'last_top1 is "n/a", expected a number'),
    "status only": (b'{"status": "completed"}', "stages is missing"),
    "unknown status": (b'{"status": "done", "stages": {}}', 'status is "done"'),
}


def report_status(argv: list[str]) -> int:
    try:
        report_main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def one_error_line(stderr: str, prefix: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def with_text_top1(results: dict) -> bytes:
    stages = {name: {**rec, "last_top1": "n/a"} for name, rec in results["stages"].items()}
    return json.dumps({**results, "stages": stages}).encode()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One real finished run, copied by the tests that spoil its files."""
    workdir = tmp_path_factory.mktemp("finished")
    run_kdrun([*FAST, f"hydra.run.dir={workdir / 'run'}"], workdir)
    return workdir / "run"


def copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to, symlinks=True)
    return to


@pytest.mark.parametrize("case", list(NOT_RESULTS))
def test_a_results_file_of_another_shape_is_one_line_and_never_completed(case, finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    content, problem = NOT_RESULTS[case]
    (run / "results.json").write_bytes(content or with_text_top1(read_results(finished_run)))
    with pytest.raises(InvalidRunFile) as e:
        read_valid(run)
    assert problem in str(e.value) and "\n" not in str(e.value)
    assert completed_results(run) is None  # a sweep re-run runs it again
    assert report_status([str(run), "--no-plots"]) == 2  # kdrun-report: one line, nothing written
    line = one_error_line(capsys.readouterr().err, "kdrun-report: error:")
    assert "holds no readable kdrun run" in line and problem in line
    assert not (run / "report.md").exists()


def test_a_broken_saved_config_is_one_line(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / ".hydra" / "config.yaml").write_text("seed: [0\ndistill: {T: 4\n")
    assert report_status([str(run), "--no-plots"]) == 2
    line = one_error_line(capsys.readouterr().err, "kdrun-report: error:")
    assert "config.yaml cannot be read as YAML" in line


def test_an_invalid_job_is_reported_as_such_beside_the_others(finished_run, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    good, bad = copy_run(finished_run, sweep / "a"), copy_run(finished_run, sweep / "b")
    (bad / "results.json").write_text('{"status": "completed"}')
    assert report_status([str(sweep), "--no-plots"]) == 1
    err = capsys.readouterr()
    assert "invalid: b" in err.out
    assert "1 run folder under" in one_error_line(err.err, "kdrun-report: error:")
    report = (sweep / "report.md").read_text()
    assert "2 runs: 1 completed, 1 invalid" in report and "stages is missing" in report
    assert read_results(good)["status"] == "completed"


@pytest.mark.slow  # a real sweep, run twice
def test_a_sweep_reruns_a_job_whose_results_are_invalid_and_keeps_the_file(workdir):
    run_kdrun(SWEEP, workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    job = sweep / "distill.T=4"
    (job / "results.json").write_text('{"status": "completed"}')
    again = run_kdrun(SWEEP, workdir)
    assert again.stderr.count("completed before, skipping") == 1
    assert "stages is missing" in again.stderr and "running it again" in again.stderr
    assert read_results(job)["status"] == "completed" and len(read_results(job)["stages"]) == 2
    assert (job / "results.json.invalid").read_text() == '{"status": "completed"}'  # set aside, not lost
    assert "2 runs: 2 completed" in (sweep / "report.md").read_text()


@pytest.mark.slow  # a real sweep whose end-of-sweep report fails
def test_a_failing_end_of_sweep_report_fails_the_command(workdir):
    run_kdrun(SWEEP, workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    (sweep / "report.md").unlink()
    (sweep / "report.md").mkdir()  # the report cannot be written: a folder where the file goes
    again = run_kdrun(SWEEP, workdir, check=False)
    assert again.returncode == 1
    line = one_error_line(again.stderr, "kdrun: error:")
    assert "the sweep's report could not be made" in line and "report.md" in line


BAD_LINES = [b"42", b'{"foo": 1}', b'{"stage": "teacher", "epoch": 1, "val_top1": "n/a", "val_loss": 1, "lr": 0.1}',
             b"\xff\xfe not utf-8", b'{"stage": "teach']


def test_bad_metrics_lines_are_skipped_counted_and_kept(tmp_path):
    good = [json.dumps({"stage": "teacher", "epoch": e, "test_top1": 50.0 + e, "test_loss": 1.0, "lr": 0.1}).encode()
            for e in (1, 2)]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join([BAD_LINES[0], good[0], *BAD_LINES[1:4], good[1],
                                                         BAD_LINES[4]]) + b"\n")
    metrics = read_metrics(tmp_path)
    assert [r["epoch"] for r in metrics.records] == [1, 2]
    assert [n for n, _ in metrics.skipped] == [1, 3, 4, 5, 7]
    note = metrics.skipped_note("metrics.jsonl")
    assert "skipped 5 lines" in note and "line 1: a JSON number, not an object" in note and "\n" not in note


@pytest.mark.slow  # an interrupted run, resumed
def test_a_run_resumes_over_bad_metrics_lines_without_dropping_good_ones(tmp_path, capsys, monkeypatch):
    """Interrupted in the teacher's epoch 2 (as Ctrl-C would), metrics.jsonl spoiled, then resumed."""
    import kdrun.engine.fit as fit

    real, args = fit.train_one_epoch, [*FAST, "trainer.epochs=2", "trainer.max_epochs=2",
                                       f"hydra.run.dir={tmp_path / 'run'}"]

    def interrupted(*a, **kw):
        if a[6] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(fit, "train_one_epoch", interrupted)
    assert kdrun_in_process(args) == 130
    metrics = tmp_path / "run" / "metrics.jsonl"
    teacher = metrics.read_bytes().splitlines()
    assert len(teacher) == 1
    metrics.write_bytes(b"\n".join([BAD_LINES[0], *teacher, *BAD_LINES[1:4]]) + b"\n")
    monkeypatch.setattr(fit, "train_one_epoch", real)
    capsys.readouterr()
    assert kdrun_in_process(args) == 0
    err = capsys.readouterr().err
    assert err.count("that are not an epoch's record") == 1 and "Traceback" not in err
    lines = metrics.read_bytes().splitlines()
    assert lines[:5] == [BAD_LINES[0], *teacher, *BAD_LINES[1:4]]  # the good line and the bad ones, as they were
    records = read_metrics(metrics).records
    assert [(r["stage"], r["epoch"]) for r in records] == [("teacher", 1), ("teacher", 2), ("baseline", 1),
                                                            ("baseline", 2)]
    assert report_status([str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr()
    assert (err.out + err.err).count("that are not an epoch's record") == 1
    assert os.path.getsize(tmp_path / "report" / "plots" / "curves.png") > 1000
