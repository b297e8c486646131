"""Where kdrun's config tree is: ``conf/`` of a source checkout, or its copy inside the installed wheel.

Layer 1 and import-free, because the config groups are registries read from every layer above: the
schemes (``conf/scheme/*.yaml`` name their classes), the methods, the command line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def config_dir() -> str:
    """``conf/`` of a source checkout, or the copy shipped inside the installed wheel (``kdrun/conf``)."""
    shipped = resources.files("kdrun") / "conf"
    if shipped.is_dir() and (shipped / "config.yaml").is_file():
        return str(shipped)
    return str(Path(__file__).resolve().parent.parent / "conf")
