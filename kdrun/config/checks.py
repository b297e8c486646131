"""Checks on a composed config, run before anything is built or written.

Each problem is a one-line ``KdrunError`` naming the key, the bad value and the valid choices.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kdrun.benchmarks.teachers import teacher_checkpoint
from kdrun.data.mix import MIX_KINDS
from kdrun.errors import KdrunError, choice_error
from kdrun.io import CHECKPOINT_FILES, not_a_file
from kdrun.models.catalog import arch_info
from kdrun.models.foreign_nodes import check_foreign_node, is_foreign

DEVICE_TYPES = ("auto", "cpu", "cuda")
AMP_CHOICES = ("auto", None, "bf16", "fp16")
LOADERS = ("auto", "device", "dataloader")
BACKENDS = (None, "gloo", "nccl")
SELECT_CRITERIA = ("student_ce", "teacher_confidence", "teacher_correct")  # kdrun/tasks/select.py
SELECT_RANKED = ("student_ce", "teacher_confidence")  # the criteria that take a fraction or a threshold


def check_config(cfg: DictConfig, stage_names: tuple[str, ...]) -> None:
    if not 0 <= cfg.seed < 2**63:
        raise KdrunError(f"seed={cfg.seed} must be an integer from 0 to 2^63-1")
    _check_distill(cfg.distill)
    _check_split(cfg.dataset)
    _check_select(cfg)
    for key in ("teacher", "student"):
        if is_foreign(cfg[key]):
            check_foreign_node(cfg[key], key)
        else:
            arch_info(cfg[key].arch, f"{key}.arch")
        ckpt = cfg[key].get("checkpoint")
        problem = not_a_file(Path(str(ckpt)).expanduser()) if ckpt else None
        if problem is not None:  # a folder, a FIFO, /dev/zero: said now, never opened (it could block)
            raise KdrunError(f"{key}.checkpoint={ckpt} {problem}; {CHECKPOINT_FILES}")
    _check_teacher(cfg)
    _check_dataset(cfg.dataset)
    for stage in cfg.stages:
        if stage not in stage_names:
            raise choice_error("stages", stage, stage_names, "(unknown stage)")
    if not cfg.stages:
        raise KdrunError(f"stages=[] selects nothing to run; valid stages: {', '.join(stage_names)}")
    _check_trainer(cfg.trainer)
    _check_optim(cfg)
    if cfg.device.type not in DEVICE_TYPES:
        raise choice_error("device.type", cfg.device.type, DEVICE_TYPES)
    if cfg.device.amp not in AMP_CHOICES:
        raise choice_error("device.amp", cfg.device.amp, ["auto", "null", "bf16", "fp16"])
    if cfg.device.amp == "fp16" and cfg.device.type == "cpu":
        raise KdrunError("device.amp=fp16 needs CUDA; on the CPU use device.amp=bf16 or null")
    _check_speed(cfg.device, cfg.trainer)
    _check_data_parallel(cfg.device, cfg.trainer.batch_size)
    _check_export(cfg.get("export"), stage_names)


def _check_export(node: DictConfig | None, stage_names: tuple[str, ...]) -> None:
    """export.onnx=true: its rows are stages, and onnx + onnxruntime are installed (found without importing)."""
    if node is not None and node.get("onnx_int8") and not node.get("onnx"):
        raise KdrunError("export.onnx_int8=true quantizes the ONNX export; add export.onnx=true")
    if node is None or not node.get("onnx"):
        return
    import importlib.util

    for row in node.get("rows") or []:
        if row not in stage_names:
            raise choice_error("export.rows", row, stage_names, "(unknown stage)")
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise KdrunError(f"export.onnx=true needs {', '.join(missing)}, which is not installed; "
                         f'pip install -e ".[onnx]" (or pip install "kdrun[onnx]")')
    if not 0 <= float(node.get("tolerance", 0.1)):
        raise KdrunError(f"export.tolerance={node.get('tolerance')} must be >= 0 (top-1 points)")


def _check_split(dataset: DictConfig) -> None:
    fraction, seed = dataset.get("val_split") or 0, dataset.get("val_seed") or 0
    if not 0 <= fraction < 1:
        raise KdrunError(f"dataset.val_split={fraction} must be a fraction in [0, 1) of the training set to hold out "
                         "for validation (e.g. 0.1), or 0 for none")
    if not isinstance(seed, int) or seed < 0:
        raise KdrunError(f"dataset.val_seed={seed} must be a non-negative integer")


def _check_teacher(cfg: DictConfig) -> None:
    _check_own_lr("teacher.lr", cfg.teacher.get("lr"), "train the teacher")
    _check_own_lr("method.init_lr", cfg.method.get("init_lr"), "run the method's init stage")
    teachers_dir = cfg.get("teachers_dir")
    if not teachers_dir or cfg.teacher.get("checkpoint") or not {"teacher", "distilled"} & set(cfg.stages):
        return
    path = Path(teacher_checkpoint(cfg))
    if not path.is_file():
        raise KdrunError(f"teachers_dir={teachers_dir} holds no {cfg.teacher.arch} teacher: expected {path} "
                         f"(mdistiller's cifar_teachers.tar layout); set teachers_dir=null to train the teacher")


# The open datasets (docs/models_and_data.md): the key each one needs, and an example of it
DATASET_NEEDS = {"kdrun.data.npz.load_npz": ("path", "dataset.path=arrays.npz"),
                 "kdrun.data.torchvision_any.load_torchvision": ("name", "dataset.name=SVHN"),
                 "kdrun.data.hf_datasets.load_hf": ("name", "dataset.name=<hub id or save_to_disk folder>")}


def _check_dataset(node: DictConfig) -> None:
    """A user's loader imports and takes the node's arguments; an open dataset has what it needs (one line)."""
    target = node.get("_target_")
    if target is None:
        raise KdrunError("dataset=custom needs dataset._target_=<module.function> (your loader, e.g. "
                         "dataset._target_=mydata.load); what it returns: docs/models_and_data.md")
    if str(target) in DATASET_NEEDS:
        key, example = DATASET_NEEDS[str(target)]
        if node.get(key) is None:
            raise KdrunError(f"dataset.{key} is required here: {example}")
    elif not str(target).startswith("kdrun."):
        from kdrun.models.targets import check_target

        given = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items()
                 if not k.startswith("_") and k not in ("val_split", "val_seed")}  # kdrun's (kdrun/data/holdout.py)
        check_target(str(target), given, (), "dataset")


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


def _check_own_lr(key: str, lr: float | None, what: str) -> None:
    """A learning rate that may be null (then trainer.lr is used); 0 would train nothing, so it is refused
    rather than replaced."""
    if lr is not None and lr <= 0:
        raise KdrunError(f"{key}={lr} must be > 0, or null to {what} with trainer.lr")


def _check_trainer(t: DictConfig) -> None:
    for key in ("epochs", "batch_size"):
        if t[key] is None or t[key] < 1:
            raise KdrunError(f"trainer.{key}={t[key]} must be a positive integer")
    if t.lr is None or t.lr <= 0:
        raise KdrunError(f"trainer.lr={t.lr} must be > 0")
    for key in ("max_epochs", "max_train_batches", "max_eval_batches"):
        if t.get(key) is not None and t[key] < 1:
            raise KdrunError(f"trainer.{key}={t[key]} must be null or a positive integer")


OPTIMIZERS, SCHEDULERS = ("sgd", "adamw"), ("multistep", "cosine", "linear")


def _check_optim(cfg: DictConfig) -> None:
    """The ``optimizer`` and ``scheduler`` nodes (an older run's config has neither: SGD, multi-step)."""
    o, s = cfg.get("optimizer"), cfg.get("scheduler")
    if o is not None and o.get("name") not in OPTIMIZERS:
        raise choice_error("optimizer.name", o.get("name"), OPTIMIZERS)
    if s is not None and s.get("name") not in SCHEDULERS:
        raise choice_error("scheduler.name", s.get("name"), SCHEDULERS)
    if s is not None and not 0 <= s.get("warmup", 0.0) < 1:
        raise KdrunError(f"scheduler.warmup={s.warmup} must be a fraction of the stage's steps in [0, 1)")
    clip = cfg.trainer.get("grad_clip")
    if clip is not None and clip <= 0:
        raise KdrunError(f"trainer.grad_clip={clip} must be > 0, or null for no clipping")


def _check_speed(d: DictConfig, t: DictConfig) -> None:
    if d.get("channels_last", "auto") not in ("auto", True, False):
        raise choice_error("device.channels_last", d.channels_last, ["auto", "true", "false"])
    for key in ("tf32",):
        if d.get(key, True) not in (True, False):
            raise choice_error(f"device.{key}", d[key], ["true", "false"])
    threads = d.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise KdrunError(f"device.threads={threads} must be a positive integer, or null for cores / processes at once")
    memory = d.get("job_memory", 4)
    if not isinstance(memory, (int, float)) or memory <= 0:
        raise KdrunError(f"device.job_memory={memory} must be a positive number of GiB (GPU memory one job may use)")
    if t.get("loader", "auto") not in LOADERS:
        raise choice_error("trainer.loader", t.loader, LOADERS)
    if t.get("compile", False) not in (True, False):
        raise choice_error("trainer.compile", t.compile, ["true", "false"])


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


def _check_select(cfg: DictConfig) -> None:
    """``distill.select`` (selective distillation): its values, and the settings it cannot serve."""
    node = cfg.distill.get("select")
    if node is None or node.get("by") is None:
        return
    by, fraction, threshold = node.get("by"), node.get("fraction"), node.get("threshold")
    if by not in SELECT_CRITERIA:
        raise choice_error("distill.select.by", by, ["null", *SELECT_CRITERIA])
    if by in SELECT_RANKED and (fraction is None) == (threshold is None):
        raise KdrunError(f"distill.select.by={by} needs exactly one of distill.select.fraction (the share of each "
                         f"batch to distil, e.g. 0.5) and distill.select.threshold; got fraction={fraction}, "
                         f"threshold={threshold}")
    if by not in SELECT_RANKED and (fraction is not None or threshold is not None):
        raise KdrunError(f"distill.select.by={by} is a filter: set distill.select.fraction and "
                         "distill.select.threshold to null")
    if fraction is not None and not (_finite(fraction) and 0 < fraction <= 1):
        raise KdrunError(f"distill.select.fraction={fraction} must be a number in (0, 1]")
    if threshold is not None and not _finite(threshold):
        raise KdrunError(f"distill.select.threshold={threshold} must be a number")
    warmup = node.get("warmup_epochs", 0)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise KdrunError(f"distill.select.warmup_epochs={warmup} must be a non-negative integer")
    if by == "teacher_correct" and (cfg.distill.get("transfer_set") is not None or cfg.distill.get("transfer_size")):
        raise KdrunError("distill.select.by=teacher_correct needs labels, but the distillation terms use an "
                         "unlabeled transfer set; set distill.transfer_size=0 and distill.transfer_set=null")
    if cfg.get("scheme") is not None and cfg.scheme.get("name") == "dml":
        raise KdrunError("distill.select is not used by scheme=dml (peers distil from each other on every "
                         "sample); set distill.select.by=null or use scheme=offline")


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < float("inf")
