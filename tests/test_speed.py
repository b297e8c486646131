"""The fast path's decisions (threads, precision, layout, data path, compilation) and that none of
them changes what a run computes where it must not."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from conftest import TINY, read_metrics, read_results, run_kdrun
from in_process import skip_run_plots
from kdrun.data.base import TensorData
from kdrun.data.loaders import batch_on_device
from kdrun.engine import compile as compile_mod
from kdrun.engine.compile import compile_step
from kdrun.engine.speed import parallel_processes, resolve_amp, resolve_channels_last, threads_for
from kdrun.errors import KdrunError
from kdrun.models.registry import create_model
from kdrun.engine.task import Frozen
from tests.test_data import write_cifar100

CPU = torch.device("cpu")


def test_threads_share_the_cores_between_processes(monkeypatch):
    assert threads_for(None, 16, 4) == 4 and threads_for(None, 2, 2) == 1 and threads_for(None, 2, 8) == 1
    assert threads_for(3, 2, 8) == 3  # device.threads wins
    with pytest.raises(KdrunError, match="device.threads=0"):
        threads_for(0, 2, 1)
    monkeypatch.setenv("KDRUN_PARALLEL_JOBS", "3")
    assert parallel_processes(ranks=2) == 6
    monkeypatch.delenv("KDRUN_PARALLEL_JOBS")
    assert parallel_processes(ranks=1) == 1


def test_precision_and_layout_choices_on_the_cpu():
    assert resolve_amp("auto", CPU) is None and resolve_amp(None, CPU) is None and resolve_amp("bf16", CPU) == "bf16"
    cuda = torch.device("cuda")
    assert not resolve_channels_last("auto", CPU, "image") and resolve_channels_last("auto", cuda, "image")
    assert not resolve_channels_last("auto", torch.device("cuda"), "signal")
    assert not resolve_channels_last(True, CPU, "signal") and resolve_channels_last(True, CPU, "image")


def test_cuda_branches_decide_from_what_the_gpu_reports(monkeypatch):
    """The CUDA-only decisions, with the GPU's answers stubbed (no GPU on the test machine)."""
    from kdrun.engine.speed import apply_tf32

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_amp("auto", cuda) == "bf16" and resolve_amp(None, cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_amp("auto", cuda) is None  # e.g. a V100: fp32 rather than emulated bf16
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        assert apply_tf32(True, cuda) and torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert not apply_tf32(False, cuda) and torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert not apply_tf32(True, CPU)
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
    data = TensorData(torch.zeros(1000, dtype=torch.uint8), torch.zeros(1000, dtype=torch.long))  # 9,000 bytes
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20_000, 10**9))
    assert batch_on_device("auto", data, "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10_000, 10**9))
    assert not batch_on_device("auto", data, "cuda") and batch_on_device("device", data, "cuda")


def test_data_path_choice():
    data = TensorData(torch.zeros(4, 3), torch.zeros(4))
    folder_like = torch.utils.data.Subset(data, [0, 1])
    assert batch_on_device("auto", data, "cpu") and not batch_on_device("dataloader", data, "cpu")
    assert not batch_on_device("auto", folder_like, "cpu")
    with pytest.raises(KdrunError, match="trainer.loader=device: .*use trainer.loader=auto or dataloader"):
        batch_on_device("device", folder_like, "cpu")


def test_frozen_teacher_runs_in_inference_mode_and_its_outputs_train_a_student():
    teacher = create_model("resnet8", num_classes=5, in_channels=3, input_size=(8, 8))
    student = create_model("resnet8", num_classes=5, in_channels=3, input_size=(8, 8))
    x = torch.randn(4, 3, 8, 8)
    feats = Frozen(teacher).features(x)
    assert not feats.logits.is_inference() and not any(t.is_inference() for t in feats.stages)
    loss = nn.functional.mse_loss(student.forward_features(x).stages[-1], feats.stages[-1])  # saves the target
    loss.backward()
    assert next(student.parameters()).grad is not None and next(teacher.parameters()).grad is None


def _models():
    torch.manual_seed(0)
    student, teacher = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)), nn.Linear(4, 3)
    return student.train(), teacher.eval()


def test_compile_step_compiles_and_restores_state(monkeypatch):
    monkeypatch.setattr(compile_mod, "BACKEND", "eager")  # dynamo's tracing without a C compiler
    student, teacher = _models()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    assert compile_step([student], [teacher], torch.randn(6, 4), _null) is True
    assert student._compiled_call_impl is not None and teacher._compiled_call_impl is not None
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())  # BN statistics restored
    assert all(p.grad is None for p in student.parameters())
    compile_mod.decompile(student)
    assert student._compiled_call_impl is None


def test_compile_failure_falls_back_with_one_line_warning(monkeypatch, caplog):
    def broken(gm, example_inputs):
        raise RuntimeError("no C compiler\nsecond line")

    monkeypatch.setattr(compile_mod, "BACKEND", broken)
    student, teacher = _models()
    with caplog.at_level(logging.WARNING, logger="kdrun"):
        reason = compile_step([student], [teacher], torch.randn(6, 4), _null)
    assert isinstance(reason, str) and "no C compiler" in reason
    assert student._compiled_call_impl is None and teacher._compiled_call_impl is None
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "trainer.compile=true" in record.getMessage() and "\n" not in record.getMessage()
    student(torch.randn(6, 4)).sum().backward()  # trains eagerly


def _null():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.slow  # a whole run; the choices one by one above
def test_results_record_the_speed_choices(workdir, monkeypatch):
    skip_run_plots(monkeypatch)  # tests/in_process.py says why
    run_kdrun([*TINY, "device=cpu", "device.threads=1", "stages=[teacher]", "hydra.run.dir=run"], workdir)
    speed = read_results(workdir / "run")["speed"]
    assert speed == {"amp": None, "channels_last": False, "tf32": False, "threads": 1, "compile": False,
                     "data_path": "device"}


@pytest.mark.slow  # two whole runs; loader order: test_data.py
def test_dataloader_option_gives_the_same_run_on_augmented_cifar(workdir, monkeypatch):
    """Real CIFAR-100 files, augmented: batched on the device or through DataLoader workers, the
    run's every metric is the same (same views, same order). A small mlp on the flattened images sees
    every pixel of every view (a resnet8 only made each step ~20x slower)."""
    skip_run_plots(monkeypatch)
    write_cifar100(workdir / "data", n_train=40, n_test=10)
    common = ["dataset=cifar100", f"dataset.root={workdir / 'data'}", "dataset.verify=false", "teacher=mlp",
              "student=mlp", "student.hidden=[16]", "trainer.batch_size=8", "trainer.epochs=2",
              "trainer.max_train_batches=3", "stages=[baseline]", "measure.enabled=false"]
    run_kdrun([*common, "hydra.run.dir=a"], workdir)
    run_kdrun([*common, "trainer.loader=dataloader", "trainer.num_workers=2", "paths.outputs=o2",
               "hydra.run.dir=b"], workdir)
    strip = lambda ms: [{k: v for k, v in m.items() if k != "epoch_time"} for m in ms]  # noqa: E731
    assert strip(read_metrics(workdir / "a")) == strip(read_metrics(workdir / "b"))
    assert read_results(workdir / "b")["speed"]["data_path"] == "dataloader"


# ---------------------------------------------------------------- many jobs per GPU


def test_packing_refuses_to_oversubscribe_in_one_line():
    from kdrun.distributed.packing import GIB, check_packing

    check_packing(8, [40 * GIB], 4)  # 8 x 4 GiB fit in 40
    check_packing(8, [16 * GIB, 16 * GIB], 4)  # 4 per GPU, exactly full
    check_packing(8, [], 4)  # no GPU: nothing to check
    with pytest.raises(KdrunError, match="n_jobs"):
        check_packing(9, [16 * GIB, 16 * GIB], 4)  # 5 on one of them


def test_packing_error_names_the_setting_and_what_fits():
    from kdrun.distributed.packing import GIB, check_packing

    with pytest.raises(KdrunError) as e:
        check_packing(12, [40 * GIB, 10 * GIB], 4)
    message = str(e.value)
    assert "\n" not in message and "hydra.launcher.n_jobs<=4" in message and "GPU 1" in message
    assert "device.job_memory=4" in message


def test_gpu_slots_spread_jobs_and_free_themselves(tmp_path):
    from kdrun.distributed import packing

    got = [packing.claim_gpu(tmp_path, gpus=2, per_gpu=2) for _ in range(4)]
    assert got == [0, 1, 0, 1] and packing.claim_gpu(tmp_path, gpus=2, per_gpu=2) is None
    packing.release_gpus()
    assert packing.claim_gpu(tmp_path, gpus=2, per_gpu=2) == 0
    packing.release_gpus()


def test_jobs_at_once_counts_joblib_jobs():
    from omegaconf import OmegaConf

    from kdrun.config.preflight import parse_overrides
    from kdrun.config.sweeps import jobs_at_once

    swept = parse_overrides(["distill.T=1,2,4", "seed=0,1", "method=kd"])
    joblib = lambda n: OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher",  # noqa
                                         "n_jobs": n})
    assert jobs_at_once(joblib(4), swept) == 4 and jobs_at_once(joblib(10), swept) == 6
    assert jobs_at_once(OmegaConf.create({"_target_": "hydra._internal.BasicLauncher"}), swept) == 1
    assert jobs_at_once(None, swept) == 1
