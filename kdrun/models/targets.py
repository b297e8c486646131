"""A user's ``_target_`` (``mynets.make_teacher``): found, checked against its signature, identified by its source.

Torch-free: importing the module the user named is the only code of theirs that runs before building
(``PYTHONPATH`` and the working directory are searched, as Python does for ``python -m``). Every problem
is one line naming the config key, the target and what to do, before any data work.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kdrun.errors import KdrunError


def _importable_cwd() -> None:
    """The working directory is importable, as for ``python -m`` (the ``kdrun`` script alone would not add it)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def locate(target: object, key: str) -> Callable[..., Any]:
    """The callable at import path ``target`` (``package.module.name``, or ``module.Class.method``)."""
    if not isinstance(target, str) or "." not in target.strip("."):
        raise KdrunError(f"{key}={target} is not an import path; give module.function or module.Class "
                         f"(e.g. {key}=mynets.make_teacher, with mynets.py in the working directory or on PYTHONPATH)")
    _importable_cwd()
    parts = target.split(".")
    module, error = None, None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable prefix is the module
        try:
            module = importlib.import_module(".".join(parts[:cut]))
            break
        except ModuleNotFoundError as e:
            if e.name is not None and not ".".join(parts[:cut]).startswith(e.name):
                raise KdrunError(f"{key}={target}: importing {'.'.join(parts[:cut])} failed: module {e.name!r} "
                                 f"is not installed") from None
            error = e
        except Exception as e:  # the user's module raised while importing
            raise KdrunError(f"{key}={target}: importing {'.'.join(parts[:cut])} raised "
                             f"{type(e).__name__}: {e}") from None
    if module is None:
        raise KdrunError(f"{key}={target}: module {parts[0]!r} not found ({error}); put {parts[0]}.py in the working "
                         f"directory ({os.getcwd()}) or on PYTHONPATH") from None
    obj: Any = module
    for name in parts[cut:]:
        if not hasattr(obj, name):
            names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
            raise KdrunError(f"{key}={target}: {obj.__name__ if hasattr(obj, '__name__') else obj} has no "
                             f"{name!r}; callables there: {', '.join(sorted(names)[:12]) or 'none'}")
        obj = getattr(obj, name)
    if not callable(obj):
        raise KdrunError(f"{key}={target} is a {type(obj).__name__}, not a function or class")
    return obj


def accepted(fn: Callable[..., Any]) -> tuple[set[str] | None, set[str]]:
    """``(keyword names fn accepts or None for **kwargs, names it requires)``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: anything goes
        return None, set()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names = None
    else:
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, required


def bind_kwargs(fn: Callable[..., Any], given: dict[str, Any], provided: dict[str, Any], key: str,
                target: str) -> dict[str, Any]:
    """``given`` (the user's options) plus those of ``provided`` (num_classes, ...) that ``fn`` names.

    An option ``fn`` does not accept, or a required one nobody gives, is one line naming the valid keys."""
    names, required = accepted(fn)
    kwargs = dict(given)
    for name, value in provided.items():
        if names is not None and name in names and name not in kwargs:
            kwargs[name] = value
    if names is not None:
        unknown = sorted(set(given) - names)
        if unknown:
            raise KdrunError(f"{key}.{unknown[0]} is not an argument of {target}; its arguments: "
                             f"{', '.join(sorted(names)) or 'none'}")
    missing = sorted(required - set(kwargs))
    if missing:
        raise KdrunError(f"{target} needs {', '.join(missing)}: give {key}.{missing[0]}=... "
                         f"(kdrun passes {', '.join(provided)} where the signature names them)")
    return kwargs


def check_target(target: object, given: dict[str, Any], provided: Iterable[str], key: str) -> Callable[..., Any]:
    """Before any data work: the target imports, is callable and accepts ``given`` (kdrun's ``provided``
    arguments are filled in at build time)."""
    fn = locate(target, f"{key}._target_")
    bind_kwargs(fn, given, dict.fromkeys(provided), key, str(target))
    return fn


def source_digest(target: str) -> str:
    """``target`` and a digest of the source file of its module: another version of the user's code is
    another model (part of the cache key of what kdrun trains from it)."""
    module = target
    while module and module not in sys.modules:
        module = module.rpartition(".")[0]
    path = getattr(sys.modules.get(module), "__file__", None)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path and Path(path).is_file() else "?"
    return f"{target}@{digest}"
