"""The teacher_corrected stage: the teacher fine-tuned on the run's labeled data before distilling
(kdrun/schemes/correction.py)."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY, compose_config, read_results
from one_line import assert_one_line_error
from kdrun.tasks.build import build_data
from kdrun.runs.pipeline import run
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.correction import correction_key
from kdrun.schemes.registry import scheme_from_config

STAGES = "stages=[teacher,teacher_corrected,distilled]"


def test_the_corrected_teacher_teaches_and_is_its_own_cache_entry(tmp_path):
    cfg = compose_config([*TINY, f"paths.outputs={tmp_path}", STAGES])
    stages = {s.name: s for s in scheme_from_config(cfg).stages(SchemeContext(cfg, build_data(cfg)))}
    teacher, corrected = stages["teacher"].task.eval_model, stages["teacher_corrected"].task.eval_model
    assert corrected is not teacher and stages["distilled"].task.teacher.model is corrected
    assert stages["distilled"].info["teacher_stage"] == "teacher_corrected"
    key = stages["teacher_corrected"].cache_key
    assert key and key != stages["teacher"].cache_key
    with torch.no_grad():  # another starting teacher -> another corrected model
        next(teacher.parameters()).add_(1.0)
    again = {s.name: s for s in scheme_from_config(cfg).stages(SchemeContext(cfg, build_data(cfg)))}
    assert again["teacher_corrected"].cache_key == key  # same config, same (fresh) teacher
    assert correction_key(SchemeContext(cfg, build_data(cfg)), teacher, 1, 0.01) != key


def test_correction_run_shows_the_teacher_before_and_after(tmp_path):
    cfg = compose_config([*TINY, f"paths.outputs={tmp_path}", "measure.enabled=false", STAGES,
                          "scheme.correction.epochs=2", "scheme.correction.lr=0.02"])
    run(cfg, tmp_path / "run")
    results = read_results(tmp_path / "run")
    s = results["stages"]
    assert list(s) == ["teacher", "teacher_corrected", "distilled"]
    assert s["teacher_corrected"]["correction_lr"] == 0.02 and s["teacher_corrected"]["epochs"] == 1  # debug cap
    table = (tmp_path / "run/table.csv").read_text()
    assert "teacher_corrected" in table
    before = torch.load(tmp_path / "run/checkpoints/teacher/last.pt", weights_only=True)["model"]
    after = torch.load(tmp_path / "run/checkpoints/teacher_corrected/last.pt", weights_only=True)["model"]
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    run(cfg, tmp_path / "again")  # a second run reuses the corrected teacher from the cache
    assert read_results(tmp_path / "again")["stages"]["teacher_corrected"]["source"] == "cache"


@pytest.mark.parametrize("override, message", [("scheme.correction.epochs=0", "scheme.correction.epochs=0"),
                                               ("scheme.correction.lr=-1", "scheme.correction.lr=-1")])
def test_bad_correction_options_are_one_line_errors(tmp_path, override, message):
    assert_one_line_error(tmp_path, [STAGES, override], message)
