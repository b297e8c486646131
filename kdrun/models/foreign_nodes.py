"""The three doors for models kdrun did not write: ``custom`` (any import path), ``timm`` and ``hf``.

Torch-free facts, read before building: each kind's config node (registered as ``teacher=custom``,
``student=timm``, ...), the keys kdrun itself reads from it, how a model built from it is named in logs
and the table (:func:`model_label`), and what identifies its code (:func:`model_identity`, part of the
cache key of a teacher or baseline trained from it). Every other key of the node is an option passed to
the model's builder, so the keys a node accepts are its builder's arguments (checked in one line).
"""

from __future__ import annotations

from typing import Any

# kind -> the node's keys and defaults (besides arch, checkpoint and the teacher's lr)
FOREIGN_NODES: dict[str, dict[str, Any]] = {
    "custom": {"_target_": None, "taps": None},
    "timm": {"name": None, "pretrained": False, "taps": None},
    "hf": {"name": None, "pretrained": True, "revision": None, "trust_remote_code": False, "taps": None},
}
FOREIGN_DOCS = {
    "custom": "any nn.Module factory or class by import path: teacher._target_=mynets.make_teacher",
    "timm": "a timm model by name (pip install -e \".[timm]\"): teacher.name=resnet18",
    "hf": "a Hugging Face image classifier (pip install -e \".[hf]\"): teacher.name=<hub id or local folder>",
}
EXTRAS = {"timm": "timm", "hf": "transformers"}  # the pyproject extra of each kind and the module it installs
# Keys of a model node that kdrun reads itself; every other key is an option of the architecture or builder.
RESERVED_MODEL_KEYS = ("arch", "checkpoint", "lr", "taps", "_target_", "input_kind", "family")


def is_foreign(node: Any) -> bool:
    return node is not None and (node.get("arch") in FOREIGN_NODES or node.get("_target_") is not None)


def model_options(node: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """The options a node passes to its builder: every key kdrun does not read itself (for timm and hf,
    also not the keys of their node)."""
    own = FOREIGN_NODES.get(kind or "", {})
    return {k: v for k, v in node.items() if k not in RESERVED_MODEL_KEYS and k not in own}


def model_label(node: Any) -> str:
    """How a model node is named in logs, errors and the table: the architecture name, or for a foreign
    kind its import path (``mynets.make_teacher``), ``timm/<name>`` or ``hf/<name>``."""
    arch = node.get("arch")
    if arch == "custom":
        return str(node.get("_target_"))
    if arch in ("timm", "hf"):
        return f"{arch}/{node.get('name')}"
    return str(arch)


def check_foreign_node(node: Any, key: str) -> None:
    """Before any data work (torch-free): the node names what to build, its extra is installed, and a
    ``_target_`` imports and accepts the node's options. One line each."""
    import importlib.util

    from omegaconf import OmegaConf

    from kdrun.errors import KdrunError
    from kdrun.models.targets import check_target

    d = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node
    arch = d.get("arch")
    if arch in ("timm", "hf"):
        if not d.get("name"):
            example = "resnet18" if arch == "timm" else "microsoft/resnet-18 or a local folder"
            raise KdrunError(f"{key}={arch} needs {key}.name=<model> (e.g. {key}.name={example})")
        if importlib.util.find_spec(EXTRAS[arch]) is None:
            raise KdrunError(f"{key}={arch} needs the '{arch}' extra: pip install -e \".[{arch}]\" (from a "
                             f"checkout) or pip install \"kdrun[{arch}]\"")
    elif d.get("_target_") is None:
        raise KdrunError(f"{key}={arch} needs {key}._target_=<module.function or module.Class> building an "
                         f"nn.Module (e.g. {key}._target_=mynets.make_teacher)")
    else:
        check_target(d["_target_"], model_options(d), ("num_classes", "in_channels", "input_size"), key)
    taps = d.get("taps")
    if taps is not None and not (isinstance(taps, str) or all(isinstance(t, str) for t in taps)):
        raise KdrunError(f"{key}.taps={taps} must be a list of module names, e.g. {key}.taps=[layer2,layer3]")
