"""Building foreign models: a user's ``_target_``, a timm model by name, a Hugging Face image classifier.

Each builder returns the bare ``nn.Module`` and how to call it; :func:`build_foreign` wraps it in the
:class:`ForeignModel` adapter. timm and transformers are optional extras, imported only here.
Weights: ``pretrained=true`` downloads (or reads the local hub cache); on the meta device (the checks
before data work) only the architecture is built, from its config, so nothing is downloaded then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdrun.errors import KdrunError
from kdrun.io import one_line
from kdrun.models.foreign import ForeignModel, example_input, plain_call
from kdrun.models.foreign_nodes import model_label, model_options
from kdrun.models.foreign_common import hub_reachable, local_folder, need_extra, offline_error, on_meta
from kdrun.models.targets import bind_kwargs, locate, source_digest

PROVIDED = ("num_classes", "in_channels", "input_size")


def build_custom(node: dict[str, Any], num_classes: int, in_channels: int, input_size: tuple[int, ...],
                 key: str) -> nn.Module:
    target = node.get("_target_")
    fn = locate(target, f"{key}._target_")
    provided = {"num_classes": num_classes, "in_channels": in_channels, "input_size": tuple(input_size)}
    kwargs = bind_kwargs(fn, model_options(node), provided, key, str(target))
    net = fn(**kwargs)
    if not isinstance(net, nn.Module):
        raise KdrunError(f"{key}._target_={target} returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def build_timm(node: dict[str, Any], num_classes: int, in_channels: int, key: str) -> nn.Module:
    need_extra("timm", key)
    import timm

    name = node.get("name")
    if not name:
        raise KdrunError(f"{key}=timm needs {key}.name=<model> (e.g. resnet18; all names: timm.list_models())")
    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8]
        raise KdrunError(f"{key}.name={name} is not a timm model; {'close: ' + ', '.join(close) if close else ''}"
                         f" (all names: python -c 'import timm; print(timm.list_models())')")
    wanted = bool(node.get("pretrained"))
    pretrained = wanted and not on_meta()  # the checks before data work build shapes only
    options = model_options(node, "timm")
    if wanted and not hub_reachable():  # offline: the hub cache, or one line now (before data work), not retries
        weights = cached_timm_weights(name, key)
        if pretrained:
            options["pretrained_cfg_overlay"] = {"file": weights}
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels,
                                 **options)
    except TypeError as e:
        raise KdrunError(f"{key}: timm model {name} does not take these options ({e})") from None
    except Exception as e:  # noqa: BLE001 - the hub, offline, a missing file: one line
        if pretrained:
            raise offline_error(key, f"timm/{name}", e) from None
        raise


def cached_timm_weights(name: str, key: str) -> str:
    """The file of timm model ``name``'s weights in the local Hugging Face cache; offline without it, one line."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    hub_id = (timm.models.get_pretrained_cfg(name).hf_hub_id or "") if timm.models.get_pretrained_cfg(name) else ""
    for file in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(hub_id, file) if hub_id else None
        if isinstance(path, str):
            return path
    raise offline_error(key, f"timm/{name}", OSError(f"no connection to the hub and {hub_id or name} is not in "
                                                     "the local cache"))


def build_foreign(node: dict[str, Any], num_classes: int, in_channels: int, input_size: tuple[int, ...],
                  key: str) -> ForeignModel:
    """The model of a ``custom``, ``timm`` or ``hf`` node (or a user architecture with a ``_target_``),
    behind kdrun's contract."""
    arch = node.get("arch")
    call = plain_call
    if arch == "timm":
        net = build_timm(node, num_classes, in_channels, key)
    elif arch == "hf":
        from kdrun.models.hf_build import build_hf, hf_call

        net, call = build_hf(node, num_classes, in_channels, input_size, key), hf_call
    else:
        net = build_custom(node, num_classes, in_channels, input_size, key)
    taps = node.get("taps")
    if taps is None and arch == "timm":
        taps = [info["module"] for info in getattr(net, "feature_info", [])] or None
    elif taps is not None and isinstance(taps, str):
        taps = [taps]
    try:
        model = ForeignModel(net, model_label(node), num_classes, example_input(in_channels, input_size),
                             taps, call, tap_key=f"{key}.taps")
        if arch == "hf":  # the hub commit it came from (results.json); teacher.revision pins it
            from kdrun.models.hf_build import resolved_revision

            model.provenance = {"hub_revision": resolved_revision(net)}
        return model
    except KdrunError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise KdrunError(f"{key}={model_label(node)} fails on inputs of shape {(in_channels, *input_size)}: "
                         f"{one_line(e, limit=160)}") from None


def model_identity(node: dict[str, Any]) -> str:
    """What identifies a foreign model's code and starting weights, for the cache key of what kdrun trains
    from it: the import path and a digest of the user's module source; timm's version; a Hugging Face
    model's hub id and revision, or a digest of its local folder's files."""
    arch = node.get("arch")
    if arch == "timm":
        import timm

        return f"timm {timm.__version__} {node.get('name')} pretrained={bool(node.get('pretrained'))}"
    if arch == "hf":
        folder = local_folder(str(node.get("name")))
        if folder is None:
            return f"hf {node.get('name')}@{node.get('revision') or 'main'} pretrained={bool(node.get('pretrained'))}"
        return f"hf {folder.resolve()}:{folder_digest(folder)} pretrained={bool(node.get('pretrained'))}"
    locate(node.get("_target_"), "_target_")  # imported, so its source file is known
    return source_digest(str(node.get("_target_")))


def folder_digest(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(folder)}\0{f.stat().st_size}\0{f.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
