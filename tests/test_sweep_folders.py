"""Sweep and job folder names: one folder per job whatever the values hold, short, copyable into a shell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import read_results, run_kdrun

from kdrun.config.preflight import parse_overrides
from kdrun.config.sweeps import FOLDER_NAME_MAX, default_sweep_name, job_dir_name

EXCLUDED = ["name", "debug"]
SHELL_SAFE = re.compile(r"[A-Za-z0-9._,=+~-]+")  # no quoting, no glob, no markup ([...]), no path separator


def names(jobs: list[list[str]]) -> list[str]:
    return [job_dir_name([*job, "name=s", "debug=fast"], EXCLUDED) for job in jobs]


@pytest.mark.parametrize("values", [
    ["/x/set", "/x/set/v2"],  # a path and a path below it: nested folders before
    ["..", "../..", ".", "/", "../etc", "a/../b"],  # relative parts that climb out of the sweep folder
    ["a" * 300, "a" * 300 + "b", "a" * 301],  # long values that differ only past any cut
    ["[a,b]", "a+b", "a,b", "'a b'", "a-b", "a_b"],  # values that a careless escaping would make equal
])
def test_job_folders_never_nest_collide_or_climb(values):
    got = names([[f"dataset.root={v!r}" if " " in v else f"dataset.root={v}"] for v in values])
    assert len(set(got)) == len(got), got
    for name in got:
        assert "/" not in name and name not in (".", "..") and len(name) <= FOLDER_NAME_MAX, name
        assert SHELL_SAFE.fullmatch(name), name


def test_names_keep_plain_values_whole_and_mark_shortened_ones():
    assert names([["distill.T=1", "distill.alpha=0.1"]]) == ["distill.T=1,distill.alpha=0.1"]
    assert names([["stages=[teacher,baseline]"]]) == ["stages=teacher+baseline"]
    assert names([["dataset.root=/data/set/v2"]])[0].startswith("dataset.root=set-v2~")
    assert names([[]]) == ["job"]  # nothing but excluded keys: still a folder of its own, not the sweep's


def test_sweep_names_are_short_readable_and_order_free():
    a = default_sweep_name(parse_overrides([
        "distill.T=1,2", "stages=[teacher,baseline,distilled]",
        "teacher.checkpoint=outputs/runs/2026-12-01_10-32-21/checkpoints/teacher/last.pt"]))
    assert a.startswith("distill.T=1,2__stages=teacher+baseline+distilled~") and len(a) <= FOLDER_NAME_MAX
    assert SHELL_SAFE.fullmatch(a)
    b = default_sweep_name(parse_overrides([
        "teacher.checkpoint=outputs/runs/2026-12-01_10-32-21/checkpoints/teacher/last.pt",
        "stages=[teacher,baseline,distilled]", "distill.T=1,2"]))
    other = default_sweep_name(parse_overrides([
        "distill.T=1,2", "stages=[teacher,baseline,distilled]",
        "teacher.checkpoint=outputs/runs/2026-12-02_10-32-21/checkpoints/teacher/last.pt"]))
    assert a == b != other


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 100 if c == "a" else 0, 0)).save(root / split / c / f"{i}.png")
    return root


@pytest.mark.slow  # a real sweep of two jobs
def test_a_sweep_over_a_path_and_a_path_below_it_keeps_both_jobs(workdir):
    outer = _image_folder(workdir / "x" / "set")
    inner = _image_folder(outer / "v2")
    proc = run_kdrun(["-m", "debug=fast", "dataset=imagefolder", "dataset.image_size=8", "teacher=mlp",
                      "teacher.hidden=[8]", "stages=[teacher]", "measure.enabled=false",
                      f"dataset.root={outer},{inner}"], workdir)
    (sweep,) = (workdir / "outputs" / "sweeps").iterdir()
    jobs = sorted(p.parent for p in sweep.rglob("results.json"))
    assert [j.parent for j in jobs] == [sweep, sweep]  # side by side, none inside another
    assert sorted(read_results(j)["status"] for j in jobs) == ["completed", "completed"]
    assert "2 runs: 2 completed" in (sweep / "report.md").read_text() and proc.returncode == 0


@pytest.mark.slow  # a run
def test_printed_paths_exist_as_printed_even_with_brackets(workdir):
    """rich reads [..] as markup: a folder named with brackets was printed without them (issue 24, item 6)."""
    run_dir = workdir / "runs" / "stages=[teacher,baseline]"
    proc = run_kdrun(["debug=fast", "dataset=digits", "teacher=mlp", "teacher.hidden=[8]", "stages=[teacher]",
                      "measure.enabled=false", f"hydra.run.dir='{run_dir}'"], workdir)
    printed = [line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("full table")]
    assert printed and Path(printed[0]).is_file(), proc.stdout
