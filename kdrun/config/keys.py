"""Every key of a composed config is one that kdrun (or the chosen model, method or dataset) reads.

Hydra adds any key written as ``+key=value`` without asking whether some code reads it:
``+distill.alhpa=0.5`` ran with alpha still 0.9 and ``+trainer.optimizer=adam`` ran SGD, both without a
word. The keys that exist are derived, never listed by hand: those the chosen options' config files give
(the command's group choices composed without its value overrides, preflight's ``Defaults``), and the
typed fields of kdrun/config/schema.py. A new group or option (``optimizer=``, a user's own YAML) brings its
keys with it.

A node with a ``_target_`` hands its keys to that callable as keyword arguments. Below a ``_target_`` of
the user's own (``teacher._target_=mynets.make_teacher teacher.width=64``, a dataset loader of theirs)
every key passes: the callable decides when it is built. Below one of kdrun's, a key its file does not
list passes if the callable's signature takes it (imported only then, so the usual command stays torch-free).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from kdrun.config.schema import SCHEMAS, TopSchema
from kdrun.errors import KdrunError
from kdrun.models.foreign_nodes import FOREIGN_NODES

OWN_TARGETS = "kdrun."  # the _target_s whose keyword arguments kdrun's own files list
# Nodes whose entries are objects side by side, each built from its own ``_target_``: a user adds theirs
# (``+logger.mine._target_=my_module.MyLogger``, kdrun/loggers/base.py's interface) beside kdrun's.
OPEN_CONTAINERS = ("logger",)


def check_known_keys(given: dict[str, Any], default: dict[str, Any], groups: Iterable[str] = ()) -> None:
    """Raise a one-line :class:`KdrunError` for the first key of ``given`` (the job's config) that no
    config file of its options (``default``), no schema and no ``_target_`` takes."""
    for path in _unknown(given, default, ""):
        value = _node(given, path)
        while isinstance(value, dict) and value:  # +distil.alpha=0.5: name the key as it was typed
            key, value = next(iter(value.items()))
            path = f"{path}.{key}"
        raise KdrunError(unknown_key_message(path, _plain(value), default, groups))


def _unknown(node: dict[str, Any], default: dict[str, Any], prefix: str) -> Iterator[str]:
    known = set(default) | _schema_fields(prefix)
    target = node.get("_target_")
    for key, value in node.items():
        key = str(key)
        if key not in known:
            if not _takes(target, key) and not _an_added_object(prefix, value) \
                    and node.get("arch") not in FOREIGN_NODES:  # timm/hf: the library checks
                yield prefix + key
        elif isinstance(value, dict) and isinstance(default.get(key), dict):
            yield from _unknown(value, default[key], f"{prefix}{key}.")


def _an_added_object(prefix: str, value: Any) -> bool:
    return prefix.rstrip(".") in OPEN_CONTAINERS and isinstance(value, dict) and bool(value.get("_target_"))


def _schema_fields(prefix: str) -> set[str]:
    schema = TopSchema if not prefix else SCHEMAS.get(prefix.rstrip("."))
    return {f.name for f in dataclasses.fields(schema)} if schema else set()


def _takes(target: object, key: str) -> bool:
    """Whether the callable ``target`` names (a node's ``_target_``) takes ``key`` as a keyword argument."""
    if not isinstance(target, str) or not target:
        return False
    if not target.startswith(OWN_TARGETS):
        return True  # the user's code: it decides when it is built
    parameters = _parameters(target)
    return any(p.kind is p.VAR_KEYWORD or (p.name == key and p.kind is not p.VAR_POSITIONAL) for p in parameters)


def _parameters(target: str) -> list[inspect.Parameter]:
    try:
        from hydra.utils import get_object

        return list(inspect.signature(get_object(target)).parameters.values())
    except Exception:  # noqa: BLE001 - a target that cannot be looked at takes nothing unlisted
        return []


def _options(target: object) -> set[str]:
    """The options a kdrun ``_target_`` takes by name (those with a default: the others, such as a method's
    ``ctx``, kdrun passes itself)."""
    if not isinstance(target, str) or not target.startswith(OWN_TARGETS):
        return set()
    return {p.name for p in _parameters(target)
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def added_key_target(tree: dict[str, Any], path: str) -> str | None:
    """The ``_target_`` that takes ``path``'s key where it is not in ``tree`` yet (a keyword argument of the
    user's factory: written ``+teacher.width=64``), or None."""
    parent, _, leaf = path.rpartition(".")
    node = _node(tree, parent)
    target = node.get("_target_") if isinstance(node, dict) else None
    return str(target) if _takes(target, leaf) else None


def unknown_key_message(path: str, value: str | None, default: dict[str, Any], groups: Iterable[str] = ()) -> str:
    """``distill.alhpa is not a config key; did you mean distill.alpha? ...``: the key as typed, the closest
    valid one, and the valid keys where it was written. ``default``: the config without it; ``value``: the
    typed value, if known (a config group's option is suggested with it)."""
    parts = path.split(".")
    depth = 0  # the first part that does not exist: +distil.alpha is a typo of distil, not of alpha
    while depth < len(parts) - 1 and isinstance(_node(default, ".".join(parts[:depth + 1])), dict):
        depth += 1
    parent, leaf, rest = ".".join(parts[:depth]), parts[depth], "".join(f".{p}" for p in parts[depth + 1:])
    siblings = _node(default, parent)
    keys = set(siblings if isinstance(siblings, dict) else ()) | _schema_fields(f"{parent}." if parent else "")
    if isinstance(siblings, dict) and rest == "":
        keys |= _options(siblings.get("_target_"))  # load_cifar100's verify, where its file does not list it
    keys = sorted(k for k in keys if not k.startswith("_"))
    hint = _closest(leaf, parent, rest, keys, default, set(groups), value)
    where = f"keys of {parent}" if parent else "top-level keys"
    return f"{path} is not a config key; {hint}{where}: {', '.join(keys)}"


def _closest(leaf: str, parent: str, rest: str, siblings: list[str], default: dict[str, Any], groups: set[str],
             value: str | None) -> str:
    """``did you mean X? ``: a sibling spelled alike; else the same name elsewhere (a config group, another
    node's key); else nothing. Never the ``+`` form of the typo itself."""
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if close:
        return f"did you mean {parent + '.' if parent else ''}{close[0]}{rest}? "
    if leaf in groups and not rest:
        return f"did you mean {_group_choice(leaf, value)} (the {leaf} config group)? "
    same = [p for p in _paths(default, "") if p.rpartition(".")[2] == leaf
            and (parent.startswith("hydra") or not p.startswith("hydra."))]  # Hydra's own keys: for Hydra's typos
    return f"did you mean {same[0]}{rest}? " if same else ""


def _group_choice(group: str, value: str | None) -> str:
    """``optimizer=adamw``: the group's option closest to the value typed, or its choices."""
    try:
        from hydra.core.global_hydra import GlobalHydra

        options = sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    except Exception:  # noqa: BLE001 - outside a composition: the value as typed
        options = []
    if value is not None and (not options or value in options):
        return f"{group}={value}"
    close = difflib.get_close_matches(value or "", options, n=1, cutoff=0.6)
    return f"{group}={close[0]}" if close else f"{group}=<{'|'.join(options)}>"


def _paths(node: dict[str, Any], prefix: str) -> Iterator[str]:
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _paths(value, f"{prefix}{key}.")


def _node(tree: dict[str, Any] | None, path: str) -> Any:
    node: Any = tree
    for part in path.split(".") if path else ():
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
