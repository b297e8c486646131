"""Imports every architecture module so that its ``@register_model`` decorators run.

An architecture module is any file under kdrun/models/ that imports ``register_model``; found by reading
the sources (not by importing every module: an adapter for an optional library stays unimported until
used), so a new architecture is its one file, with no list to extend here.
"""

import importlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REGISTERS = re.compile(r"^from kdrun\.models\.registry import .*\bregister_model\b", re.M)


def architecture_modules() -> list[str]:
    return sorted("kdrun.models." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                  for p in PACKAGE.rglob("*.py") if REGISTERS.search(p.read_text()))


for _module in architecture_modules():
    importlib.import_module(_module)
