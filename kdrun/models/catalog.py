"""What the architectures are, without building any: names, family, input kind, options, one line each.

The model registry (``kdrun/models/registry.py``) binds each name to its builder, which means
importing torch and the whole zoo. Everything decided before a run -- the ``teacher=``/``student=``
config options, config checks, ``kdrun --help``, tab completion, preflight errors -- only needs these
facts, so they live here too, in a table that imports nothing heavy. ``tests/test_models.py`` keeps
it equal to the registry: a model registered without its line here (or with different facts) fails
there, with the line to paste.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    doc: str = ""  # the builder's first docstring line
    # Learning rates a published training recipe uses for this architecture instead of its usual one,
    # by recipe (trainer) name: RepDistiller's CIFAR recipe trains MobileNetV2/ShuffleNets at 0.01.
    recipe_lr: dict[str, float] = field(default_factory=dict)


ARCHS: dict[str, Arch] = {a.name: a for a in (
    Arch('bert', 'bert', 'tokens', {'layers': 4, 'hidden': 64, 'heads': 4, 'intermediate': 256, 'max_positions': 512,
                                    'dropout': 0.1, 'pretrained': None, 'init_from_teacher': None},
         "BERT encoder for sequence classification (transformers); ``pretrained``: a hub name or local folder."),
    Arch('cnn1d', 'cnn1d', 'signal', {'channels': [64, 64, 64], 'norm': 'none', 'depth': 1},
         "1-D CNN for signals (MNIST-1D); ``channels`` per stage, ``norm`` none|batch, ``depth`` convs per stage."),
    Arch('gpt2', 'gpt2', 'next_tokens', {'layers': 4, 'hidden': 128, 'heads': 4, 'max_positions': 256,
                                         'dropout': 0.1, 'pretrained': None},
         "GPT-2 causal LM (transformers) for next-token distillation; ``pretrained``: a hub name or local folder."),
    Arch('mlp', 'mlp', 'any', {'hidden': [100, 100], 'dropout': 0.0},
         'Multi-layer perceptron on flattened inputs; ``hidden`` sets the layer widths.'),
    Arch('mobilenetv2', 'mobilenetv2', 'image', {'width_mult': 0.5, 'expansion': 6},
         "MobileNetV2 for CIFAR (default width 0.5, expansion 6: RepDistiller's mobile_half).",
         recipe_lr={'cifar': 0.01}),
    Arch('resnet110', 'resnet', 'image', {},
         'ResNet-110 for CIFAR (stages 16-32-64).'),
    Arch('resnet14', 'resnet', 'image', {},
         'ResNet-14 for CIFAR (stages 16-32-64).'),
    Arch('resnet20', 'resnet', 'image', {},
         'ResNet-20 for CIFAR (stages 16-32-64).'),
    Arch('resnet32', 'resnet', 'image', {},
         'ResNet-32 for CIFAR (stages 16-32-64).'),
    Arch('resnet32x4', 'resnet', 'image', {},
         "ResNet-32, 4x wide (stem 32, stages 64-128-256), RepDistiller's teacher."),
    Arch('resnet44', 'resnet', 'image', {},
         'ResNet-44 for CIFAR (stages 16-32-64).'),
    Arch('resnet50', 'resnet', 'image', {},
         "ResNet-50 (bottleneck) with a CIFAR 3x3 stem, RepDistiller's ResNet50 teacher."),
    Arch('resnet56', 'resnet', 'image', {},
         'ResNet-56 for CIFAR (stages 16-32-64).'),
    Arch('resnet8', 'resnet', 'image', {},
         'ResNet-8 for CIFAR (stages 16-32-64).'),
    Arch('resnet8x4', 'resnet', 'image', {},
         "ResNet-8, 4x wide (stem 32, stages 64-128-256), RepDistiller's student."),
    Arch('shufflenetv1', 'shufflenet', 'image', {},
         'ShuffleNet v1 for CIFAR, groups 3 (stages 240-480-960).',
         recipe_lr={'cifar': 0.01}),
    Arch('shufflenetv2', 'shufflenet', 'image', {'net_size': 1.0},
         'ShuffleNet V2 for CIFAR; ``net_size`` 1 gives stages 116-232-464 (sizes 0.2-2 as in the reference).',
         recipe_lr={'cifar': 0.01}),
    Arch('tv_resnet101', 'torchvision', 'image', {'weights': None},
         "torchvision's resnet101 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_resnet152', 'torchvision', 'image', {'weights': None},
         "torchvision's resnet152 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_resnet18', 'torchvision', 'image', {'weights': None},
         "torchvision's resnet18 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_resnet34', 'torchvision', 'image', {'weights': None},
         "torchvision's resnet34 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_resnet50', 'torchvision', 'image', {'weights': None},
         "torchvision's resnet50 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_resnext50_32x4d', 'torchvision', 'image', {'weights': None},
         "torchvision's resnext50_32x4d (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('tv_wide_resnet50_2', 'torchvision', 'image', {'weights': None},
         "torchvision's wide_resnet50_2 (ImageNet architecture; weights=hub|<file>: released weights)."),
    Arch('vgg11', 'vgg', 'image', {},
         'VGG-11 with BN (configuration A).'),
    Arch('vgg13', 'vgg', 'image', {},
         "VGG-13 with BN (configuration B), RepDistiller's teacher."),
    Arch('vgg16', 'vgg', 'image', {},
         'VGG-16 with BN (configuration D).'),
    Arch('vgg19', 'vgg', 'image', {},
         'VGG-19 with BN (configuration E).'),
    Arch('vgg8', 'vgg', 'image', {},
         "VGG-8 with BN (one conv per block), RepDistiller's student."),
    Arch('wrn_16_1', 'wrn', 'image', {},
         'WRN-16-1 (stages 16-32-64).'),
    Arch('wrn_16_2', 'wrn', 'image', {},
         'WRN-16-2 (stages 32-64-128).'),
    Arch('wrn_40_1', 'wrn', 'image', {},
         'WRN-40-1 (stages 16-32-64).'),
    Arch('wrn_40_2', 'wrn', 'image', {},
         "WRN-40-2 (stages 32-64-128), RepDistiller's teacher."),
)}


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
