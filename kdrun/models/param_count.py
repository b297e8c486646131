"""Parameter counts of the built-in architectures, counted once and kept in ``param_counts.json``.

``kdrun --list models`` answers without importing torch (it took longer than ``import torch`` when it built every
model to count): it reads the counts this module wrote. ``python -m kdrun.models.param_count`` counts them
again (on the meta device: no memory, no init), and tests/test_own_archs.py keeps the file equal to a fresh count,
so a new or changed architecture cannot show a stale number. Counts are for CIFAR-100 images (3x32x32, 100
classes) or MNIST-1D signals (1x40, 10 classes), or ListOps token ids (19 ids, 48 positions, 10 classes), whichever
input the architecture takes.
"""

from __future__ import annotations

import json
from pathlib import Path

FILE = Path(__file__).with_name("param_counts.json")
IMAGE, SIGNAL = {"num_classes": 100, "in_channels": 3, "input_size": (32, 32)}, \
    {"num_classes": 10, "in_channels": 1, "input_size": (40,)}
TOKENS = {"num_classes": 10, "in_channels": 19, "input_size": (48,)}  # ListOps: 19 token ids, 48 positions


def count_all() -> dict[str, int]:
    import torch

    from kdrun.models.registry import create_model, list_models, model_spec

    counts = {}
    for name in list_models():
        shape = {"image": IMAGE, "tokens": TOKENS, "next_tokens": TOKENS}.get(model_spec(name).input_kind, SIGNAL)
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in create_model(name, **shape).parameters())
    return counts


def saved_counts() -> dict[str, int]:
    return json.loads(FILE.read_text()) if FILE.is_file() else {}


if __name__ == "__main__":
    FILE.write_text(json.dumps(count_all(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FILE}")
