"""The builders of torchvision's ImageNet ResNets (``tv_resnet18`` ... ``tv_resnext50_32x4d``), which their
``kdrun/models/arch/tv_*.yaml`` files name.

Importing this module imports nothing heavy: kdrun/models/torchvision_resnet.py, and with it torchvision
(about 1.5 CPU-seconds, most of it ``torch._dynamo`` pulled in by ``torchvision.ops``), is imported only
when one of these models is built, so a run of any other model never pays for torchvision.
"""

from __future__ import annotations

from collections.abc import Callable

from kdrun.models.base import KDModel

# kdrun name -> (torchvision name, block, blocks per stage, ResNet kwargs)
ARCHS: dict[str, tuple[str, str, list[int], dict]] = {
    "tv_resnet18": ("resnet18", "basic", [2, 2, 2, 2], {}),
    "tv_resnet34": ("resnet34", "basic", [3, 4, 6, 3], {}),
    "tv_resnet50": ("resnet50", "bottleneck", [3, 4, 6, 3], {}),
    "tv_resnet101": ("resnet101", "bottleneck", [3, 4, 23, 3], {}),
    "tv_resnet152": ("resnet152", "bottleneck", [3, 8, 36, 3], {}),
    "tv_wide_resnet50_2": ("wide_resnet50_2", "bottleneck", [3, 4, 6, 3], {"width_per_group": 128}),
    "tv_resnext50_32x4d": ("resnext50_32x4d", "bottleneck", [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
}


def _builder(name: str) -> Callable[..., KDModel]:
    def build(num_classes: int, in_channels: int, input_size: tuple[int, ...], weights: str | None) -> KDModel:
        from kdrun.models import torchvision_resnet

        return torchvision_resnet.build(name, num_classes, in_channels, input_size, weights)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision's {ARCHS[name][0]} (ImageNet architecture; weights=hub|<file>: released weights)."
    return build


# One module-level builder per name (tv_resnet18, ...): what ``_target_: kdrun.models.torchvision_names.<name>`` finds.
globals().update({_name: _builder(_name) for _name in ARCHS})
