"""dataset.val_split: a seeded, stratified validation split held out of the training set chooses the best epoch
and is the sweep value; the test set is evaluated once per stage and never chooses. Off (the default), every epoch
is evaluated on the test set, named so, as the published tables' protocol does."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from conftest import TINY, read_metrics, read_results, run_kdrun
from kdrun.cli import sweep_value
from kdrun.data.digits import load_digits
from kdrun.data.holdout import hold_out
from kdrun.data.images import ImageTensors

EPOCHS = ["trainer.epochs=3", "trainer.max_epochs=3"]


def test_the_split_is_stratified_seeded_and_disjoint_from_training():
    whole = load_digits()
    data = hold_out(load_digits(), 0.2, seed=0)
    again = hold_out(load_digits(), 0.2, seed=0)
    other = hold_out(load_digits(), 0.2, seed=1)
    assert len(data.train) + len(data.val) == len(whole.train) and data.info.num_val == len(data.val)
    assert torch.equal(data.val.x, again.val.x) and not torch.equal(data.val.x, other.val.x)
    train_rows = {tuple(r.flatten().tolist()) for r in data.train.x}
    assert not any(tuple(r.flatten().tolist()) in train_rows for r in data.val.x)
    per_class, whole_per_class = Counter(data.val.y.tolist()), Counter(whole.train.y.tolist())
    for c, n in whole_per_class.items():  # every class held out in proportion (rounded)
        assert abs(per_class[c] - 0.2 * n) <= 1
    assert torch.equal(data.train_targets, data.train.y)


def test_held_out_images_are_read_as_the_test_set_reads_them():
    images = torch.randint(0, 255, (20, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(20) % 2
    augmented = ImageTensors(images, labels, (0.5,) * 3, (0.25,) * 3, augment=lambda x, s: torch.zeros_like(x))
    view = augmented.evaluation_view(torch.tensor([1, 2]))
    plain = ImageTensors(images, labels, (0.5,) * 3, (0.25,) * 3)
    assert not view.augmented and augmented.augmented
    assert torch.equal(view.inputs(view.x, torch.tensor([0, 1])), plain.inputs(plain.x, torch.tensor([1, 2])))


def test_a_fraction_outside_zero_to_one_is_one_line(tmp_path):
    proc = run_kdrun([*TINY, "dataset.val_split=1.5"], tmp_path, check=False)
    assert proc.returncode == 2 and "dataset.val_split=1.5 must be a fraction in [0, 1)" in proc.stderr
    assert not (tmp_path / "outputs").exists()


def _count_evaluations(monkeypatch) -> Counter:
    """How many times each evaluated set (by its size) was evaluated, wherever the engine evaluates."""
    import kdrun.engine.fit
    import kdrun.engine.runner
    from kdrun.engine.loop import evaluate

    sizes: Counter = Counter()

    def counted(model, loader, *args, **kwargs):
        sizes[loader.order.size] += 1
        return evaluate(model, loader, *args, **kwargs)

    for module in (kdrun.engine.fit, kdrun.engine.runner):
        monkeypatch.setattr(module, "evaluate", counted)
    return sizes


def test_a_stage_with_a_split_chooses_on_validation_and_tests_once(tmp_path, monkeypatch):
    sizes = _count_evaluations(monkeypatch)
    run_kdrun([*TINY, *EPOCHS, "stages=[teacher]", "dataset.val_split=0.25", "hydra.run.dir=run"], tmp_path)
    results, metrics = read_results(tmp_path / "run"), read_metrics(tmp_path / "run")
    teacher = results["stages"]["teacher"]
    assert sizes == {337: 3, 450: 1}  # every epoch on the validation split, the test set once
    best = max(metrics, key=lambda m: m["val_top1"])
    assert (teacher["best_top1"], teacher["best_epoch"]) == (best["val_top1"], best["epoch"])
    assert teacher["checkpoint"].endswith("best.pt") and teacher["test_top1"] is not None


@pytest.mark.slow  # three stages, the sweep value
def test_with_a_split_the_validation_set_chooses_and_the_test_set_is_evaluated_once(tmp_path, monkeypatch):
    sizes = _count_evaluations(monkeypatch)
    run_kdrun([*TINY, *EPOCHS, "stages=[teacher,baseline,distilled]", "dataset.val_split=0.25", "hydra.run.dir=run"],
              tmp_path)
    run = tmp_path / "run"
    results, metrics = read_results(run), read_metrics(run)
    evaluation = results["evaluation"]
    assert evaluation["per_epoch"] == "val" and evaluation["val_split"] == 0.25
    n_val, n_test = evaluation["num_val"], evaluation["num_test"]
    assert (evaluation["num_train"], n_val, n_test) == (1347 - n_val, 337, 450)
    assert sizes == {n_val: 3 * 3, n_test: 3}  # every epoch of every stage on val; test once per stage
    for name in ("teacher", "baseline", "distilled"):
        stage = results["stages"][name]
        history = [m for m in metrics if m["stage"] == name]
        assert all("val_top1" in m and "test_top1" not in m for m in history)
        best = max(history, key=lambda m: m["val_top1"])  # the first best epoch
        assert (stage["best_top1"], stage["best_epoch"]) == (best["val_top1"], best["epoch"])
        assert stage["last_top1"] == history[-1]["val_top1"] and stage["checkpoint"].endswith("best.pt")
        kept = torch.load(stage["checkpoint"], weights_only=True)
        assert kept["epoch"] == best["epoch"]
        assert stage["test_top1"] is not None
    assert results["objective"] == {"stage": "distilled", "key": "best_top1", "set": "val",
                                    "value": results["stages"]["distilled"]["best_top1"]}
    assert sweep_value(results) == results["stages"]["distilled"]["best_top1"]
    for line in (run / "kdrun.log").read_text().splitlines():  # as the console shows it: "[hh:mm:ss] message"
        message = line.split("] ", 1)[-1].split("] ", 1)[-1].split("] ", 1)[-1]
        assert "/" in message or len(f"[00:00:00] {message}") <= 100, message
    table = (run / "table.md").read_text()
    assert "val top-1" in table and "Top-1: test set, evaluated once, at the epoch chosen on the validation" in table


def test_without_a_split_every_epoch_is_the_test_set_named_so(tmp_path):
    run_kdrun([*TINY, "stages=[teacher,baseline]", "hydra.run.dir=run"], tmp_path)
    results, metrics = read_results(tmp_path / "run"), read_metrics(tmp_path / "run")
    assert results["evaluation"]["per_epoch"] == "test" and results["evaluation"]["num_val"] == 0
    assert all("test_top1" in m and "val_top1" not in m for m in metrics)
    for stage in results["stages"].values():
        assert stage["test_top1"] == stage["last_top1"] and stage["checkpoint"].endswith("last.pt")
    assert results["objective"]["key"] == "last_top1" and results["objective"]["set"] == "test"
    assert "Top-1: the test set's, at the last epoch" in (tmp_path / "run" / "table.md").read_text()


@pytest.mark.slow  # two runs each
@pytest.mark.parametrize("split", [0.0, 0.2])
def test_teacher_and_student_keep_one_split_and_the_cache_tells_splits_apart(tmp_path, split):
    """The cached teacher of a run with another split (or none) is not reused: it saw other samples."""
    run_kdrun([*TINY, "stages=[teacher]", "hydra.run.dir=a"], tmp_path)
    proc = run_kdrun([*TINY, "stages=[teacher]", f"dataset.val_split={split}", "hydra.run.dir=b"], tmp_path)
    reused = "reusing cached" in proc.stdout + proc.stderr
    assert reused == (split == 0.0)
