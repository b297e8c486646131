"""What the architectures are, without building any: names, family, input kind, options, one line each.

Each built-in architecture is one file, ``kdrun/models/arch/<name>.yaml``, in the form a user's own architecture
takes (kdrun/models/user_archs.py): the first comment line describes it, ``_target_`` names its builder,
``family`` and ``input_kind`` say what kdrun must know before building it, ``recipe_lr`` the lr a trainer
recipe uses for it instead of its usual one (RepDistiller's CIFAR recipe trains MobileNetV2/ShuffleNets at
0.01), and every other key is an option with its default (``student.hidden=[800,800]``). Everything decided
before a run -- the ``teacher=``/``student=`` config options, config checks, ``kdrun --help``, preflight
errors -- reads these files without importing torch; the registry (``kdrun/models/registry.py``) builds
from the same files, so a new architecture is its code and its file, with no list to extend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdrun.errors import choice_error

# What input a model accepts: "image" (C, H, W), "signal" (C, L), "tokens" (L token ids, padded, one label),
# "next_tokens" (L token ids, each predicting the next: causal LMs) or "any" (flattened numbers: images and
# signals, never token ids, which are not quantities).
INPUT_KINDS = ("image", "signal", "tokens", "next_tokens", "any")
TOKEN_KINDS = ("tokens", "next_tokens")


def accepts(model_kind: str, data_kind: str) -> bool:
    """Whether a model of input kind ``model_kind`` can read a dataset of input kind ``data_kind``."""
    return model_kind == data_kind or (model_kind == "any" and data_kind not in TOKEN_KINDS)


@dataclass(frozen=True)
class Arch:
    name: str
    family: str
    input_kind: str
    defaults: dict[str, Any] = field(default_factory=dict)  # the architecture's own options and their defaults
    doc: str = ""  # the file's first comment line
    # Learning rates a published training recipe uses for this architecture instead of its usual one,
    # by recipe (trainer) name: RepDistiller's CIFAR recipe trains MobileNetV2/ShuffleNets at 0.01.
    recipe_lr: dict[str, float] = field(default_factory=dict)
    target: str = ""  # the builder, by import path: ``builder(num_classes, in_channels, input_size, **options)``


# kdrun/models/arch/<name>.yaml: one file per built-in architecture, in the form a user's own takes. Beside the
# code, not in conf/: a file there would be a Hydra group of its own (``arch=``) that no run composes.
ARCH_FOLDER = Path(__file__).resolve().parent / "arch"


def _description(text: str) -> str:
    """The file's first comment line: the architecture's one-line description (kdrun --list models)."""
    return next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")


def read_archs(folder: Path) -> dict[str, Arch]:
    """Every ``<name>.yaml`` in ``folder`` as an :class:`Arch` (PyYAML's safe loader: no tags, no code)."""
    import yaml

    archs = {}
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        node = dict(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        target = node.pop("_target_")
        family, kind = node.pop("family"), node.pop("input_kind")
        recipe = dict(node.pop("recipe_lr", None) or {})
        archs[path.stem] = Arch(path.stem, family, kind, node, _description(text), recipe, target)
    return archs


# The built-in architectures, read from their files (the one source: the registry builds from the same files).
ARCHS: dict[str, Arch] = read_archs(ARCH_FOLDER)


def list_archs(family: str | None = None, input_kind: str | None = None) -> list[str]:
    """Architecture names, sorted; ``input_kind`` keeps those that accept it (``any`` accepts all)."""
    return sorted(n for n, a in ARCHS.items() if (family is None or a.family == family)
                  and (input_kind is None or accepts(a.input_kind, input_kind)))


def arch_info(name: str, key: str = "model") -> Arch:
    """The facts of architecture ``name``; an unknown name is a one-line error naming ``key`` and the choices."""
    if name not in ARCHS:
        raise choice_error(key, name, ARCHS)
    return ARCHS[name]


def recipe_lr(recipe: str, arch: str, base: float) -> float:
    """The lr of ``arch`` under trainer recipe ``recipe``: its own if it has one, else ``base``.
    An unknown ``arch`` gets ``base`` (the config checks report it with the valid choices)."""
    info = ARCHS.get(arch)
    return info.recipe_lr.get(recipe, base) if info is not None else base
