"""Every method, found by its config file: the tests a new method gets the day its YAML lands.

Parametrized over ``conf/method/*.yaml`` and ``tests/golden/*.json`` (no hand-kept list). Each
method is composed through the real config and built by the offline scheme's own factories
(kdrun/schemes/context.py) on the first pair it serves (method_pairs.py); it takes one SGD step in
every stage it yields (its init stage, if any, then the distilled stage). Golden values:
``scripts/golden/<name>.py``: its ``golden()`` (the formula, independent of kdrun) -> ``tests/golden/<name>.json``,
and its ``check(g)``, which compares kdrun's implementation with those stored values. A new method is its
code file, its YAML and its golden script: nothing to add to any test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONF, REPO
from method_pairs import METHODS, VECTOR, data_for, first_pair, offline_stages, refusal, scheme_context

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_SCRIPTS = REPO / "scripts" / "golden"
sys.path.insert(0, str(GOLDEN_SCRIPTS))  # the scripts' check() imports their shared helpers (_kdrun.py)
NAMES = sorted({*METHODS, *(p.stem for p in GOLDEN.glob("*.json"))})


def batch(name: str, n: int = 8):
    """A batch of the data the method's test pair reads (signals, or token ids for transformer methods)."""
    from kdrun.engine.task import Batch

    data = data_for(first_pair(name))
    index = torch.arange(n)
    return Batch(data.train.inputs(data.train.x, index), data.train.y[:n], index)


def progress():
    from kdrun.engine.task import Progress

    return Progress(1, 1, 0, 1)


@pytest.mark.parametrize("name", NAMES)
def test_config_golden_script_and_values_belong_to_the_method(name):
    assert (CONF / "method" / f"{name}.yaml").is_file(), f"tests/golden/{name}.json has no conf/method/{name}.yaml"
    node = yaml.safe_load((CONF / "method" / f"{name}.yaml").read_text())["method"]
    assert node["name"] == name, f"conf/method/{name}.yaml says method.name={node['name']}"
    assert (GOLDEN_SCRIPTS / f"{name}.py").is_file(), f"method={name} has no scripts/golden/{name}.py"
    assert (GOLDEN / f"{name}.json").is_file(), f"run: python scripts/make_golden.py {name}"
    stored = json.loads((GOLDEN / f"{name}.json").read_text())
    spec = importlib.util.spec_from_file_location(f"golden_{name}", GOLDEN_SCRIPTS / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert hasattr(script, "check"), f"scripts/golden/{name}.py has no check(g) comparing kdrun with its values"
    approx_equal(script.golden(), stored, f"tests/golden/{name}.json (regenerate: scripts/make_golden.py {name})")
    script.check(stored)  # kdrun's implementation against the independent computation


def approx_equal(got, want, where: str, rel: float = 1e-9) -> None:
    """Nested JSON values equal up to ``rel`` (BLAS may change the last bits between machines)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            approx_equal(got[k], want[k], f"{where}.{k}", rel)
    elif isinstance(want, list):
        assert isinstance(got, list | tuple) and len(got) == len(want), f"{where}: length differs"
        for i, (a, b) in enumerate(zip(got, want)):
            approx_equal(a, b, f"{where}[{i}]", rel)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=1e-300), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got} != {want}"


def gradients(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    """d loss / d param, None where ``loss`` does not depend on the parameter at all."""
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))


def total(grads: list[torch.Tensor | None]) -> float:
    return sum(float(g.abs().sum()) for g in grads if g is not None)


@pytest.mark.parametrize("name", METHODS)
def test_one_step_trains_the_student_and_the_method_never_the_teacher(name):
    from kdrun.methods.pairing import classifier_head

    teacher, student, stages = offline_stages(name)
    assert stages[-1].name == "distilled" and stages[-1].method == name
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    for stage in stages:
        task, where = stage.task, f"method={name}, stage {stage.name}"
        task.train()
        params = task.trainable_parameters()
        names = {id(p): n for n, p in task.named_parameters()}
        own = [p for p in task.method.parameters() if any(p is q for q in params)]
        students = [p for p in student.parameters() if any(p is q for q in params)]
        out = task(batch(name), progress())
        assert out.terms and torch.isfinite(out.loss), where
        for term, value in out.terms.items():
            assert value.dim() == 0 and torch.isfinite(value), f"{where}: term {term} = {value}"
        distill = [v for k, v in out.terms.items() if k != "ce"]  # KD and the method's own terms
        if distill and students:
            assert total(gradients(sum(distill), students)) > 0, f"{where}: the distillation terms miss the student"
        if own:  # every parameter of the method's own modules is in the graph of its terms
            assert distill, f"{where}: the method trains modules that no term uses"
            grads = gradients(sum(distill), own)
            for p, g in zip(own, grads):
                assert g is not None, f"{where}: the method's terms do not depend on its {names[id(p)]}"
            assert total(grads) > 0, f"{where}: the method's terms give its modules no gradient"
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=0.1)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        for p in params:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{where}: no gradient for {names[id(p)]}"
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters()), where
        assert not {id(p) for p in teacher.parameters()} & {id(p) for p in params}, where
        if stage.role == "init":  # an init stage trains features, never the classifier
            assert not {id(p) for p in classifier_head(student).parameters()} & {id(p) for p in params}, where
        state = task.state_dict()
        assert not any(k.startswith("teacher") for k in state), f"{where}: the teacher is saved with the task"
        assert all(f"method.{k}" in state for k in task.method.state_dict()), f"{where}: method state not saved"
        optimizer.step()
        assert any(not torch.equal(b, p) for b, p in zip(before, params)), f"{where}: the step changed nothing"
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items()), "the teacher changed"


@pytest.mark.parametrize("name", METHODS)
def test_loss_is_the_weighted_sum_of_ce_kd_and_the_method_terms(name):
    _, _, stages = offline_stages(name, ["distill.alpha=1", "distill.gamma=0.5"])
    task = stages[-1].task
    w = task.weights
    assert (w.alpha, w.ce_weight) == (1.0, 0.5)
    out = task(batch(name), progress())
    own = {k: v for k, v in out.terms.items() if k not in ("ce", "kd")}
    assert bool(own) == task.use_method
    expected = 0.5 * out.terms["ce"] + out.terms["kd"] + w.beta * sum(own.values())
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


# Autocast covers the networks; every term is computed in float32 (kdrun/methods/precision.py).
@pytest.mark.parametrize("name", METHODS)
def test_terms_are_float32_under_bf16_autocast_and_close_to_float32(name):
    _, _, stages = offline_stages(name)
    for stage in stages:
        stage.task.eval()  # batch norm in running-stats mode: the same function in both precisions
        torch.manual_seed(0)  # CRD draws its negatives
        full = stage.task(batch(name), progress()).terms
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = stage.task(batch(name), progress())
        for term, value in out.terms.items():
            where = f"method={name}, stage {stage.name}, term {term}"
            assert value.dtype == torch.float32 and torch.isfinite(value), where
            assert value.item() == pytest.approx(full[term].item(), rel=0.05, abs=1e-6), where
        out.loss.backward()


@pytest.mark.parametrize("name", METHODS)
def test_an_mlp_student_is_served_or_refused_in_one_line(name):
    """Methods on feature maps refuse vector features before training; every other one trains on them."""
    reason = refusal(name, VECTOR)
    if reason is not None and "tokens models" in reason:  # a transformer method: refused on any CNN or MLP
        assert "\n" not in reason and f"method={name}" in reason and "methods for it: " in reason
        return
    if reason is not None:
        assert "\n" not in reason and f"method={name}" in reason and "student=mlp" in reason and "cnn1d" in reason
        return
    ctx = scheme_context(name, VECTOR)
    student, teacher = ctx.model("student"), ctx.model("teacher", seed_offset=1)
    for stage in ctx.distill_stages("distilled", "distilled", student, teacher):
        out = stage.task(batch(name), progress())
        assert all(torch.isfinite(v) for v in out.terms.values()), stage.name
        out.loss.backward()
