"""Small helpers shared by the foreign-model builders (kdrun/models/foreign_build.py, hf_build.py)."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch

from kdrun.errors import KdrunError
from kdrun.io import one_line
from kdrun.models.foreign_nodes import EXTRAS


def on_meta() -> bool:
    return torch.empty(0).device.type == "meta"


def need_extra(kind: str, key: str) -> None:
    try:
        __import__(EXTRAS[kind])
    except ImportError:
        raise KdrunError(f"{key}={kind} needs the '{kind}' extra: pip install -e \".[{kind}]\" (from a checkout) or "
                         f"pip install \"kdrun[{kind}]\"") from None


def offline_error(key: str, what: str, error: Exception) -> KdrunError:
    return KdrunError(f"{key}: the pretrained weights of {what} could not be fetched ({one_line(error, limit=140)}); "
                      f"offline, set {key}.pretrained=false (random init) or give {key}.checkpoint=<file>")


def local_folder(name: str) -> Path | None:
    path = Path(os.path.expanduser(str(name)))
    return path if path.is_dir() else None


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """One quick connection to the hub (3 s at most): offline, kdrun says so at once instead of retrying."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False
