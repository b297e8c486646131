"""Mixing and transfer sets through the real CLI, on tiny settings."""

from __future__ import annotations

import pytest
from conftest import CONF, TINY, compose_config, read_metrics, read_results
from in_process import run_here
from test_data import assert_one_line_naming, write_cifar10, write_png_tree

from kdrun.config.checks import check_config
from kdrun.errors import KdrunError
from kdrun.schemes.registry import STAGE_NAMES

SYNTHETIC = [a for a in TINY if not a.startswith("dataset=")] + ["dataset=synthetic"]
OTHER_DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml") if p.stem != "mnist1d")


def test_the_default_experiment_distils_on_a_generated_transfer_set():
    cfg = compose_config([])
    assert cfg.dataset._target_.endswith("load_mnist1d") and cfg.distill.transfer_size == 20000
    assert cfg.distill.transfer_set is None and cfg.distill.mix is None
    assert compose_config(["distill.transfer_size=0"]).distill.transfer_size == 0
    methods_keep_it = compose_config(["method=kd", "distill.alpha=0.5"]).distill
    assert methods_keep_it.transfer_size == 20000 and methods_keep_it.alpha == 0.5


@pytest.mark.parametrize("dataset", OTHER_DATASETS)
def test_other_datasets_distil_on_their_labeled_batches(dataset):
    d = compose_config([f"dataset={dataset}"]).distill
    assert d.transfer_size == 0 and d.transfer_set is None and d.mix is None


@pytest.mark.parametrize("transfer", [
    ["distill.transfer_size=100"],  # generated
    ["distill.transfer_set={_target_:kdrun.data.synthetic.load_synthetic,num_train:50,seed:3}"],  # a dataset
])
@pytest.mark.slow  # end-to-end runs; transfer and mix on their own: test_transfer.py, test_mix.py
def test_transfer_set_with_mixup(workdir, transfer, monkeypatch):
    run_dir = workdir / "run"
    run_here([*SYNTHETIC, *transfer, "distill.mix=mixup", "distill.transfer_batch_size=16",
              "stages=[teacher,baseline,distilled]", f"hydra.run.dir={run_dir}"], workdir, monkeypatch)
    results = read_results(run_dir)
    assert results["status"] == "completed" and results["distill"]["mix"] == "mixup"
    distilled = [m for m in read_metrics(run_dir) if m["stage"] == "distilled"]
    assert len(distilled) == 1 and {"train_ce", "train_kd"} <= set(distilled[0])
    baseline = [m for m in read_metrics(run_dir) if m["stage"] == "baseline"]
    assert "train_kd" not in baseline[0], "only the distillation stage uses the transfer set"


@pytest.mark.slow  # an end-to-end run; test_transfer.py, test_mix.py
def test_folder_transfer_set_with_cutmix_on_cifar_files(workdir, monkeypatch):
    write_cifar10(workdir / "data")
    write_png_tree(workdir / "unlabeled", {"a": ["x"]}, per_class=6, size=(20, 24))
    run_dir = workdir / "run"
    run_here(["debug=fast", "dataset=cifar10", "dataset.verify=false", "teacher=mlp", "student=mlp",
              "teacher.hidden=[16]", "student.hidden=[8]", "trainer.batch_size=4",
              f"distill.transfer_set={workdir / 'unlabeled'}", "distill.mix=cutmix", "stages=[teacher,distilled]",
              f"hydra.run.dir={run_dir}"], workdir, monkeypatch)
    assert read_results(run_dir)["status"] == "completed"


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["distill.mix=blend"], ["distill.mix=blend", "mixup", "cutmix"]),
        (["distill.mix_alpha=0"], ["distill.mix_alpha=0", "> 0"]),
        (["distill.transfer_size=-5"], ["distill.transfer_size=-5", "non-negative"]),
        (["distill.transfer_batch_size=0"], ["distill.transfer_batch_size=0", "positive"]),
        (["distill.transfer_set=/no/such/folder"], ["distill.transfer_set=/no/such/folder", "not found"]),
        (["distill.transfer_set={root:x}"], ["distill.transfer_set", "_target_"]),
    ],
)
def test_bad_distill_data_options_are_caught_before_running(args, parts):
    with pytest.raises(KdrunError) as e:
        check_config(compose_config([*TINY, *args]), STAGE_NAMES)
    assert_one_line_naming(e, *parts)


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["distill.mix=blend"], ["distill.mix=blend", "mixup", "cutmix"]),  # found before the run directory exists
        (["distill.transfer_size=10"], ["distill.transfer_size=10", "digits", "distill.transfer_set"]),  # at build
    ],
)
def test_bad_distill_data_options_fail_in_one_line(workdir, args, parts, monkeypatch):
    proc = run_here([*TINY, *args, f"hydra.run.dir={workdir / 'run'}"], workdir, monkeypatch, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("kdrun: error:")]
    assert len(lines) == 1, proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
