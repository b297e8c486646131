"""Regenerate the golden loss values the method tests compare against.

Each ``scripts/golden/<method>.py`` computes its method's published formula independently of
kdrun's implementation (plain tensor code written from the paper / reference code) on fixed,
seeded inputs, and returns a JSON-able dict. This script stores each as
``tests/golden/<method>.json``. Tests only read these files; they never write expectations.

    python scripts/make_golden.py            # all methods
    python scripts/make_golden.py rkd crd    # some
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT.parent / "tests" / "golden"


def main(names: list[str]) -> None:
    scripts = sorted((ROOT / "golden").glob("[!_]*.py"))
    OUT.mkdir(parents=True, exist_ok=True)
    for path in scripts:
        if names and path.stem not in names:
            continue
        spec = importlib.util.spec_from_file_location(f"golden_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        values = module.golden()
        (OUT / f"{path.stem}.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
        print(f"{path.stem}: {len(values)} values -> {OUT / (path.stem + '.json')}")


if __name__ == "__main__":
    main(sys.argv[1:])
