"""Benchmark presets run end to end (smoke mode: two steps per stage on generated data in the real formats).

A representative subset, on the cheapest pair (resnet56 -> resnet20): a logit method with a per-pair
constant (DKD), one with sample indices and memory banks (CRD+KD), a regressor (FitNet), two with an
init stage (AB with pre-activations, FT with its paraphraser), and KD through the real command line;
plus a low-lr cross-family pair, an ImageNet preset, a teacher and a student preset. Every preset is
composed in test_benchmarks.py; ``scripts/benchmark.py smoke`` runs all of them. The outputs folder
is shared within this file, so teachers and baselines are trained once (cache).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import read_metrics, run_kdrun
from in_process import run_here, skip_run_plots
from kdrun.config.presets import all_presets
from kdrun.runs.smoke import compose_run_config, smoke_overrides, smoke_run, write_smoke_data
from kdrun.benchmarks.teachers import archived_teacher, export_teacher
from kdrun.runs.pipeline import run

ROWS = ["dkd", "crd_kd", "fitnet", "ab", "ft"]
SUBSET = [f"cifar100/resnet56-resnet20/{row}" for row in ROWS] + [
    "cifar100/vgg13-mobilenetv2/kd", "cifar100/students/mobilenetv2", "cifar100/teachers/resnet56",
    "imagenet/resnet34-resnet18/dkd"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("smoke")
    write_smoke_data(work / "data")
    return work


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Batch-8 steps gain nothing from a second intra-op thread, and on a busy 2-core machine its
    spin-waiting multiplied the CPU time per step; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_run_plots(monkeypatch):
    skip_run_plots(monkeypatch)  # these runs are about stages and settings (tests/in_process.py says why)


@pytest.mark.slow  # zoo models through the pipeline; every preset composed and checked: test_benchmarks.py
@pytest.mark.parametrize("preset", SUBSET)
def test_preset_runs_in_smoke_mode(workdir, preset):
    results = smoke_run(preset, workdir / "data", workdir / "outputs")
    assert results["status"] == "completed"
    row = all_presets()[preset]["benchmark"]["row"]
    expected = {"teacher": ["teacher"], "student": ["baseline"]}.get(row, ["teacher", "baseline", "distilled"])
    assert [s for s, v in results["stages"].items() if v["in_table"]] == expected
    if row in ("ab", "ft"):
        assert f"{row}_init" in results["stages"]  # the init stage ran as its own stage
    lrs = {m["stage"]: m["lr"] for m in read_metrics(workdir / "outputs" / "runs" / preset.replace("/", "__"))}
    if preset == "cifar100/vgg13-mobilenetv2/kd":  # the student trains at 0.01, the teacher keeps 0.05
        assert lrs == {"teacher": 0.05, "baseline": 0.01, "distilled": 0.01}
    elif preset.startswith("imagenet/"):
        assert {lrs[s] for s in ("teacher", "baseline", "distilled")} == {0.2}


@pytest.mark.slow  # trains a resnet56; archived_teacher/export in-process: test_benchmarks.py
def test_teachers_dir_supplies_the_teacher(workdir, tmp_path):
    """An exported teacher (mdistiller's layout) is loaded and evaluated, not trained."""
    first = smoke_run("cifar100/teachers/resnet56", workdir / "data", workdir / "outputs")
    exported = export_teacher(first["stages"]["teacher"]["checkpoint"], tmp_path / "teachers", "resnet56")
    assert exported == tmp_path / "teachers" / "resnet56_vanilla" / "ckpt_epoch_240.pth"
    assert archived_teacher(tmp_path / "teachers", "resnet56") == exported
    assert archived_teacher(tmp_path / "teachers", "resnet50").parent.name == "ResNet50_vanilla"
    overrides = smoke_overrides("cifar100/resnet56-resnet20/kd", workdir / "data", workdir / "outputs")
    cfg = compose_run_config([*overrides, f"teachers_dir={tmp_path / 'teachers'}"])
    results = run(cfg, tmp_path / "run")
    teacher = results["stages"]["teacher"]
    assert (teacher["source"], teacher["checkpoint"]) == ("checkpoint", str(exported))
    assert teacher["last_top1"] == pytest.approx(first["stages"]["teacher"]["last_top1"])


@pytest.mark.slow  # the pipeline with a preset: test_preset_runs_in_smoke_mode
def test_preset_through_the_cli(workdir, monkeypatch):
    """The real command line: the preset's cell is saved with the run, for the comparison to read."""
    args = smoke_overrides("cifar100/resnet56-resnet20/kd", workdir / "data", workdir / "outputs")
    run_here([*args, "hydra.run.dir=outputs/runs/cli"], workdir, monkeypatch)
    run_dir = workdir / "outputs" / "runs" / "cli"
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
    saved = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "benchmark:" in saved and "pair: resnet56-resnet20" in saved


@pytest.mark.slow  # a subprocess; --help printed in-process: test_readme.py
def test_help_lists_the_presets(workdir):
    text = run_kdrun(["--help"], workdir).stdout
    assert "experiment/cifar100/resnet56-resnet20:" in text and "crd_kd" in text
    assert "experiment/imagenet/resnet34-resnet18: dkd, kd" in text
