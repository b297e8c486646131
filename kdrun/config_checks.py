"""Checks on a composed config, run before anything is built or written.

Each problem is a one-line ``KdrunError`` naming the key, the bad value and the valid choices.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from kdrun.benchmarks.teachers import teacher_checkpoint
from kdrun.data.mix import MIX_KINDS
from kdrun.errors import KdrunError, choice_error
from kdrun.models.registry import model_spec

DEVICE_TYPES = ("auto", "cpu", "cuda")
AMP_CHOICES = (None, "bf16", "fp16")
BACKENDS = (None, "gloo", "nccl")


def check_config(cfg: DictConfig, stage_names: tuple[str, ...]) -> None:
    _check_distill(cfg.distill)
    for key in ("teacher", "student"):
        model_spec(cfg[key].arch, f"{key}.arch")
        ckpt = cfg[key].get("checkpoint")
        if ckpt and not Path(ckpt).is_file():
            raise KdrunError(f"{key}.checkpoint={ckpt} does not exist; give the path of a .pt/.pth checkpoint file")
    _check_teacher(cfg)
    for stage in cfg.stages:
        if stage not in stage_names:
            raise choice_error("stages", stage, stage_names, "(unknown stage)")
    if not cfg.stages:
        raise KdrunError(f"stages=[] selects nothing to run; valid stages: {', '.join(stage_names)}")
    _check_trainer(cfg.trainer)
    if cfg.device.type not in DEVICE_TYPES:
        raise choice_error("device.type", cfg.device.type, DEVICE_TYPES)
    if cfg.device.amp not in AMP_CHOICES:
        raise choice_error("device.amp", cfg.device.amp, ["null", "bf16", "fp16"])
    if cfg.device.amp == "fp16" and cfg.device.type == "cpu":
        raise KdrunError("device.amp=fp16 needs CUDA; on the CPU use device.amp=bf16 or null")
    _check_data_parallel(cfg.device, cfg.trainer.batch_size)


def _check_teacher(cfg: DictConfig) -> None:
    lr = cfg.teacher.get("lr")
    if lr is not None and lr <= 0:
        raise KdrunError(f"teacher.lr={lr} must be > 0, or null to train the teacher with trainer.lr")
    teachers_dir = cfg.get("teachers_dir")
    if not teachers_dir or cfg.teacher.get("checkpoint") or not {"teacher", "distilled"} & set(cfg.stages):
        return
    path = Path(teacher_checkpoint(cfg))
    if not path.is_file():
        raise KdrunError(f"teachers_dir={teachers_dir} holds no {cfg.teacher.arch} teacher: expected {path} "
                         f"(mdistiller's cifar_teachers.tar layout); set teachers_dir=null to train the teacher")


# distill.teacher_outputs (kdrun/engine/teacher_outputs.py): where the teacher's logits come from
TEACHER_OUTPUT_MODES = ("auto", "compute", "replay")
TEACHER_OUTPUT_PRECISIONS = ("fp32", "fp16")


def _check_distill(d: DictConfig) -> None:
    if d.T is None or d.T <= 0:
        raise KdrunError(f"distill.T={d.T} must be > 0 (the softmax temperature; the reference value is 4)")
    for key in ("alpha", "beta", "gamma"):
        value = d.get(key)
        if value is not None and value < 0:
            raise KdrunError(f"distill.{key}={value} must be >= 0 (a loss weight)")
    if d.gamma is None and d.alpha > 1:
        raise KdrunError(f"distill.alpha={d.alpha} > 1 makes the CE weight 1 - alpha negative; "
                         f"set distill.gamma explicitly or use alpha in [0, 1]")
    _check_distill_data(d)


def _check_distill_data(d: DictConfig) -> None:
    """Mixing and transfer-set keys (kdrun/data/mix.py, kdrun/data/transfer.py)."""
    if d.get("mix") is not None and d.mix not in MIX_KINDS:
        raise choice_error("distill.mix", d.mix, ["null", *MIX_KINDS])
    alpha = d.get("mix_alpha", 1.0)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < float("inf"):
        raise KdrunError(f"distill.mix_alpha={alpha} must be a number > 0 (Beta(a, a) of the mixing coefficient)")
    for key in ("transfer_size", "transfer_batch_size"):
        value = d.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise KdrunError(f"distill.{key}={value} must be a non-negative integer")
    if d.get("transfer_batch_size") == 0:
        raise KdrunError("distill.transfer_batch_size=0 must be null (= trainer.batch_size) or a positive integer")
    spec = d.get("transfer_set")
    if isinstance(spec, DictConfig) and "_target_" not in spec:
        raise KdrunError("distill.transfer_set={...} needs a _target_ (a dataset builder, e.g. "
                         "kdrun.data.cifar.load_cifar100); or give a folder of images")
    if spec is not None and not isinstance(spec, DictConfig) and not Path(str(spec)).expanduser().is_dir():
        raise KdrunError(f"distill.transfer_set={spec}: directory not found; give a folder of images, "
                         "a {_target_: ...} dataset node, or null")
    if d.get("teacher_outputs", "compute") not in TEACHER_OUTPUT_MODES:
        raise choice_error("distill.teacher_outputs", d.teacher_outputs, TEACHER_OUTPUT_MODES)
    if d.get("teacher_outputs_precision", "fp32") not in TEACHER_OUTPUT_PRECISIONS:
        raise choice_error("distill.teacher_outputs_precision", d.teacher_outputs_precision, TEACHER_OUTPUT_PRECISIONS)


def _check_trainer(t: DictConfig) -> None:
    for key in ("epochs", "batch_size"):
        if t[key] is None or t[key] < 1:
            raise KdrunError(f"trainer.{key}={t[key]} must be a positive integer")
    if t.lr is None or t.lr <= 0:
        raise KdrunError(f"trainer.lr={t.lr} must be > 0")
    for key in ("max_epochs", "max_train_batches", "max_eval_batches"):
        if t.get(key) is not None and t[key] < 1:
            raise KdrunError(f"trainer.{key}={t[key]} must be null or a positive integer")


def _check_data_parallel(d: DictConfig, batch_size: int) -> None:
    nproc, backend = d.get("nproc", 1), d.get("backend")
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise KdrunError(f"device.nproc={nproc} must be a positive integer (data-parallel processes)")
    if backend not in BACKENDS:
        raise choice_error("device.backend", backend, ["null", "gloo", "nccl"])
    if backend == "nccl" and d.type == "cpu":
        raise KdrunError("device.backend=nccl needs CUDA; on the CPU use device.backend=gloo or null")
    index = d.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise KdrunError(f"device.index={index} must be null or a GPU number (0, 1, ...)")
    if batch_size % nproc:
        raise KdrunError(f"trainer.batch_size={batch_size} is the global batch and must be divisible by "
                         f"device.nproc={nproc}")
