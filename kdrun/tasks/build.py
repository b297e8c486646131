"""The one place that turns config into runtime objects: data, models, methods, settings (through kdrun/objects.py)."""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from kdrun.data.arrays import as_bundle
from kdrun.data.base import DataBundle, DataInfo
from kdrun.data.holdout import SPLIT_KEYS, hold_out
from kdrun.data.mix import BatchMix
from kdrun.data.transfer import dataset_transfer, folder_transfer, generated_transfer
from kdrun.engine.speed import resolve_amp
from kdrun.engine.stage import OptimSettings
from kdrun.conf_dir import config_dir
from kdrun.errors import KdrunError
from kdrun.io import one_line
from kdrun.methods.base import LossWeights, Method, MethodContext
from kdrun.models.base import KDModel
from kdrun.models.catalog import TOKEN_KINDS, accepts
from kdrun.models.foreign_nodes import RESERVED_MODEL_KEYS, is_foreign, model_label
from kdrun.models.registry import create_model, list_models, model_spec
from kdrun.objects import from_config
from kdrun.quant.measure import MeasureSettings


def resolve_device(node: DictConfig) -> torch.device:
    if node.type == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if node.type == "cuda" and not torch.cuda.is_available():
        raise KdrunError("device=cuda but no CUDA device is available; valid choices here: auto, cpu")
    return torch.device(node.type)


def build_data(cfg: DictConfig) -> DataBundle:
    """The dataset, with its validation split held out (``dataset.val_split``) and its transfer set attached
    when ``distill`` asks for one."""
    target = str(cfg.dataset.get("_target_"))
    node = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k not in SPLIT_KEYS}
    data = as_bundle(from_config(node, f"dataset._target_={target}", _convert_="all"), target,
                     f"dataset._target_={target}")
    if not target.startswith("kdrun."):  # the user's loader: another version of it is other data
        from kdrun.models.targets import source_digest

        data.fingerprint = f"{source_digest(target)}:{data.fingerprint}"
    fraction = cfg.dataset.get("val_split") or 0
    if fraction:
        data = hold_out(data, float(fraction), int(cfg.dataset.get("val_seed") or 0))
    data.transfer = build_transfer(cfg, data)
    return data


def build_transfer(cfg: DictConfig, data: DataBundle) -> Dataset | None:
    """``distill.transfer_set`` / ``distill.transfer_size`` -> unlabeled inputs for the distillation terms.

    None (the default) distils on the labeled batch itself; see kdrun/data/transfer.py for the kinds.
    """
    spec, size = cfg.distill.get("transfer_set"), cfg.distill.get("transfer_size") or 0
    if spec is None and size == 0:
        return None
    if spec is None:
        return generated_transfer(data, size)
    if isinstance(spec, DictConfig):
        bundle = from_config(spec, f"distill.transfer_set._target_={spec.get('_target_')}",
                             "give a dataset builder such as kdrun.data.cifar.load_cifar100", _convert_="all")
        return dataset_transfer(bundle, data.info, size, str(spec.get("_target_")))
    return folder_transfer(str(spec), data, size)


def transfer_batch_size(cfg: DictConfig) -> int:
    """Transfer inputs per step: ``distill.transfer_batch_size``, by default the labeled batch size."""
    return cfg.distill.get("transfer_batch_size") or cfg.trainer.batch_size


def build_mix(distill: DictConfig) -> BatchMix | None:
    """Function matching's mixing of the distillation batch (``distill.mix``), or None."""
    return BatchMix(distill.mix, distill.mix_alpha) if distill.get("mix") else None


def model_kwargs(node: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in RESERVED_MODEL_KEYS}


def build_model(node: DictConfig, data: DataInfo, key: str) -> KDModel:
    """Build ``teacher``/``student`` for the dataset's input shape and class count."""
    if is_foreign(node):
        return _build_foreign(node, data, key)
    spec = model_spec(node.arch, f"{key}.arch")
    if not accepts(spec.input_kind, data.input_kind):
        fits = ", ".join(list_models(input_kind=data.input_kind))
        raise KdrunError(f"{key}={node.arch} needs {spec.input_kind} input but dataset {data.name} gives "
                         f"{data.input_kind}s; architectures for it: {fits}")
    extra = {"pad_id": data.pad_id, "tokenizer": data.tokenizer} if spec.input_kind in TOKEN_KINDS else {}
    try:
        return create_model(node.arch, num_classes=data.num_classes, in_channels=data.in_channels,
                            input_size=data.input_size, data_facts=extra, **model_kwargs(node))
    except (ValueError, RuntimeError) as e:
        raise KdrunError(f"{key}={node.arch} cannot be built for dataset {data.name}: {e}") from None


def method_class(target: str) -> type | None:
    """The class a method's ``_target_`` names, or None where it cannot be imported (building reports that)."""
    module, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def methods_for(input_kind: str) -> list[str]:
    """The built-in methods (conf/method/*.yaml) that serve a dataset of ``input_kind``."""
    folder = Path(config_dir())
    names = []
    for path in sorted((folder / "method").glob("*.yaml")):
        cls = method_class(OmegaConf.load(path).method.get("_target_", ""))
        if cls is not None and input_kind in getattr(cls, "input_kinds", ()):
            names.append(path.stem)
    return names


def check_input_kind(cfg: DictConfig, data: DataInfo) -> None:
    """A method serves the dataset's input kind (a feature-map method is refused on transformers, a transformer
    method on CNNs) in one line naming the methods that fit."""
    cls = method_class(cfg.method.get("_target_", ""))
    kinds = getattr(cls, "input_kinds", None)
    if kinds is None or data.input_kind in kinds:
        return
    raise KdrunError(f"method={cfg.method.name} is for {' and '.join(kinds)} models, but dataset {data.name} gives "
                     f"{data.input_kind}; methods for it: {', '.join(methods_for(data.input_kind))}")


def _build_foreign(node: DictConfig, data: DataInfo, key: str) -> KDModel:
    """A user's, timm or Hugging Face model behind kdrun's contract (kdrun/models/foreign.py)."""
    from kdrun.models.foreign_build import build_foreign

    kind = node.get("input_kind")
    if kind not in (None, "any", data.input_kind):
        raise KdrunError(f"{key}={model_label(node)} needs {kind} input but dataset {data.name} gives "
                         f"{data.input_kind}s")
    try:
        return build_foreign(OmegaConf.to_container(node, resolve=True), data.num_classes, data.in_channels,
                             tuple(data.input_size), key)
    except KdrunError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's constructor raised: one line naming it
        raise KdrunError(f"{key}={model_label(node)} cannot be built for dataset {data.name} "
                         f"({data.in_channels}x{'x'.join(map(str, data.input_size))}, {data.num_classes} classes): "
                         f"{type(e).__name__}: {one_line(e, limit=160)}") from None


def build_method(cfg: DictConfig, ctx: MethodContext) -> Method:
    check_input_kind(cfg, ctx.data)
    node = OmegaConf.to_container(cfg.method, resolve=True)
    node.pop("name", None)
    # Partial first: the context holds tensors and dataclasses, which cannot pass through OmegaConf.
    return from_config(node, _partial_=True, _convert_="all")(ctx=ctx)


def loss_weights(cfg: DictConfig) -> LossWeights:
    d = OmegaConf.to_container(cfg.distill, resolve=True)
    return LossWeights(**{f.name: d[f.name] for f in fields(LossWeights) if f.name in d})


def optim_settings(cfg: DictConfig, lr: float | None = None) -> OptimSettings:
    """The optimizer and schedule of ``trainer``, ``optimizer`` and ``scheduler``; ``lr`` replaces ``trainer.lr``
    (a teacher's own ``teacher.lr``). Without the two groups (an older run's config): SGD, multi-step."""
    trainer = cfg.trainer
    opt = OmegaConf.to_container(cfg.optimizer, resolve=True) if cfg.get("optimizer") else {}
    sched = OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else {}
    return OptimSettings(lr=trainer.lr if lr is None else lr, momentum=trainer.momentum, weight_decay=trainer.weight_decay,
                         milestones=tuple(trainer.milestones), lr_decay=trainer.lr_decay,
                         grad_clip=trainer.get("grad_clip"), optimizer=opt.get("name", "sgd"),
                         nesterov=opt.get("nesterov", False), betas=tuple(opt.get("betas", (0.9, 0.999))),
                         eps=opt.get("eps", 1e-8), no_decay_norm_bias=opt.get("no_decay_norm_bias", False),
                         scheduler=sched.get("name", "multistep"), warmup=sched.get("warmup", 0.0),
                         min_lr=sched.get("min_lr", 0.0))


def measure_settings(cfg: DictConfig) -> MeasureSettings:
    """The ``measure`` node: how deployed models are sized and timed."""
    node = OmegaConf.to_container(cfg.measure, resolve=True)
    return MeasureSettings(**{**node, "batch_sizes": tuple(node["batch_sizes"])})


def dataset_identity(cfg: DictConfig, leave_out: tuple[str, ...]) -> dict[str, Any]:
    """``cfg.dataset`` as part of a cache key: without ``leave_out`` (where the data lies, ...), and without the
    validation split while it is off (keys from before it existed stay valid)."""
    node = OmegaConf.to_container(cfg.dataset, resolve=True)
    if not node.get("val_split"):
        leave_out = (*leave_out, *SPLIT_KEYS)
    return {k: v for k, v in node.items() if k not in leave_out}


def teacher_outputs_key(cfg: DictConfig, info: DataInfo, device: torch.device, world: tuple[int, int]
                        ) -> dict[str, Any]:  # fmt: skip
    """Everything but the teacher's weights that defines its logits in a distillation stage: the inputs
    (data, augmentation, seed, batch sizes, mix, transfer set, data-parallel shard ``world``=(rank, size))
    and how they are computed (device, AMP). See kdrun/engine/teacher_outputs.py."""
    d = OmegaConf.to_container(cfg.distill, resolve=True)
    dataset = dataset_identity(cfg, ("root", "download"))
    return {"dataset": dataset, "num_classes": info.num_classes, "seed": cfg.seed,
            "batch_size": cfg.trainer.batch_size, "max_train_batches": cfg.trainer.get("max_train_batches"),
            "mix": d.get("mix"), "mix_alpha": d.get("mix_alpha") if d.get("mix") else None,
            "transfer_set": d.get("transfer_set"), "transfer_size": d.get("transfer_size"),
            "transfer_batch_size": transfer_batch_size(cfg), "device": device.type, "amp": cfg.device.amp,
            "rank": world[0], "world_size": world[1]}


def supervised_cache_key(cfg: DictConfig, node: DictConfig, data_name: str, lr: float | None = None,
                         seed: int | None = None, data_fingerprint: str | None = None) -> str:
    """Identify a cross-entropy-trained model: same architecture, data, recipe and seed -> same weights.
    ``seed`` is the model's own seed when a scheme trains several copies (default: ``cfg.seed``).
    ``data_fingerprint``: the root and file list of a dataset read from the user's own files
    (:attr:`DataBundle.fingerprint`); a published dataset is the same wherever it is stored."""
    seed = cfg.seed if seed is None else seed
    dataset = dataset_identity(cfg, ("root", "download", "verify"))
    # how batches are made and whether the step is compiled don't change what is computed
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
               if k not in ("num_workers", "loader", "compile")}
    trainer["lr"] = trainer["lr"] if lr is None else lr  # the lr the model actually trains with (teacher.lr may differ)
    amp = resolve_amp(cfg.device.amp, resolve_device(cfg.device))  # what the run computes in ("auto" is not)
    what = {"arch": node.arch, "kwargs": model_kwargs(node), "dataset": dataset, "trainer": trainer,
            "seed": seed, "amp": amp, "files": data_fingerprint, "format": 2}
    if is_foreign(node):  # the user's code (import path + source digest), timm's version, the hub revision
        from kdrun.models.foreign_build import model_identity

        what["code"] = model_identity(OmegaConf.to_container(node, resolve=True))
    digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
    return f"{safe_name(model_label(node))}-{data_name}-seed{seed}-{digest}"


def safe_name(label: str) -> str:
    """A model label as part of a file name (``timm/resnet18`` -> ``timm_resnet18``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
