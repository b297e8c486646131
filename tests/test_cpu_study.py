"""scripts/cpu_study.py: the commands it runs (seed by seed, kdrun's default recipe unless told) and the
table's verdicts, counted into the summary line (a diverged run counts as diverged, never as a number)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_script
from kdrun.engine.finite import NonFiniteError
from kdrun.report.jobs import COMPLETED, FAILED, Job


@pytest.fixture(scope="module")
def study():
    return load_script("cpu_study")


def test_seeds_run_in_order_with_the_default_transfer_set_unless_labeled_only(study, monkeypatch, tmp_path, capsys):
    commands = []
    monkeypatch.setattr(study.subprocess, "Popen", lambda cmd, **kw: commands.append(cmd) or _Done())
    study.run_sweeps(tmp_path, ["1", "0"], jobs=2, extra=["debug=fast"], width=12)
    sweep_dirs = [next(a for a in c if a.startswith("hydra.sweep.dir=")) for c in commands]
    assert sweep_dirs == [f"hydra.sweep.dir={tmp_path / f'seed{s}' / n}" for s in "10" for n in ("methods", "crd_kd", "fsp")]
    assert all("seed=1" in c for c in commands[:3]) and all("seed=0" in c for c in commands[3:])
    assert not any(a.startswith("distill.transfer_size") for c in commands for a in c)  # the dataset's default
    assert "student.channels=[12,12,12]" in commands[0] and "student.channels=[64,64,64]" in commands[2]
    assert "cpu_study: hydra.sweep.dir=" in capsys.readouterr().out  # a failed sweep is said, and the study goes on
    labeled = study.sweeps("0", labeled_only=True)
    assert all("distill.transfer_size=0" in overrides for overrides in labeled.values())


def test_a_same_width_deeper_teacher_as_in_the_cifar_zoo(study):
    """--teacher-width 12 --teacher-depth 3: the teacher is the students' width, three conv layers per stage;
    FSP, which needs equal widths, then uses the same student as every other row."""
    pair = study.sweeps("0", width=12, teacher_width=12, teacher_depth=3)
    assert all("teacher.channels=[12,12,12]" in o and "teacher.depth=3" in o for o in pair.values())
    assert "student.channels=[12,12,12]" in pair["fsp"]
    default = study.sweeps("0", width=12)  # the default teacher's config is left as it is (same cache keys)
    assert not any(a.startswith(("teacher.channels", "teacher.depth")) for o in default.values() for a in o)
    runs = [_run("fsp", 0, +1.0), _run("kd", 0, +1.0)]
    text = study.table(runs, lr=None, width=12, teacher_width=12, teacher_depth=3)
    assert text.startswith("Teacher cnn1d 12-12-12 + BN, 3 conv layers per stage: 97.00;")
    assert "| FSP | cnn1d 12-12-12 + BN |" in text
    assert "| FSP | cnn1d 64-64-64 (FSP needs the teacher's width) + BN |" in study.table(runs, lr=None, width=12)


class _Done:
    returncode = 1  # a sweep with a failed job: the study goes on to the next one

    def wait(self) -> int:
        return self.returncode


def _run(method: str, seed: int, delta: float, alpha: float = 0.0, status: str = COMPLETED,
         error: str | None = None) -> Job:
    stages = {"teacher": {"last_top1": 97.0, "best_top1": 97.0, "params": 44234},
              "baseline": {"last_top1": 90.0, "best_top1": 90.0, "params": 2000}}
    if status == COMPLETED:
        stages["distilled"] = {"last_top1": 90.0 + delta, "best_top1": 91.0 + delta, "params": 2000}
    results = {"status": status, "seed": seed, "method": method, "distill": {"alpha": alpha}, "stages": stages}
    return Job(Path(f"/runs/{method}{alpha}/{seed}"), status, error, results, config={"seed": seed})


def test_summary_counts_rows_better_on_every_seed_and_diverged_rows(study):
    nan = str(NonFiniteError("the loss term 'at'", epoch=2, step=5).in_stage("distilled", "last.pt"))
    runs = [_run(m, s, +1.0) for m in ("kd", "sp", "pkt") for s in (0, 1)]
    runs += [_run("rkd", 0, +1.0), _run("rkd", 1, -0.5)]  # mixed: not counted
    runs += [_run("at", 0, +2.0), _run("at", 1, 0, status=FAILED, error=nan)]  # diverged on seed 1
    runs += [_run("vid", 0, +1.0), _run("vid", 1, 0, status=FAILED, error="OSError: No space left on device")]
    runs += [_run("crd", s, +1.0, alpha=1.0) for s in (0, 1)]  # CRD+KD: shown, not counted
    text = study.table(runs, lr=None)
    assert text.rstrip().endswith("rows beating the baseline on every seed: 3/14; diverged: 1 "
                                  "(CRD+KD, not counted: yes)")
    line = {row.split(" | ")[0].strip("| "): row for row in text.splitlines() if row.startswith("| ")}
    assert line["AT"].endswith("| diverged (seed 1) |") and line["VID"].endswith("| failed (seed 1) |")
    assert line["RKD"].endswith("| mixed |") and line["KD"].endswith("| +1.00 ± 0.00 | – | – | 2/2 | yes |")
    assert line["FitNet"].endswith("| not run |")
    # a row that ran on fewer seeds than the study never counts as better on every seed
    assert "yes" not in study._verdict([1.0], seeds=2, failed=[])


def test_loss_table_shares_of_ce_and_distillation_terms(study, tmp_path):
    kd = _run("kd", 0, +1.0)
    kd.results["distill"] = {"alpha": 0.9, "gamma": None}  # Hinton's convention: CE weighs 1 - alpha
    at = _run("at", 0, -5.0)
    at.results["distill"] = {"alpha": 0.0, "gamma": 1.0}
    vid = _run("vid", 0, +1.0)  # VID's term is a negative log-likelihood: it can be below zero
    vid.results["distill"] = {"alpha": 0.0, "gamma": 1.0}
    for run, (loss, ce) in ((kd, (1.0, 0.2)), (at, (10.0, 1.0)), (vid, (0.1, 0.3))):
        run.path = tmp_path / run.results["method"]
        run.path.mkdir()
        epoch = {"epoch": 1, "lr": 0.05, "test_top1": 90.0}  # what every epoch's record has (report/run_files)
        records = [{"stage": "baseline", "train_loss": 0.1, "train_ce": 0.1, "train_top1": 98.0, **epoch},
                   {"stage": "distilled", "train_loss": loss, "train_ce": ce, "train_top1": 95.0, **epoch}]
        (run.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = study.loss_table([kd, at, vid])
    assert "| KD | 0.20 | 98.00% | 95.00 |" in text and "| AT | 1.00 | 90.00% | 95.00 |" in text
    assert "| VID | 0.30 | – (the terms sum to -0.20, below zero) | 95.00 |" in text
    assert "| baseline (labels only) | 0.10 | 0% | 98.00 |" in text
