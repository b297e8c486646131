"""kdrun creates, replaces and deletes only what it made: real foreign files in real run, sweep and report
folders (issue 20, items 1 and 2). Each case checks one line, a non-zero exit and every foreign file intact."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, run_kdrun

from kdrun.owned_files import MANIFEST, claimed
from kdrun.report.report_cli import main as report_main

FAST = [*TINY, "stages=[teacher,baseline]", "measure.enabled=false"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its content: what must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(stderr: str, prefix: str = "kdrun: error:") -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def users_folder(folder: Path) -> Path:
    """The user's own experiment folder: a config.yaml and TensorBoard logs of their own."""
    (folder / "tb" / "mine").mkdir(parents=True)
    (folder / "tb" / "mine" / "events.out.tfevents.1").write_bytes(b"the user's curves")
    (folder / "config.yaml").write_text("lr: 0.1  # the user's own config\n")
    return folder


def test_a_run_in_a_folder_of_the_users_files_is_refused_and_loses_nothing(workdir):
    here = users_folder(workdir / "mine")
    before = tree(here)
    proc = run_kdrun(["debug=fast", "distill.transfer_size=0", "stages=[teacher,baseline,distilled]",
                      "hydra.run.dir=."], here, check=False)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "hydra.run.dir=. holds config.yaml, tb/, which kdrun did not write" in line and "hydra.run.dir=" in line
    assert tree(here) == before and sorted(os.listdir(here)) == ["config.yaml", "tb"]  # nothing added either


@pytest.mark.slow  # two runs
def test_a_folder_with_other_files_is_used_without_touching_them(workdir):
    here = workdir / "project"
    (here / "data").mkdir(parents=True)
    (here / "data" / "x.csv").write_text("1,2\n")
    (here / "notes.txt").write_text("my notes\n")
    before = tree(here)
    run_kdrun([*FAST, "hydra.run.dir=."], here)
    run_kdrun([*FAST, "hydra.run.dir=."], here)  # again: completed before, skipped
    assert {k: v for k, v in tree(here).items() if k in before} == before
    mine = claimed(here)
    assert {"results.json", "config.yaml", "tb", "checkpoints", ".hydra", "kdrun.log"} <= mine
    assert not mine & {"notes.txt", "data"}


@pytest.mark.slow  # every stage, int8 included
def test_every_entry_a_run_writes_is_in_its_manifest(workdir):
    """A run of every default stage (self-distilled, quantized) and kdrun-report on it: nothing unclaimed."""
    run_dir = workdir / "run"
    run_kdrun([*TINY, f"hydra.run.dir={run_dir}"], workdir)
    assert report_main_status([str(run_dir)]) == 0
    assert set(os.listdir(run_dir)) - {MANIFEST} <= claimed(run_dir), sorted(os.listdir(run_dir))


@pytest.mark.slow  # two runs
def test_a_run_folder_from_before_manifests_is_still_resumed(workdir):
    run_dir = workdir / "run"
    run_kdrun([*FAST, f"hydra.run.dir={run_dir}"], workdir)
    (run_dir / MANIFEST).unlink()  # as kdrun wrote it before it kept manifests
    again = run_kdrun([*FAST, f"hydra.run.dir={run_dir}"], workdir)
    assert "completed before, skipping" in again.stderr and (run_dir / MANIFEST).is_file()


def test_a_sweep_in_a_folder_of_the_users_files_is_refused(workdir):
    here = workdir / "mine"
    here.mkdir()
    (here / "report.md").write_text("# my own report\n")
    before = tree(here)
    proc = run_kdrun(["-m", *FAST, "distill.T=1,2", "hydra.sweep.dir=."], here, check=False)
    assert proc.returncode == 2
    assert "hydra.sweep.dir=. holds report.md, which kdrun did not write" in one_error_line(proc.stderr)
    assert tree(here) == before and os.listdir(here) == ["report.md"]


def report_main_status(argv: list[str]) -> int:
    try:
        report_main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_report_on_another_tools_files_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"accuracy": 0.93, "status": "completed"}))
    (tmp_path / "report.md").write_text("# the user's own report\n")
    before = tree(tmp_path)
    assert report_main_status([str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err, "kdrun-report: error:")
    assert "holds no kdrun run" in line and "results.json is not a kdrun run's results" in line
    assert tree(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["report.md", "results.json"]


@pytest.mark.slow  # a run and four reports
def test_report_never_writes_over_the_users_report_and_out_puts_it_elsewhere(workdir, capsys):
    runs = workdir / "runs"
    run_kdrun([*FAST, f"hydra.run.dir={runs / 'a'}"], workdir)
    (runs / "report.md").write_text("# the user's own notes on these runs\n")
    (runs / "plots").mkdir()
    (runs / "plots" / "figure1.png").write_bytes(b"the user's figure")
    before = tree(runs)
    assert report_main_status([str(runs), "--no-plots"]) == 2
    line = one_error_line(capsys.readouterr().err, "kdrun-report: error:")
    assert "holds report.md, plots/, which kdrun did not write" in line and "--out DIR" in line
    assert tree(runs) == before
    assert report_main_status([str(runs), "--out", str(workdir / "elsewhere")]) == 0
    assert (workdir / "elsewhere" / "report.md").read_text().startswith("# kdrun report")
    assert tree(runs) == before
    assert report_main_status([str(runs / "a")]) == 0  # the run's own folder: its report files are kdrun's
    assert report_main_status([str(runs / "a")]) == 0  # and written over the second time


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only for real (a read-only bind mount, where mounting is allowed), else patch
    ``os.access`` and ``statvfs`` as such a folder answers them; the folder is restored afterwards."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        ok = not subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode
        if ok and not subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode:
            mounted.append(folder)
            return
        if ok:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        import kdrun.report.out_folder as out_folder

        monkeypatch.setattr(out_folder.os, "access", lambda path, mode: Path(path) != folder)
    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow  # a run and two reports
def test_report_on_a_read_only_run_folder_names_its_own_option(workdir, capsys, read_only):
    run_dir = workdir / "run"
    run_kdrun([*FAST, f"hydra.run.dir={run_dir}"], workdir)
    before = tree(run_dir)
    read_only(run_dir)
    assert report_main_status([str(run_dir), "--no-plots"]) == 2
    line = one_error_line(capsys.readouterr().err, "kdrun-report: error:")
    assert "cannot write the report in" in line and "--out DIR" in line and "paths.outputs" not in line
    assert report_main_status([str(run_dir), "--no-plots", "--out", str(workdir / "report")]) == 0
    assert (workdir / "report" / "report.csv").is_file() and tree(run_dir) == before
