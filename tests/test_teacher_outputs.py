"""Teacher outputs computed once, replayed exactly (distill.teacher_outputs; kdrun/engine/teacher_outputs.py)."""

from __future__ import annotations

import fcntl
import json
import logging

import numpy as np
import pytest
import torch

from conftest import TINY, compose_config
from in_process import skip_run_plots
from one_line import assert_one_line_error
from kdrun.engine.teacher_outputs import OutputStore, TeacherLogits, weights_digest
from kdrun.runs.pipeline import run

@pytest.fixture(autouse=True)
def _no_run_plots(monkeypatch):
    skip_run_plots(monkeypatch)  # these runs are about the distilled weights (tests/in_process.py says why)


RUN = [*TINY, "measure.enabled=false", "stages=[teacher,distilled]", "trainer.epochs=2", "trainer.max_epochs=2"]


def distil(tmp_path, name: str, *overrides: str) -> tuple[dict, dict]:
    """One run sharing ``tmp_path``'s cache; the distilled student's final weights and its record."""
    cfg = compose_config([*RUN, f"paths.outputs={tmp_path}", *overrides])
    results = run(cfg, tmp_path / name)
    weights = torch.load(tmp_path / name / "checkpoints/distilled/last.pt", weights_only=True)["model"]
    return weights, results["stages"]["distilled"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra", [[], ["distill.mix=mixup"], ["distill.transfer_size=64", "dataset=mnist1d",
                                                               "teacher=mlp", "student=mlp"]],
                         ids=["plain", "mixup", "transfer"])
def test_replay_gives_bit_identical_students_in_fp32(tmp_path, extra):
    computed, rec = distil(tmp_path, "compute", "distill.teacher_outputs=compute", *extra)
    assert "teacher_outputs" not in rec
    recorded, rec = distil(tmp_path, "record", "distill.teacher_outputs=replay", *extra)
    assert rec["teacher_outputs"] == {"record": 2}
    replayed, rec = distil(tmp_path, "replay", "distill.teacher_outputs=auto", *extra)
    assert rec["teacher_outputs"] == {"replay": 2}
    assert same(computed, recorded) and same(computed, replayed)


def test_a_different_seed_or_temperature(tmp_path):
    distil(tmp_path, "record", "distill.teacher_outputs=replay")
    _, rec = distil(tmp_path, "T", "distill.T=2")  # T does not change the teacher's logits: replayed
    assert rec["teacher_outputs"] == {"replay": 2}
    _, rec = distil(tmp_path, "seed", "seed=1")  # another seed: other inputs, other teacher; nothing to replay
    assert rec["teacher_outputs"] == {"compute": 2}


def test_fp16_recording_is_shared_exactly_and_close_to_fp32(tmp_path):
    computed, _ = distil(tmp_path, "compute", "distill.teacher_outputs=compute")
    recorded, _ = distil(tmp_path, "record", "distill.teacher_outputs=replay", "distill.teacher_outputs_precision=fp16")
    replayed, rec = distil(tmp_path, "replay", "distill.teacher_outputs_precision=fp16")
    assert rec["teacher_outputs"] == {"replay": 2} and same(recorded, replayed)
    assert all(torch.allclose(computed[k], replayed[k], atol=1e-3) for k in computed)
    files = sorted((tmp_path / "cache/teacher_outputs").glob("*/epoch0001.*"))
    assert [f.name for f in files] == ["epoch0001.fp16", "epoch0001.fp16.json"]  # the array and its record


def damage(path, how: str) -> None:
    """Make a real fault in a recorded file: random floats of the same size, or a cut-off file."""
    size = path.stat().st_size
    if how == "random":
        np.random.default_rng(0).standard_normal(size // 4).astype(np.float32).tofile(path)
    elif how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif how == "no record":  # a recording made before records existed
        path.with_name(path.name + ".json").unlink()


@pytest.mark.parametrize("how", ["random", pytest.param("truncated", marks=pytest.mark.slow),
                                 pytest.param("no record", marks=pytest.mark.slow)])
def test_a_damaged_recording_is_set_aside_with_one_warning_and_recomputed(tmp_path, caplog, how):
    computed, _ = distil(tmp_path, "record", "distill.teacher_outputs=replay")  # bit-identical to computing (above)
    [epoch1] = (tmp_path / "cache/teacher_outputs").glob("*/epoch0001.fp32")
    damage(epoch1, how)
    with caplog.at_level(logging.WARNING, logger="kdrun"):
        replayed, rec = distil(tmp_path, "replay", "distill.teacher_outputs=replay")
    assert rec["teacher_outputs"] == {"record": 1, "replay": 1}  # epoch 1 from the teacher again, epoch 2 replayed
    assert same(computed, replayed)  # the student never saw the bad logits
    [warning] = [r.getMessage() for r in caplog.records if "not usable" in r.getMessage()]
    assert str(epoch1) in warning and "epoch 1" in warning
    assert len(list(epoch1.parent.glob("epoch0001.fp32.bad-*"))) == 1  # kept for inspection
    _, rec = distil(tmp_path, "again")  # the new recording is verified and replayed
    assert rec["teacher_outputs"] == {"replay": 2}


def test_a_recording_of_another_shape_is_not_replayed(tmp_path, caplog):
    distil(tmp_path, "record", "distill.teacher_outputs=replay")
    [record] = (tmp_path / "cache/teacher_outputs").glob("*/epoch0002.fp32.json")
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({**saved, "shape": [1, *saved["shape"][1:]]}))
    with caplog.at_level(logging.WARNING, logger="kdrun"):
        _, rec = distil(tmp_path, "auto")  # auto: computes what it cannot replay, records nothing
    assert rec["teacher_outputs"] == {"replay": 1, "compute": 1}
    assert "another array" in caplog.text


def test_methods_that_need_features_still_run_the_teacher(tmp_path):
    from kdrun.tasks.build import build_data
    from kdrun.schemes.context import SchemeContext
    from kdrun.schemes.registry import scheme_from_config

    cfg = compose_config([*RUN, f"paths.outputs={tmp_path}", "method=rkd", "distill.teacher_outputs=replay",
                          "stages=[distilled]"])
    stages = {s.name: s for s in scheme_from_config(cfg).stages(SchemeContext(cfg, build_data(cfg)))}
    assert stages["distilled"].task.outputs is None and "teacher_outputs" not in stages["distilled"].info


def test_key_follows_the_teacher_weights(tmp_path):
    teacher = torch.nn.Linear(3, 2)
    logits = TeacherLogits(teacher, teacher, tmp_path, {"seed": 0, "num_classes": 2}, "replay", "fp32")
    before = logits.key()
    with torch.no_grad():
        teacher.weight[0, 0] += 1e-6  # a fine-tuned (corrected) teacher is another model
    assert logits.key() != before and weights_digest(teacher) != weights_digest(torch.nn.Linear(3, 2))


def test_a_job_that_finds_the_recording_busy_computes(tmp_path):
    teacher = torch.nn.Linear(3, 2)
    logits = TeacherLogits(teacher, teacher, tmp_path, {"num_classes": 2}, "replay", "fp32")
    folder = tmp_path / logits.key()
    folder.mkdir()
    with open(folder.with_suffix(".lock"), "w") as held:  # another job records this key
        fcntl.flock(held, fcntl.LOCK_EX)
        x = torch.randn(4, 3)
        assert torch.equal(logits(x, 1, 0, 1), teacher(x))
    assert logits.sources == {"compute": 1} and not OutputStore(folder, "fp32").recorded(1)


@pytest.mark.parametrize("override, message", [("distill.teacher_outputs=always", "distill.teacher_outputs=always"),
                                               ("distill.teacher_outputs_precision=int8", "fp16, fp32")])
def test_bad_values_are_one_line_errors(tmp_path, override, message):
    assert_one_line_error(tmp_path, [override], message)
