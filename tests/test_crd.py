"""CRD: negatives from other classes only, banks saved with the method (exact resume), bank updates
outside autograd. Loss and memory updates against scripts/golden/crd.py (its check())."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config

from kdrun.data.base import DataInfo
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import MethodContext
from kdrun.methods.crd import CRD, negatives_available
from kdrun.methods.crd_memory import OtherClassSampler
from kdrun.models.features import FeatureInfo, Features
from kdrun.schemes.context import SchemeContext


def info(dim: int) -> FeatureInfo:
    return FeatureInfo(stage_channels=(dim,), stage_sizes=((),), pooled_dim=dim, num_classes=3)


def crd(targets: torch.Tensor, s_dim: int = 6, t_dim: int = 8, **kw) -> CRD:
    data = DataInfo("test", "signal", 1, (40,), int(targets.max()) + 1, len(targets), 10)
    return CRD(MethodContext(info(s_dim), info(t_dim), data, targets), **kw)


def imbalanced_targets() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.full((n,), c) for c, n in enumerate([50, 30, 120, 7])])[torch.randperm(207, generator=g)]


@pytest.mark.parametrize("replacement", [False, True])
def test_negatives_never_come_from_the_positive_class(replacement):
    targets = imbalanced_targets()
    k = 40 if replacement else negatives_available(targets)
    sampler = OtherClassSampler(targets, k, replacement)
    torch.manual_seed(0)
    index = torch.arange(len(targets))
    neg = sampler(index)
    assert neg.shape == (len(targets), k)
    assert not (targets[neg] == targets[index].unsqueeze(1)).any()
    if not replacement:
        assert all(len(set(row.tolist())) == k for row in neg)  # no repeats
        largest = neg[targets == 2]  # its pool is exactly k samples: each drawn once
        assert all(set(row.tolist()) == set((targets != 2).nonzero().flatten().tolist()) for row in largest)
    # every other class is reachable (the draw is over all other classes, not a fixed subset)
    row_classes = set(targets[neg[targets == 3]].flatten().tolist())
    assert row_classes == {0, 1, 2}


def test_number_of_negatives_is_capped_at_what_the_dataset_has():
    targets = imbalanced_targets()
    assert negatives_available(targets) == 207 - 120
    assert crd(targets).num_negatives == 87
    assert crd(targets, nce_k=10).num_negatives == 10
    assert crd(targets, replacement=True).num_negatives == 16384
    default = crd(targets.clone()).sampler
    assert default.k == 87


def test_default_config_on_the_embedded_dataset_uses_every_available_negative():
    cfg = compose_config(["method=crd"])
    assert cfg.dataset._target_.endswith("load_mnist1d")
    assert (cfg.method.nce_k, cfg.method.nce_t, cfg.method.momentum, cfg.method.feat_dim) == (16384, 0.07, 0.5, 128)
    targets = torch.arange(4000) % 10  # MNIST-1D's size, balanced (the CLI test checks the real 3589)
    assert crd(targets).num_negatives == 3600


def test_crd_declares_sample_indices_and_the_stage_asks_the_loader_for_them():
    from kdrun.data.base import DataBundle, TensorData

    cfg = compose_config(["method=crd", "dataset=digits", "teacher=mlp", "student=mlp"])
    x, y = torch.randn(30, 1, 8, 8), torch.arange(30) % 10
    info_ = DataInfo("digits", "image", 1, (8, 8), 10, 30, 30)
    ctx = SchemeContext(cfg, DataBundle(info_, TensorData(x, y), TensorData(x, y), y))
    student, teacher = ctx.model("student"), ctx.model("teacher")
    method = ctx.method(student, teacher)
    assert method.needs.sample_index and method.needs.features
    assert ctx.distill_stage("distilled", "distilled", student, teacher, method).needs_index


def test_banks_are_buffers_saved_with_the_method_and_resume_exactly():
    targets = imbalanced_targets()
    a = crd(targets, nce_k=20)
    names = set(a.state_dict())
    assert {"memory.memory_s", "memory.memory_t", "memory.normalizer"} <= names
    assert not any(name.startswith("sampler.") for name in names)  # derived from the dataset, rebuilt
    assert a.memory.memory_s.shape == (207, 128) and not a.memory.memory_s.requires_grad

    def step(method: CRD, seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        s, t = torch.randn(16, 6), torch.randn(16, 8)
        terms = method(Features(s, pooled=s), Features(t, pooled=t), Batch(s, targets[:16], torch.arange(16) * 3),
                       Progress(1, 1))
        sum(terms.values()).backward()
        return {k: v.item() for k, v in terms.items()}

    step(a, 1)
    torch.manual_seed(123)
    b = crd(targets, nce_k=20)  # different initial banks and embeddings
    b.load_state_dict(a.state_dict())
    assert step(a, 2) == step(b, 2)
    assert torch.equal(a.memory.memory_s, b.memory.memory_s) and torch.equal(a.memory.memory_t, b.memory.memory_t)


def test_bank_updates_touch_only_the_batch_rows_and_stay_out_of_autograd():
    targets = imbalanced_targets()
    method = crd(targets, nce_k=20, momentum=0.8)
    before_s, before_t = method.memory.memory_s.clone(), method.memory.memory_t.clone()
    s, t = torch.randn(8, 6, requires_grad=True), torch.randn(8, 8)
    index = torch.tensor([0, 3, 9, 27, 81, 100, 150, 206])
    terms = method(Features(s, pooled=s), Features(t, pooled=t), Batch(s, targets[index], index), Progress(1, 1))
    sum(terms.values()).backward()  # works although the banks changed in place after the scores
    with torch.no_grad():
        expected = torch.nn.functional.normalize(0.8 * before_t[index] + 0.2 * method.embed_t(t), dim=1)
    assert torch.allclose(method.memory.memory_t[index], expected, atol=1e-6)
    changed = (method.memory.memory_s != before_s).any(1) | (method.memory.memory_t != before_t).any(1)
    assert torch.equal(changed.nonzero().flatten(), index)
    assert method.memory.memory_s.grad_fn is None and method.memory.memory_t.grad_fn is None
    assert torch.allclose(method.memory.memory_s[index].norm(dim=1), torch.ones(8))
    assert s.grad is not None and method.memory.normalizer.min() > 0


def test_a_single_class_dataset_is_refused_in_one_line():
    with pytest.raises(KdrunError, match="single class"):
        crd(torch.zeros(20, dtype=torch.long))


def test_missing_indices_fail_loudly():
    method = crd(imbalanced_targets(), nce_k=5)
    s, t = torch.randn(4, 6), torch.randn(4, 8)
    with pytest.raises(RuntimeError, match="dataset indices"):
        method(Features(s, pooled=s), Features(t, pooled=t), Batch(s, torch.zeros(4)), Progress(1, 1))


class NullSink:
    def begin_stage(self, stage, first_epoch, done=()): ...
    def log_epoch(self, stage, epoch, metrics): ...
    def end_stage(self, stage): ...


def crd_stage(tmp_path: Path, epochs: int, init_seed: int):
    """A CRD distillation stage on random 1 x 40 signals through the real engine (fit)."""
    from kdrun.data.base import TensorData
    from kdrun.data.loaders import make_loader
    from kdrun.engine.fit import EngineEnv
    from kdrun.engine.progress import ProgressReporter
    from kdrun.methods.base import LossWeights
    from kdrun.models.registry import create_model
    from kdrun.tasks.distill import DistillTask
    from kdrun.engine.stage import OptimSettings, Stage

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 40, generator=g), torch.arange(96) % 4
    data = TensorData(x, y)
    torch.manual_seed(0)  # the teacher is not part of the stage's checkpoint: the same one every time
    teacher = create_model("cnn1d", num_classes=4, in_channels=1, input_size=(40,), channels=[4])
    torch.manual_seed(init_seed)
    student = create_model("mlp", num_classes=4, in_channels=1, input_size=(40,), hidden=[12])
    info_ = DataInfo("test", "signal", 1, (40,), 4, 96, 96)
    method = CRD(MethodContext(student.feature_info, teacher.feature_info, info_, y), feat_dim=8, nce_k=30)
    task = DistillTask(student, teacher, method, LossWeights(alpha=0.0, gamma=1.0, beta=0.8))
    env = EngineEnv(torch.device("cpu"), None, lambda with_index, with_transfer=False: make_loader(data, 16, True, 7, with_index=with_index),
                    make_loader(data, 32, False, 7), tmp_path, NullSink(), ProgressReporter(rich=False), seed=3)
    return Stage("distilled", "distilled", "mlp", "crd", task, epochs, OptimSettings(milestones=()),
                 needs_index=method.needs.sample_index), env


def test_an_interrupted_crd_stage_resumes_exactly(tmp_path):
    from kdrun.engine.fit import fit

    straight, env = crd_stage(tmp_path / "a", epochs=2, init_seed=0)
    fit(straight, env)
    first, env = crd_stage(tmp_path / "b", epochs=1, init_seed=0)
    fit(first, env)  # "interrupted" after epoch 1: checkpoints/distilled/last.pt holds epoch 1
    resumed, env = crd_stage(tmp_path / "b", epochs=2, init_seed=99)  # fresh objects, other initial weights
    fit(resumed, env)
    a, b = straight.task.state_dict(), resumed.task.state_dict()
    assert a.keys() == b.keys() and "method.memory.memory_s" in a
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
