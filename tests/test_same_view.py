"""Proof that teacher and student see the same augmented view of every sample.

A distillation stage trains through the real engine (``fit``) on CIFAR-format files, whose train
transform augments randomly (crop + flip), optionally with mixing and a transfer folder (augmented
too). Forward hooks record what the teacher and the student actually receive at every step.
"""

from __future__ import annotations

import pytest
import torch
from test_data import write_cifar10, write_png_tree
from torchvision.datasets import CIFAR10

from kdrun.data.cifar import CIFAR10Files, CIFAR10_MEAN, CIFAR10_STD, cifar_transforms, load_cifar10
from kdrun.data.loaders import make_loader
from kdrun.data.mix import BatchMix
from kdrun.data.transfer import folder_transfer, pair_with_transfer
from kdrun.engine.fit import EngineEnv, fit
from kdrun.engine.progress import ProgressReporter
from kdrun.engine.stage import OptimSettings, Stage
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import KD
from kdrun.models.registry import create_model
from kdrun.runs.writer import RunWriter
from kdrun.tasks.distill import DistillTask

BATCH = 8


class RecordingLoader:
    """Passes a loader through, opening one record per training step."""

    def __init__(self, loader, steps: list[dict]) -> None:
        self.loader, self.steps = loader, steps

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for raw in self.loader:
            self.steps.append({"raw": raw, "student": [], "teacher": []})
            yield raw


def distil(tmp_path, data, transfer, mix: str | None) -> list[dict]:
    """Two epochs of KD through ``fit``; returns, per step, the loader's batch and each model's inputs."""
    torch.manual_seed(0)
    student, teacher = (create_model("mlp", num_classes=10, in_channels=3, input_size=(32, 32), hidden=[h])
                        for h in (8, 16))  # fmt: skip
    steps: list[dict] = []
    # The student's hook skips evaluation passes (eval mode); the frozen teacher only runs in training steps.
    student.register_forward_hook(lambda m, a, o: steps[-1]["student"].append(a[0].clone()) if m.training else None)
    teacher.register_forward_hook(lambda m, a, o: steps[-1]["teacher"].append(a[0].clone()))

    def train_loader(with_index: bool, with_transfer: bool = False):
        labeled = make_loader(data.train, BATCH, True, seed_for_epoch=0, with_index=with_index)
        loader = pair_with_transfer(labeled, transfer, BATCH, 0) if with_transfer else labeled
        return RecordingLoader(loader, steps)

    task = DistillTask(student, teacher, KD.__new__(KD), LossWeights(alpha=0.9), mix=BatchMix(mix) if mix else None)
    torch.nn.Module.__init__(task.method)
    stage = Stage("distilled", "distilled", "mlp", "kd", task, 2, OptimSettings(milestones=()), needs_index=True,
                  uses_transfer=transfer is not None)
    env = EngineEnv(torch.device("cpu"), None, train_loader, make_loader(data.test, 64, False, 0),
                    tmp_path / "checkpoints", RunWriter(tmp_path, enabled=False), ProgressReporter(rich=False))
    fit(stage, env)
    return steps


def unaugmented(root) -> CIFAR10:
    """The train images with the test transform only (no crop, no flip)."""
    return CIFAR10Files(str(root), train=True, transform=cifar_transforms(CIFAR10_MEAN, CIFAR10_STD)[1])


@pytest.mark.parametrize("mix", [None, "mixup", "cutmix"])
def test_teacher_and_student_see_the_same_augmented_view(tmp_path, mix):
    write_cifar10(tmp_path / "data")
    data = load_cifar10(str(tmp_path / "data"), verify=False)
    steps = distil(tmp_path, data, None, mix)
    assert len(steps) == 2 * 3  # 20 images, batches of 8: 3 steps per epoch

    plain, augmented = unaugmented(tmp_path / "data"), 0
    for step in steps:
        x, y, index = step["raw"]
        (seen_by_teacher,) = step["teacher"]
        if mix is None:
            assert len(step["student"]) == 1, "one student pass: CE and KD share it"
            assert torch.equal(seen_by_teacher, x) and torch.equal(step["student"][0], x)
        else:
            distill_view, clean_view = step["student"]
            assert torch.equal(seen_by_teacher, distill_view), "teacher and student get the same mixed input"
            assert torch.equal(clean_view, x) and not torch.equal(distill_view, x), "CE on the clean batch"
        augmented += sum(not torch.equal(x[j], plain[int(i)][0]) for j, i in enumerate(index))
    assert augmented > len(steps) * BATCH // 2, "the views are really augmented (else this proves nothing)"


@pytest.mark.parametrize("mix", [None, "mixup"])
def test_teacher_and_student_see_the_same_augmented_transfer_view(tmp_path, mix):
    write_cifar10(tmp_path / "data")
    write_png_tree(tmp_path / "unlabeled", {"a": ["x"]}, per_class=12, size=(32, 32))
    data = load_cifar10(str(tmp_path / "data"), verify=False)
    transfer = folder_transfer(str(tmp_path / "unlabeled"), data, 0)
    steps = distil(tmp_path, data, transfer, mix)

    transfer_views = []
    for step in steps:
        (seen_by_teacher,) = step["teacher"]
        distill_view, clean_view = step["student"]
        assert torch.equal(seen_by_teacher, distill_view)
        assert torch.equal(clean_view, step["raw"]["x"]), "CE and the train top-1 use the labeled batch"
        if mix is None:
            assert torch.equal(distill_view, step["raw"]["transfer_x"])
        transfer_views.append(step["raw"]["transfer_x"])
    # 12 images, batches of 8 (full only): the same image comes back in new random views
    sums = torch.cat(transfer_views).flatten(1).sum(1)
    assert len(set(sums.tolist())) > 12, "transfer images are augmented too"
