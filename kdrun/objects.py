"""The one caller of Hydra's ``instantiate``: config nodes with ``_target_`` -> objects, with kdrun's errors.

Torch-free, so that preflight can build a scheme (kdrun/schemes/registry.py) without loading torch;
kdrun/tasks/build.py builds datasets, methods and transfer sets through it.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from kdrun.errors import KdrunError
from kdrun.io import one_line


def from_config(node: Any, what: str | None = None, hint: str = "", **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``. A :class:`KdrunError` raised inside comes through as itself (not in
    Hydra's wrapper); any other failure becomes ``<what> cannot be built: <reason>[; <hint>]`` when ``what``
    names the config entry, and stays Hydra's exception otherwise."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, KdrunError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        if what is None:
            raise
        raise KdrunError(f"{what} cannot be built: {one_line(e)}" + (f"; {hint}" if hint else "")) from None
