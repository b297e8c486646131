"""scheme=momentum: the EMA of the student is its teacher (kdrun/schemes/momentum.py)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY, compose_config, read_results
from in_process import run_here
from one_line import assert_one_line_error
from kdrun.tasks.build import build_data
from kdrun.schemes.context import SchemeContext

from kdrun.tasks.momentum import MomentumTask, rampup
from kdrun.schemes.registry import scheme_from_config
from kdrun.engine.task import Batch, Progress


def test_ema_follows_the_student_with_the_mean_teacher_schedule():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ema = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ema.load_state_dict(student.state_dict())
    inner = torch.nn.Module()
    inner.student = student
    task = MomentumTask(inner, ema, decay=0.9, warmup_epochs=0.0)
    before = ema[0].weight.clone()
    with torch.no_grad():
        student[0].weight.add_(1.0)
        student[1].running_mean.add_(2.0)
    task.after_step()  # step 1: d = min(0.9, 1 - 1/2) = 0.5
    assert torch.allclose(ema[0].weight, 0.5 * before + 0.5 * student[0].weight)
    assert torch.allclose(ema[1].running_mean, torch.full((3,), 1.0))  # buffers are averaged too
    w1 = ema[0].weight.clone()
    kept = 1.0
    for step in range(2, 22):
        task.after_step()
        kept *= min(0.9, 1 - 1 / (step + 1))  # 2/3, 3/4, ... then 0.9: the average forgets its start quickly
    assert torch.allclose(ema[0].weight, student[0].weight + kept * (w1 - student[0].weight), atol=1e-6)


def test_rampup_is_the_mean_teacher_sigmoid():
    assert rampup(0.0) == pytest.approx(math.exp(-5)) and rampup(0.5) == pytest.approx(math.exp(-1.25))
    assert rampup(1.0) == 1.0 and rampup(3.0) == 1.0


def test_the_teacher_is_the_students_ema_and_ramps_only_distillation(tmp_path):
    cfg = compose_config([*TINY, f"paths.outputs={tmp_path}", "scheme=momentum", "scheme.warmup_epochs=2"])
    stages = {s.name: s for s in scheme_from_config(cfg).stages(SchemeContext(cfg, build_data(cfg)))}
    task = stages["momentum"].task
    assert task.inner.teacher.model is task.ema and task.ema is not task.inner.student
    assert all(torch.equal(a, b) for a, b in zip(task.ema.state_dict().values(),
                                                   stages["baseline"].task.eval_model.state_dict().values()))
    assert {id(p) for p in task.trainable_parameters()}.isdisjoint(id(p) for p in task.ema.parameters())
    task.train()
    assert not task.ema.training and task.inner.student.training
    batch = Batch(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    full = task(batch, Progress(3, 3, 0, 10))  # past the warm-up
    half = task(batch, Progress(2, 3, 0, 10))  # t = 0.5
    ce = full.terms["ce"]
    assert torch.allclose(half.loss, ce + math.exp(-1.25) * (full.loss - ce))
    assert list(task.eval_models) == ["student", "ema"]


@pytest.mark.parametrize("override, message", [("scheme.decay=1.0", "scheme.decay=1.0"),
                                               ("scheme.warmup_epochs=-1", "scheme.warmup_epochs=-1")])
def test_bad_momentum_options_are_one_line_errors(tmp_path, override, message):
    assert_one_line_error(tmp_path, ["scheme=momentum", override], message)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kd", "dkd"])
def test_momentum_cli_gives_a_row_for_the_student_and_its_ema(workdir, method, monkeypatch):
    run_here([*TINY, "measure.enabled=false", "scheme=momentum", f"method={method}", "hydra.run.dir=outputs/run"],
             workdir, monkeypatch)
    results = read_results(workdir / "outputs/run")
    models = results["stages"]["momentum"]["models"]
    assert set(models) == {"student", "ema"} and all(m["last_top1"] is not None for m in models.values())
    table = (workdir / "outputs/run/table.csv").read_text()
    assert "momentum/student" in table and "momentum/ema" in table
    saved = torch.load(workdir / "outputs/run/checkpoints/momentum/last.pt", weights_only=True)["task"]
    assert any(k.startswith("ema.") for k in saved) and int(saved["steps"]) == 3  # resumable: the EMA is saved
