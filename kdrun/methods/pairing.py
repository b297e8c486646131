"""What a feature method may ask of a teacher/student pair, checked when the method is built.

Every check raises a one-line :class:`KdrunError` that names the method, the model and which
models would work, before any stage trains (schemes build the method first).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kdrun.data.base import DataInfo
from kdrun.errors import KdrunError
from kdrun.methods.base import MethodContext
from kdrun.models.features import FeatureInfo
from kdrun.models.registry import create_model, list_models


def archs_matching(data: DataInfo, wanted: Callable[[FeatureInfo], bool]) -> list[str]:
    """Registered architectures (default options) whose features for ``data`` satisfy ``wanted``.

    Builds each candidate on the meta device (shapes only, no memory, no init cost); it is only
    called on the way to an error message.
    """
    names = []
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        for name in list_models(input_kind=data.input_kind):
            try:
                info = create_model(name, num_classes=data.num_classes, in_channels=data.in_channels,
                                    input_size=data.input_size).feature_info
            except (ValueError, RuntimeError):
                continue
            if wanted(info):
                names.append(name)
    return names


def require_maps(method: str, ctx: MethodContext, min_stages: int = 1) -> None:
    """Both models must give spatial feature maps (not MLP vectors), with at least ``min_stages`` stages."""
    for role, info, arch in (("student", ctx.student, ctx.student_arch), ("teacher", ctx.teacher, ctx.teacher_arch)):
        if info.num_stages == 0:  # a foreign model without taps
            raise KdrunError(f"method={method} needs intermediate features, but {role}={arch} exposes none; name "
                             f"its modules with {role}.taps=[...] (e.g. {role}.taps=[layer1,layer2], names as "
                             f"model.named_modules() gives them)")
        if not info.spatial:
            fits = archs_matching(ctx.data, lambda i: i.spatial)
            raise KdrunError(f"method={method} needs spatial feature maps, but {role}={arch} gives vectors; "
                             f"models with feature maps for dataset {ctx.data.name}: {', '.join(fits) or 'none'}")
        if info.num_stages < min_stages:
            raise KdrunError(f"method={method} needs at least {min_stages} feature stages, but {role}={arch} has "
                             f"{info.num_stages}; give it more layers")


def stage_pairs(ctx: MethodContext, first: int) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """``(index, student shape, teacher shape)`` of stages ``first..`` paired by position.

    As the reference zips the two feature lists, a deeper model's extra final stages are left out.
    """
    count = min(ctx.student.num_stages, ctx.teacher.num_stages)
    return [(i, ctx.student.stage_shape(i), ctx.teacher.stage_shape(i)) for i in range(first, count)]


def classifier_head(model: nn.Module) -> nn.Module:
    """The linear layer from the pooled embedding to the logits (``fc``, ``classifier``, ``linear``)."""
    info: FeatureInfo = model.feature_info
    heads = [m for m in model.modules()
             if isinstance(m, nn.Linear) and m.in_features == info.pooled_dim and m.out_features == info.num_classes]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no linear head {info.pooled_dim} -> {info.num_classes}")
    return heads[-1]


def feature_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter except the classifier head's (RepDistiller's ``get_feat_modules``)."""
    head = {id(p) for p in classifier_head(model).parameters()}
    return [p for p in model.parameters() if id(p) not in head]
