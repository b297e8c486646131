"""Where datasets and generated transfer sets live: one per-user cache, shared by every run folder.

``KDRUN_DATA`` wins, then ``$XDG_CACHE_HOME/kdrun``, then ``~/.cache/kdrun`` (the XDG base-directory
convention that pip and Hugging Face's hub also follow). ``paths.data=...`` on the command line
overrides all three. Torch-free: the config resolves it while composing.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> str:
    """The default ``paths.data``: ``KDRUN_DATA``, else ``$XDG_CACHE_HOME/kdrun``, else ``~/.cache/kdrun``."""
    explicit = os.environ.get("KDRUN_DATA")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec: an unset, empty or relative value means the default
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return str(base / "kdrun")
