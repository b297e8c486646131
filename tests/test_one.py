"""scheme=one: ONE's gated branches (Lan, Zhu & Gong, NeurIPS 2018) and collaborative learning's heads
(Song & Chai, NeurIPS 2018) (kdrun/schemes/one.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, compose_config, read_results, run_kdrun
from one_line import assert_one_line_error
from kdrun.build import build_data
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.kd import kd_loss
from kdrun.models import create_model
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.one_task import Branches, OneTask, branched_student, scale_grad

DECLARING = ["resnet8", "wrn_16_1", "mlp"]


def model(arch: str = "mlp", seed: int = 0):
    torch.manual_seed(seed)
    kwargs = {"hidden": [12, 8]} if arch == "mlp" else {}
    return create_model(arch, num_classes=5, in_channels=1, input_size=(8, 8), **kwargs)


@pytest.mark.parametrize("arch", DECLARING)
def test_branch1_is_the_student_and_the_others_copy_its_last_stage(arch):
    student = model(arch)
    net = Branches(student, 3, gate=True, donors=[model(arch, 1), model(arch, 2)]).eval()
    x = torch.randn(4, 1, 8, 8)
    logits, ensemble = net.forward_all(x)
    assert torch.allclose(logits[0], student(x))
    assert not torch.allclose(logits[1], logits[0]) and not torch.allclose(logits[2], logits[1])  # initialized apart
    head_params = [{id(p) for p in head.parameters()} for head in net.heads]
    assert head_params[0].isdisjoint(head_params[1]) and head_params[1].isdisjoint(head_params[2])
    g = F.softmax(net.gate(net._parts[0](x).flatten(2).mean(2) if arch != "mlp" else net._parts[0](x)), dim=1)
    assert torch.allclose(ensemble, sum(g[:, i : i + 1] * z for i, z in enumerate(logits)), atol=1e-6)
    state = net.state_dict()  # the student's weights are stored once, under model.
    assert not any(k.startswith("_parts") for k in state) and any(k.startswith("model.") for k in state)


def test_one_loss_is_the_papers_and_its_targets_are_detached():
    net = Branches(model(), 3, gate=True)  # no donors: the copied heads are reset
    task = OneTask(net, "one", T=3.0, beta=0.5)
    assert not torch.equal(net.extra_heads[0].fc.weight, net.heads[0].fc.weight)
    batch = Batch(torch.randn(6, 1, 8, 8), torch.randint(0, 5, (6,)))
    out = task(batch, Progress(1, 1))
    logits, z_e = net.forward_all(batch.x)
    expected = F.cross_entropy(z_e, batch.y) + sum(F.cross_entropy(z, batch.y) + kd_loss(z, z_e, 3.0) for z in logits)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    out.terms["kl_branch2"].backward()
    assert all(p.grad is None or not p.grad.any() for p in net.gate.parameters())  # the teacher is not pulled
    assert any(p.grad is not None and p.grad.any() for p in net.extra_heads[0].parameters())


def test_collaborative_heads_learn_from_the_others_and_rescale_the_trunk_gradient():
    h = torch.ones(3, requires_grad=True)
    scale_grad(h, 0.25).sum().backward()
    assert torch.allclose(h.grad, torch.full((3,), 0.25))
    net = Branches(model(), 3, gate=False)
    assert net.gate is None
    with torch.no_grad():  # heads start as copies: make them disagree
        for p in net.extra_heads.parameters():
            p.add_(torch.randn_like(p))
    task = OneTask(net, "collaborative", T=2.0, beta=0.5)
    batch = Batch(torch.randn(6, 1, 8, 8), torch.randint(0, 5, (6,)))
    out = task(batch, Progress(1, 1))
    logits, _ = net.forward_all(batch.x)
    p = [F.softmax(z / 2.0, dim=1) for z in logits]
    others = (p[1] + p[2]) / 2
    kl = 4.0 * F.kl_div(F.log_softmax(logits[0] / 2.0, dim=1), others, reduction="batchmean")
    assert out.terms["kl_head1"].item() == pytest.approx(kl.item(), rel=1e-4)
    assert set(task.eval_models) == {"branch1", "ensemble"}


def test_a_student_without_a_declared_last_stage_is_refused_in_one_line(tmp_path):
    cfg = compose_config(["debug=fast", "dataset=digits", f"paths.outputs={tmp_path}", "scheme=one", "student=vgg8",
                          "teacher=resnet8"])
    with pytest.raises(KdrunError, match="student=vgg8 does not; these do: .*resnet8") as e:
        branched_student(SchemeContext(cfg, build_data(cfg)), 3, gate=True)
    assert "\n" not in str(e.value) and "vgg8," not in str(e.value)


@pytest.mark.parametrize("override, message", [("scheme.variant=nope", "scheme.variant=nope"),
                                               ("scheme.branches=1", "scheme.branches=1")])
def test_bad_one_options_are_one_line_errors(tmp_path, override, message):
    assert_one_line_error(tmp_path, ["scheme=one", override], message)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["one", "collaborative"])
def test_one_cli_deploys_a_branch_and_the_ensemble(workdir, variant):
    run_kdrun([*TINY, "student.hidden=[16,16]", "measure.enabled=false", "scheme=one", f"scheme.variant={variant}",
               "hydra.run.dir=outputs/run"], cwd=workdir)
    run = workdir / "outputs/run"
    models = read_results(run)["stages"]["one"]["models"]
    assert set(models) == {"branch1", "ensemble"} and models["ensemble"]["params"] > models["branch1"]["params"]
    assert "one/branch1" in (run / "table.csv").read_text()
    student = create_model("mlp", num_classes=10, in_channels=1, input_size=(8, 8), hidden=[16, 16])
    student.load_state_dict(torch.load(run / "checkpoints/one/best.pt", weights_only=True)["model"])  # strict
