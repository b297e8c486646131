"""Transfer sets (kdrun/data/transfer.py): building them, pairing them with labeled batches, and
using them only for the distillation terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from test_data import assert_one_line_naming, write_cifar10, write_mnist, write_png_tree

import kdrun.data.mnist1d as mnist1d
from kdrun.tasks.build import build_transfer
from kdrun.data.base import TensorData
from kdrun.data.cifar import load_cifar10
from kdrun.data.digits import load_digits
from kdrun.data.loaders import make_loader
from kdrun.data.synthetic import load_synthetic
from kdrun.data.torchvision_sets import load_mnist
from kdrun.data.transfer import TransferPairs, dataset_transfer, folder_transfer, generated_transfer, pair_with_transfer
from kdrun.data.base import NO_LABEL
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import LossWeights, Method, Needs
from kdrun.methods.kd import kd_loss
from kdrun.models.features import Features
from kdrun.models.registry import create_model
from kdrun.tasks.distill import DistillTask

# ---------------------------------------------------------------- pairing labeled and transfer batches


def labeled_and_transfer(n_labeled=20, n_transfer=13):
    labeled = TensorData(torch.arange(n_labeled, dtype=torch.float32).view(-1, 1), torch.arange(n_labeled))
    transfer = TensorData(-1.0 - torch.arange(n_transfer, dtype=torch.float32).view(-1, 1),
                          torch.full((n_transfer,), NO_LABEL))  # fmt: skip
    return labeled, transfer


def paired(labeled, transfer, batch_size=4, seed=0, with_index=False) -> TransferPairs:
    return pair_with_transfer(make_loader(labeled, batch_size, True, seed, with_index=with_index), transfer,
                              batch_size, seed)


def epoch_of(loader, epoch: int) -> list[dict]:
    loader.set_epoch(epoch)
    return list(loader)


def test_pairs_keep_labeled_batches_and_draw_transfer_inputs_from_the_transfer_set_only():
    labeled, transfer = labeled_and_transfer()
    pairs = paired(labeled, transfer, with_index=True)
    plain = make_loader(labeled, 4, True, 0, with_index=True)
    plain.set_epoch(2)
    batches = epoch_of(pairs, 2)
    assert len(pairs) == len(batches) == 5
    for batch, (x, y, index) in zip(batches, plain):
        assert set(batch) == {"x", "y", "index", "transfer_x"}
        assert torch.equal(batch["x"], x) and torch.equal(batch["y"], y) and torch.equal(batch["index"], index)
        assert batch["transfer_x"].shape == (4, 1) and bool((batch["transfer_x"] < 0).all())
    seen = torch.cat([b["transfer_x"] for b in batches]).flatten()
    # 13 transfer inputs, full batches of 4: each cycle visits 12 of them in a fresh order
    assert len(seen) == 20 and len(set(seen[:12].tolist())) == 12 and len(set(seen[12:].tolist())) == 8


def test_pairs_are_a_function_of_seed_and_epoch_so_resume_is_exact():
    labeled, transfer = labeled_and_transfer()
    run = paired(labeled, transfer)
    for epoch in range(3):  # an uninterrupted run, including a partly consumed transfer cycle per epoch
        epoch_of(run, epoch)
    uninterrupted = epoch_of(run, 3)
    resumed = epoch_of(paired(labeled, transfer), 3)
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other_epoch, other_seed = epoch_of(paired(labeled, transfer), 4), epoch_of(paired(labeled, transfer, seed=1), 3)
    flat = lambda bs: torch.cat([b["transfer_x"] for b in bs])  # noqa: E731
    assert not torch.equal(flat(uninterrupted), flat(other_epoch))
    assert not torch.equal(flat(uninterrupted), flat(other_seed))


def test_a_transfer_set_smaller_than_a_batch_still_pairs():
    labeled, transfer = labeled_and_transfer(n_transfer=3)
    batches = epoch_of(paired(labeled, transfer), 0)
    assert [len(b["transfer_x"]) for b in batches] == [3] * 5


# ---------------------------------------------------------------- generated transfer sets


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(mnist1d, "TRANSFER_CHUNK", 40)  # several chunks, fast


def test_mnist1d_transfer_is_deterministic_cached_and_fresh(tmp_path, small_chunks, monkeypatch):
    x = mnist1d.transfer_inputs(str(tmp_path / "a"), 42, 95)
    assert x.shape == (95, 1, 40) and x.dtype == torch.float32
    assert (tmp_path / "a" / "mnist1d" / "transfer_seed42_n95.npy").is_file()
    assert torch.equal(x, mnist1d.transfer_inputs(str(tmp_path / "b"), 42, 95)), "same on every machine"
    chunks = [x[:40], x[40:80]]
    assert not torch.equal(chunks[0], chunks[1]), "each chunk has its own seed"
    assert len({mnist1d.transfer_seed(42, i) for i in range(3)} | {42}) == 4, "never the dataset's seed"
    assert not torch.equal(x, mnist1d.transfer_inputs(str(tmp_path / "a"), 7, 95)), "follows dataset.seed"

    def no_generation(*args, **kwargs):
        raise AssertionError("a cached transfer set must not be generated again")

    monkeypatch.setattr(mnist1d, "generate_mnist1d", no_generation)
    assert torch.equal(x, mnist1d.transfer_inputs(str(tmp_path / "a"), 42, 95))


def test_mnist1d_transfer_signals_are_not_the_published_ones(monkeypatch):
    # with one chunk of the same size, a transfer seed equal to the dataset's would repeat its signals exactly
    monkeypatch.setattr(mnist1d, "TRANSFER_CHUNK", 200)
    published = mnist1d.generate_mnist1d(num_samples=200, seed=42)["x"]
    transfer = mnist1d.generate_transfer(200, dataset_seed=42)
    assert transfer.shape == (200, 40)
    assert np.abs(transfer[:, None, :] - published[None, :, :]).sum(-1).min() > 1e-3
    assert abs(transfer.mean()) < 0.2 and abs(transfer.std() - 1) < 0.2, "scaled like the train signals"


def test_generated_transfer_has_no_labels_and_needs_a_generator():
    data = load_synthetic(num_train=32, num_test=8)
    transfer = generated_transfer(data, 50)
    assert transfer.x.shape == (50, 3, 8, 8) and bool((transfer.y == NO_LABEL).all())
    assert torch.equal(transfer.x, generated_transfer(data, 50).x)
    assert not any(torch.equal(t, x) for t in transfer.x for x in data.train.x)
    with pytest.raises(KdrunError) as e:
        generated_transfer(load_digits(), 10)
    assert_one_line_naming(e, "distill.transfer_size=10", "digits", "mnist1d", "distill.transfer_set")


# ---------------------------------------------------------------- folders and datasets without labels


def test_folder_transfer_is_shaped_and_augmented_like_the_train_images(tmp_path):
    write_cifar10(tmp_path / "data")
    write_png_tree(tmp_path / "unlabeled", {"a": ["x"], "b": ["y"]}, per_class=3, size=(40, 50))
    cifar = load_cifar10(str(tmp_path / "data"), verify=False)
    transfer = folder_transfer(str(tmp_path / "unlabeled"), cifar, 0)
    assert len(transfer) == 6
    x, y = transfer[0]
    assert x.shape == (3, 32, 32) and y == NO_LABEL
    torch.manual_seed(0)
    views = {transfer[0][0].sum().item() for _ in range(8)}
    assert len(views) > 1, "the train augmentation (random crop, flip) applies"
    assert len(folder_transfer(str(tmp_path / "unlabeled"), cifar, 4)) == 4

    write_mnist(tmp_path / "data")
    gray = folder_transfer(str(tmp_path / "unlabeled"), load_mnist(str(tmp_path / "data")), 0)
    assert gray[0][0].shape == (1, 28, 28)
    with pytest.raises(KdrunError) as e:
        folder_transfer(str(tmp_path / "unlabeled"), cifar, 7)
    assert_one_line_naming(e, "distill.transfer_size=7", "6")
    with pytest.raises(KdrunError) as e:
        folder_transfer(str(tmp_path / "unlabeled"), load_digits(), 0)
    assert_one_line_naming(e, "digits", "cifar10", "distill.transfer_size")


def test_dataset_transfer_drops_labels_and_checks_the_shape():
    data = load_synthetic(num_train=32, num_test=8)
    other = load_synthetic(num_train=20, num_test=4, seed=5)
    transfer = dataset_transfer(other, data.info, 0, "synthetic")
    assert len(transfer) == 20 and transfer[3][1] == NO_LABEL and torch.equal(transfer[3][0], other.train.x[3])
    with pytest.raises(KdrunError) as e:
        dataset_transfer(load_synthetic(size=6), data.info, 0, "kdrun.data.synthetic.load_synthetic")
    assert_one_line_naming(e, "distill.transfer_set=kdrun.data.synthetic.load_synthetic", "(3, 6, 6)", "(3, 8, 8)")


def transfer_cfg(**distill):
    return OmegaConf.create({"method": {"name": "kd", "_target_": "kdrun.methods.kd.KD"},
                             "distill": {"transfer_set": None, "transfer_size": 0, **distill}})


def test_build_transfer_chooses_by_config():
    data = load_synthetic(num_train=32, num_test=8)
    assert build_transfer(transfer_cfg(), data) is None
    assert len(build_transfer(transfer_cfg(transfer_size=12), data)) == 12
    node = {"_target_": "kdrun.data.synthetic.load_synthetic", "num_train": 16, "seed": 3}
    assert len(build_transfer(transfer_cfg(transfer_set=node), data)) == 16
    with pytest.raises(KdrunError) as e:
        build_transfer(transfer_cfg(transfer_set={"_target_": "kdrun.data.nothing_here"}), data)
    assert_one_line_naming(e, "distill.transfer_set._target_=kdrun.data.nothing_here")


# ---------------------------------------------------------------- DistillTask on transfer batches


class Recorder(Method):
    """A method term that records the batch and features it is given."""

    def __init__(self, needs: Needs) -> None:
        super().__init__(ctx=None)
        self.needs = needs
        self.seen: list[tuple[Features, Features, Batch]] = []

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        self.seen.append((s, t, batch))
        return {"probe": (s.pooled - s.pooled.detach()).sum()}  # zero, with a gradient path


def recorded_task(needs: Needs, weights: LossWeights):
    """A DistillTask on tiny MLPs that records every input each model gets (plain and feature passes)."""
    torch.manual_seed(0)
    student = create_model("mlp", num_classes=5, in_channels=1, input_size=(40,), hidden=[8])
    teacher = create_model("mlp", num_classes=5, in_channels=1, input_size=(40,), hidden=[16])
    task = DistillTask(student, teacher, Recorder(needs), weights)
    calls = {"student": [], "teacher": []}
    for name, model in (("student", student), ("teacher", teacher)):
        model.register_forward_hook(lambda m, a, o, n=name: calls[n].append(("logits", a[0])))
        original = model.forward_features  # forward_features bypasses forward hooks

        def recorded(x, preact=False, original=original, name=name):
            calls[name].append(("features", x))
            return original(x, preact)

        model.forward_features = recorded
    return task, student, teacher, calls


def labeled_batch_with_transfer() -> Batch:
    return Batch(torch.randn(6, 1, 40), torch.tensor([0, 1, 2, 3, 4, 0]), index=torch.arange(6),
                 transfer_x=torch.randn(9, 1, 40))


def test_ce_uses_labeled_data_and_distillation_terms_the_transfer_inputs():
    weights = LossWeights(T=3.0, alpha=0.8, gamma=0.2, beta=1.0)
    task, student, teacher, calls = recorded_task(Needs(features=True), weights)
    method, batch = task.method, labeled_batch_with_transfer()
    out = task(batch, Progress(1, 1))

    assert calls["student"] == [("features", batch.transfer_x), ("logits", batch.x)], "then CE on labeled data"
    assert calls["teacher"] == [("features", batch.transfer_x)]
    with torch.no_grad():
        ce = F.cross_entropy(student(batch.x), batch.y)
        kd = kd_loss(student(batch.transfer_x), teacher(batch.transfer_x), 3.0)
    assert out.terms["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert out.terms["kd"].item() == pytest.approx(kd.item(), rel=1e-6)
    assert out.logits.shape == (6, 5), "train top-1 is measured on the labeled batch"
    given = method.seen[0][2]
    assert given.x is batch.transfer_x and given.index is None
    assert torch.equal(given.y, teacher(batch.transfer_x).argmax(1)), "transfer labels are the teacher's"


def test_methods_needing_dataset_indices_get_the_labeled_batch_and_kd_the_transfer_inputs():
    index_bound = Needs(features=True, sample_index=True)
    task, student, teacher, calls = recorded_task(index_bound, LossWeights(alpha=0.5, beta=1.0))
    batch = labeled_batch_with_transfer()
    out = task(batch, Progress(1, 1))
    assert calls["student"] == [("logits", batch.transfer_x), ("features", batch.x)]
    assert calls["teacher"] == [("logits", batch.transfer_x), ("features", batch.x)]
    s, t, given = task.method.seen[0]
    assert given is batch and torch.equal(s.logits, student(batch.x)) and torch.equal(t.logits, teacher(batch.x))
    with torch.no_grad():
        kd = kd_loss(student(batch.transfer_x), teacher(batch.transfer_x), 4.0)
    assert out.terms["kd"].item() == pytest.approx(kd.item(), rel=1e-6)

    task, *_ = recorded_task(index_bound, LossWeights(alpha=0.0, gamma=1.0, beta=1.0))
    assert not task.uses_distill_view, "nothing reads transfer inputs: the stage does not load them"
    assert task.distill_input(batch) is batch.x


# ---------------------------------------------------------------- resume through the engine


def distil_synthetic(tmp_path, epochs: int) -> dict:
    """KD with a generated transfer set and mixup through ``fit``; returns the student's weights."""
    from kdrun.data.mix import BatchMix
    from kdrun.engine.fit import EngineEnv, fit
    from kdrun.engine.progress import ProgressReporter
    from kdrun.engine.stage import OptimSettings, Stage
    from kdrun.methods.kd import KD
    from kdrun.runs.writer import RunWriter

    data = load_synthetic(num_train=40, num_test=8)
    transfer = generated_transfer(data, 30)
    torch.manual_seed(0)
    student, teacher = (create_model("mlp", num_classes=4, in_channels=3, input_size=(8, 8), hidden=[h], dropout=0.1)
                        for h in (8, 16))  # fmt: skip
    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(alpha=0.9), mix=BatchMix("mixup"))
    torch.nn.Module.__init__(task.method)

    def train_loader(with_index: bool, with_transfer: bool = False):
        assert with_transfer
        return pair_with_transfer(make_loader(data.train, 8, True, 0), transfer, 8, 0)

    stage = Stage("distilled", "distilled", "mlp", "kd", task, epochs, OptimSettings(milestones=()),
                  uses_transfer=True)
    env = EngineEnv(torch.device("cpu"), None, train_loader, make_loader(data.test, 8, False, 0),
                    tmp_path / "checkpoints", RunWriter(tmp_path, enabled=False), ProgressReporter(rich=False))
    fit(stage, env)
    return {k: v.clone() for k, v in student.state_dict().items()}


def test_distillation_with_transfer_and_mix_resumes_exactly(tmp_path):
    straight = distil_synthetic(tmp_path / "straight", epochs=3)
    distil_synthetic(tmp_path / "resumed", epochs=1)  # "interrupted" after epoch 1
    resumed = distil_synthetic(tmp_path / "resumed", epochs=3)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not all(torch.equal(straight[k], v) for k, v in distil_synthetic(tmp_path / "short", 2).items())
