"""scheme=one: ONE's gated branches (Lan, Zhu & Gong, NeurIPS 2018) and collaborative learning's heads
(Song & Chai, NeurIPS 2018) (kdrun/schemes/one.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, compose_config, read_results
from in_process import run_here
from one_line import assert_one_line_error
from kdrun.tasks.build import build_data
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.kd import kd_loss
from kdrun.models import create_model
from kdrun.models.registry import list_models, model_spec
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


def test_collaborative_heads_learn_from_the_others_consensus_and_rescale_the_trunk_gradient():
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
    consensus = (logits[1] + logits[2]) / 2  # the paper's target: softmax of the other heads' mean logits
    kl = 4.0 * F.kl_div(F.log_softmax(logits[0] / 2.0, dim=1), F.softmax(consensus / 2.0, dim=1), reduction="batchmean")
    assert out.terms["kl_head1"].item() == pytest.approx(kl.item(), rel=1e-4)
    assert set(task.eval_models) == {"branch1", "ensemble"}


def tree(arch: str = "resnet8", splits=(2, 2)) -> tuple[Branches, torch.nn.Module]:
    student = model(arch)
    n = 1
    for f in splits:
        n *= f
    return Branches(student, list(splits), gate=False, donors=[model(arch, i) for i in range(1, n)]), student


@pytest.mark.parametrize("arch, splits", [("resnet8", [2, 2]), ("wrn_16_1", [3, 2]), ("mlp", [2, 2])])
def test_a_hierarchical_tree_splits_at_several_depths_and_head1_is_the_student(arch, splits):
    net, student = tree(arch, splits)
    heads = splits[0] * splits[1]
    assert net.n == heads and len(net.extra_heads) == heads - 1  # the last stage: one per head
    assert len(net.extra_stages) == 1 and len(net.extra_stages[0]) == splits[0] - 1  # the middle stage: per subtree
    net.eval()
    x = torch.randn(4, 1, 8, 8)
    logits, ensemble = net.forward_all(x)
    assert len(logits) == heads and all(z.shape == (4, 5) for z in logits)
    assert torch.allclose(logits[0], student(x), atol=1e-6)  # head 1 runs the student's own modules
    assert torch.allclose(ensemble, torch.stack(logits).mean(0))
    assert len({round(z.sum().item(), 4) for z in logits}) == heads  # every head its own weights
    ids = [id(p) for p in net.parameters()]
    assert len(ids) == len(set(ids)) and sum(p.numel() for p in net.parameters()) < heads * student.num_parameters


def test_the_shared_trunk_learns_from_every_head_with_the_gradient_rescaled_at_each_split():
    net, student = tree("resnet8", [2, 2])
    x = torch.randn(4, 1, 8, 8)
    trunk = [student.conv1.weight, *student.layer1.parameters()]  # shared by all 4 heads
    middle = list(student.layer2.parameters())  # shared by heads 1 and 2 (the model's own stage 2)
    for i in range(4):
        net.zero_grad()
        net.forward_all(x)[0][i].pow(2).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk), f"head {i + 1}"
        assert all((p.grad is not None and p.grad.abs().sum() > 0) == (i < 2) for p in middle), f"head {i + 1}"

    def grads(rescale: bool) -> tuple[torch.Tensor, torch.Tensor]:
        net.zero_grad()
        sum(z.pow(2).sum() for z in net.forward_all(x, rescale=rescale)[0]).backward()
        return student.conv1.weight.grad.clone(), middle[0].grad.clone()

    (trunk_plain, middle_plain), (trunk_scaled, middle_scaled) = grads(False), grads(True)
    assert torch.allclose(middle_scaled, middle_plain / 2, rtol=1e-4, atol=1e-5)  # one split above: 1/2
    assert torch.allclose(trunk_scaled, trunk_plain / 4, rtol=1e-4, atol=1e-5)  # two splits above: 1/2 * 1/2


def test_collaborative_kl_targets_are_the_other_heads_detached():
    net, _ = tree("resnet8", [2, 2])
    task = OneTask(net, "collaborative", T=2.0, beta=0.5)
    batch = Batch(torch.randn(6, 1, 8, 8), torch.randint(0, 5, (6,)))
    out = task(batch, Progress(1, 1))
    logits = [z.detach() for z in net.forward_all(batch.x)[0]]
    for i in range(4):
        consensus = (sum(logits) - logits[i]) / 3
        assert out.terms[f"kl_head{i + 1}"].item() == pytest.approx(kd_loss(logits[i], consensus, 2.0).item(), rel=1e-4)
    expected = sum(0.5 * out.terms[f"ce_head{i}"] + 0.5 * out.terms[f"kl_head{i}"] for i in range(1, 5))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    net.zero_grad()
    out.terms["kl_head4"].backward()  # head 4's KL pulls head 4 only: the consensus it learns from is a constant
    assert any(p.grad is not None and p.grad.any() for p in net.extra_heads[2].parameters())
    for other in net.extra_heads[:2]:
        assert all(p.grad is None or not p.grad.any() for p in other.parameters())
    assert all(p.grad is None or not p.grad.any() for p in net.heads[0].parameters())


def test_a_tree_deeper_than_the_student_is_refused_in_one_line(tmp_path):
    cfg = compose_config(["debug=fast", "dataset=digits", f"paths.outputs={tmp_path}", "scheme=one", "student=resnet8",
                          "teacher=resnet8", "scheme.variant=collaborative", "scheme.splits=[2,2,2,2]"])
    with pytest.raises(KdrunError, match=r"scheme.splits=\[2, 2, 2, 2\] .* student=resnet8 can be split at 3") as e:
        branched_student(SchemeContext(cfg, build_data(cfg)), [2, 2, 2, 2], gate=False)
    assert "\n" not in str(e.value)


def test_a_student_without_a_declared_last_stage_is_refused_in_one_line(tmp_path):
    cfg = compose_config(["debug=fast", "dataset=digits", f"paths.outputs={tmp_path}", "scheme=one", "student=vgg8",
                          "teacher=resnet8"])
    with pytest.raises(KdrunError, match="student=vgg8 does not; these do: .*resnet8") as e:
        branched_student(SchemeContext(cfg, build_data(cfg)), [3], gate=True)
    assert "\n" not in str(e.value) and "vgg8," not in str(e.value)


@pytest.mark.parametrize("override, message", [("scheme.variant=nope", "scheme.variant=nope"),
                                               ("scheme.branches=1", "scheme.branches=1"),
                                               ("scheme.splits=[2,2]", "needs scheme.variant=collaborative"),
                                               ("scheme.variant=collaborative scheme.splits=[2,1]", r"scheme.splits=\[2, 1\] must be")])
def test_bad_one_options_are_one_line_errors(tmp_path, override, message):
    assert_one_line_error(tmp_path, ["scheme=one", *override.split()], message)


@pytest.mark.slow
@pytest.mark.parametrize("options", [["scheme.variant=one"], ["scheme.variant=collaborative"],
                                     ["scheme.variant=collaborative", "scheme.splits=[2,2]"]])
def test_one_cli_deploys_a_branch_and_the_ensemble(workdir, options, monkeypatch):
    run_here([*TINY, "student.hidden=[16,16,16]", "measure.enabled=false", "scheme=one", *options,
              "hydra.run.dir=outputs/run"], workdir, monkeypatch)
    run = workdir / "outputs/run"
    stage = read_results(run)["stages"]["one"]
    assert set(stage["models"]) == {"branch1", "ensemble"}
    assert stage["models"]["ensemble"]["params"] > stage["models"]["branch1"]["params"]
    assert stage["splits"] == ([2, 2] if len(options) == 2 else [3]) and stage["branches"] == (4 if len(options) == 2 else 3)
    table = (run / "table.csv").read_text()
    assert "one/branch1" in table and "one/ensemble" in table
    student = create_model("mlp", num_classes=10, in_channels=1, input_size=(8, 8), hidden=[16, 16, 16])
    student.load_state_dict(torch.load(run / "checkpoints/one/best.pt", weights_only=True)["model"])  # strict


# torchvision's ImageNet models (tv_*: slow to build) declare no stages; every other registered model is checked
@pytest.mark.parametrize("arch", [name for name in list_models() if not name.startswith("tv_")])
def test_declared_stages_chain_to_the_models_forward(arch):
    """Every registered model that declares its stages: the parts compose to ``forward``, the channel counts
    are those at each boundary, and the last-stage split ONE uses is the same chain cut before its last part."""
    signal = model_spec(arch).input_kind == "signal"
    shape = (1, 40) if signal else (3, 8, 8)
    torch.manual_seed(0)
    net = create_model(arch, num_classes=5, in_channels=shape[0], input_size=shape[1:],
                       **({"hidden": [12, 8]} if arch == "mlp" else {})).eval()
    if not net.declares_stages:
        pytest.skip(f"{arch} does not declare its stages")
    parts, channels = net.split_stages()
    assert len(channels) == len(parts) - 1 >= 1
    x = h = torch.randn(2, *shape)
    for i, part in enumerate(parts):
        h = part(h)
        assert i == len(parts) - 1 or h.shape[1] == channels[i]
    with torch.no_grad():
        assert torch.allclose(h, net(x), atol=1e-5)
        trunk, head, width = net.split_last_stage()
        assert [id(p) for p in head.parameters()] == [id(p) for p in parts[-1].parameters()] and width == channels[-1] and torch.allclose(head(trunk(x)), net(x), atol=1e-5)
