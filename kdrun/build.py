"""The one place that turns config into objects (and the only caller of ``hydra.utils.instantiate``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kdrun.config_store import RESERVED_MODEL_KEYS
from kdrun.data.base import DataBundle, DataInfo
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext
from kdrun.models.base import KDModel
from kdrun.models.registry import create_model, list_models, model_spec
from kdrun.schemes.distill_task import LossWeights
from kdrun.schemes.stage import OptimSettings


def _instantiate(node: Any, **kwargs: Any) -> Any:
    """``instantiate`` that lets kdrun's own one-line errors through instead of Hydra's wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, KdrunError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def resolve_device(node: DictConfig) -> torch.device:
    if node.type == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if node.type == "cuda" and not torch.cuda.is_available():
        raise KdrunError("device=cuda but no CUDA device is available; valid choices here: auto, cpu")
    return torch.device(node.type)


def build_data(cfg: DictConfig) -> DataBundle:
    return _instantiate(cfg.dataset, _convert_="all")


def model_kwargs(node: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in RESERVED_MODEL_KEYS}


def build_model(node: DictConfig, data: DataInfo, key: str) -> KDModel:
    """Build ``teacher``/``student`` for the dataset's input shape and class count."""
    spec = model_spec(node.arch, f"{key}.arch")
    if spec.input_kind not in ("any", data.input_kind):
        fits = ", ".join(list_models(input_kind=data.input_kind))
        raise KdrunError(f"{key}={node.arch} needs {spec.input_kind} input but dataset {data.name} gives "
                         f"{data.input_kind}s; architectures for it: {fits}")
    try:
        return create_model(node.arch, num_classes=data.num_classes, in_channels=data.in_channels,
                            input_size=data.input_size, **model_kwargs(node))
    except (ValueError, RuntimeError) as e:
        raise KdrunError(f"{key}={node.arch} cannot be built for dataset {data.name}: {e}") from None


def build_method(cfg: DictConfig, ctx: MethodContext) -> Method:
    node = OmegaConf.to_container(cfg.method, resolve=True)
    node.pop("name", None)
    # Partial first: the context holds tensors and dataclasses, which cannot pass through OmegaConf.
    return _instantiate(node, _partial_=True, _convert_="all")(ctx=ctx)


def loss_weights(cfg: DictConfig) -> LossWeights:
    return LossWeights(**OmegaConf.to_container(cfg.distill, resolve=True))


def optim_settings(trainer: DictConfig) -> OptimSettings:
    return OptimSettings(lr=trainer.lr, momentum=trainer.momentum, weight_decay=trainer.weight_decay,
                         milestones=tuple(trainer.milestones), lr_decay=trainer.lr_decay)


def supervised_cache_key(cfg: DictConfig, node: DictConfig, data_name: str) -> str:
    """Identify a cross-entropy-trained model: same architecture, data, recipe and seed -> same weights."""
    dataset = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
               if k not in ("root", "download")}
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k != "num_workers"}
    blob = json.dumps({"arch": node.arch, "kwargs": model_kwargs(node), "dataset": dataset, "trainer": trainer,
                       "seed": cfg.seed, "amp": cfg.device.amp, "format": 1}, sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
    return f"{node.arch}-{data_name}-seed{cfg.seed}-{digest}"
