"""Hugging Face image classifiers (``teacher=hf teacher.name=<hub id or local folder>``), the ``hf`` extra.

Built with transformers' ``AutoModelForImageClassification``: ``from_pretrained`` when ``pretrained=true``
and there are weights (a hub id, or a local folder holding them), else ``from_config`` (random init; a
folder with only ``config.json`` works offline). The head is sized for the dataset (``num_labels``; a
pretrained head of another size is replaced, ``ignore_mismatched_sizes``). ``trust_remote_code`` stays off
unless the node turns it on; ``revision`` pins a hub commit, and the commit actually used is recorded
(:func:`resolved_revision`, results.json). Intermediate features: the model's own ``output_hidden_states``
(or forward hooks when ``taps`` is given).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdrun.errors import KdrunError
from kdrun.models.foreign_common import hub_reachable, local_folder, need_extra, offline_error, on_meta
from kdrun.models.foreign_nodes import model_options

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def hf_call(net: nn.Module, x: torch.Tensor, hidden: bool) -> tuple[Any, tuple[torch.Tensor, ...]]:
    out = net(pixel_values=x, output_hidden_states=hidden) if hidden else net(pixel_values=x)
    return out, tuple(out.hidden_states or ()) if hidden else ()


def _hub_args(node: dict[str, Any]) -> dict[str, Any]:
    return {"revision": node.get("revision"), "trust_remote_code": bool(node.get("trust_remote_code")),
            "local_files_only": not hub_reachable()}


def build_hf(node: dict[str, Any], num_classes: int, in_channels: int, input_size: tuple[int, ...],
             key: str) -> nn.Module:
    need_extra("hf", key)
    from transformers import AutoConfig, AutoModelForImageClassification

    name = node.get("name")
    if not name:
        raise KdrunError(f"{key}=hf needs {key}.name=<hub id or local folder> (e.g. microsoft/resnet-18)")
    folder = local_folder(name)
    # trust_remote_code always given: left out, transformers asks on the terminal (and a folder's code could run)
    hub = {"trust_remote_code": bool(node.get("trust_remote_code"))} if folder else _hub_args(node)
    options = {"num_labels": num_classes, **model_options(node, "hf")}
    weights = folder is None or any((folder / f).is_file() for f in WEIGHT_FILES)
    try:
        config = AutoConfig.from_pretrained(str(folder or name), **hub, **options)
        if getattr(config, "num_channels", in_channels) != in_channels:
            config.num_channels = in_channels
        if node.get("pretrained") and weights and not on_meta():
            return AutoModelForImageClassification.from_pretrained(str(folder or name), config=config,
                                                                   ignore_mismatched_sizes=True, **hub)
        return AutoModelForImageClassification.from_config(
            config, trust_remote_code=bool(node.get("trust_remote_code")))
    except KdrunError:
        raise
    except OSError as e:
        if folder is None and hub.get("local_files_only"):
            raise offline_error(key, f"hf/{name}", e) from None
        raise KdrunError(f"{key}.name={name}: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # not an image classifier, remote code refused, ...
        raise KdrunError(f"{key}.name={name} cannot be built as an image classifier: {str(e).splitlines()[0]}"
                         ) from None


def resolved_revision(net: nn.Module) -> str | None:
    """The hub commit a model was loaded from (``_commit_hash`` of its config), if any."""
    return getattr(getattr(net, "config", None), "_commit_hash", None)
