"""torchvision's ImageNet ResNets as kdrun models: ``tv_resnet18`` ... ``tv_resnet152``,
``tv_wide_resnet50_2``, ``tv_resnext50_32x4d`` (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016; torchvision's implementation). Their names are registered by
kdrun/models/torchvision_names.py, which imports this module (and torchvision) only to build one.

Each is a subclass of ``torchvision.models.ResNet``, so ``forward`` and the state-dict keys are
torchvision's own: the released ImageNet weights (e.g. ``resnet34-b627a593.pth``) load strictly as
``teacher.checkpoint``, which is how mdistiller's ResNet-34 -> ResNet-18 benchmark uses its teacher.

Features: ``stages[0]`` is the stem (conv-BN-ReLU-maxpool: what enters ``layer1``), ``stages[1..4]``
the outputs of ``layer1..layer4``, ``preact`` each stage's last block before its final ReLU, and
``pooled`` the 512*expansion-d vector that enters ``fc``.

``weights`` (a config key: ``student.weights=...``) initializes the model from torchvision weights:
a file path, or ``hub`` (``hub:<TAG>``) for the file torchvision would download into
``torch.hub.get_dir()/checkpoints`` -- kdrun never downloads it. The classifier is kept only when
the class counts match (fine-tuning on another ImageFolder dataset re-initializes ``fc``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from kdrun.errors import KdrunError
from kdrun.models.base import KDModel
from kdrun.models.cifar.common import conv_size, image_size
from kdrun.models.features import FeatureInfo, Features
from kdrun.models.torchvision_names import ARCHS

BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _block_pair(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's block forward, returning (output, output before the final ReLU)."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    pre = out + identity
    return F.relu(pre), pre  # not the block's in-place ReLU: ``pre`` must survive


class TorchvisionResNet(ResNet, KDModel):
    """torchvision's ResNet plus ``forward_features`` and static :class:`FeatureInfo`."""

    def __init__(self, block: type[nn.Module], layers: list[int], num_classes: int, in_channels: int,
                 input_size: tuple[int, int], **kwargs) -> None:
        super().__init__(block, layers, num_classes=num_classes, **kwargs)
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        expansion = block.expansion
        stem = conv_size(conv_size(input_size, kernel=7, stride=2, padding=3), stride=2)
        sizes = [stem, stem]
        for _ in range(3):
            sizes.append(conv_size(sizes[-1], stride=2))
        self.feature_info = FeatureInfo(
            stage_channels=(64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion),
            stage_sizes=tuple(sizes), pooled_dim=512 * expansion, num_classes=num_classes)

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages, pre = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer[:-1]:
                x = block(x)
            x, p = _block_pair(layer[-1], x)
            stages.append(x)
            pre.append(p)
        pooled = torch.flatten(self.avgpool(x), 1)
        return Features(logits=self.fc(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)


def weights_file(tv_name: str, tag: str = "IMAGENET1K_V1") -> Path:
    """Where torchvision keeps its released weights ``tag`` of ``tv_name`` once downloaded (the hub cache)."""
    enum = torchvision.models.get_model_weights(tv_name)
    if tag not in enum.__members__:
        raise KdrunError(f"weights=hub:{tag} is not valid for {tv_name}; valid tags: {', '.join(enum.__members__)}")
    url = enum[tag].url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _weights_path(weights: str, tv_name: str) -> Path:
    if weights == "hub" or weights.startswith("hub:"):
        tag = weights.partition(":")[2] or "IMAGENET1K_V1"
        path = weights_file(tv_name, tag)
        if not path.is_file():
            url = torchvision.models.get_model_weights(tv_name)[tag].url
            raise KdrunError(f"weights={weights}: {path} not found (kdrun never downloads); fetch {url} there "
                             f"or give the file's path")
        return path
    return Path(weights).expanduser()


def load_torchvision_weights(model: TorchvisionResNet, weights: str, tv_name: str) -> None:
    """Initialize ``model`` from torchvision weights; ``fc`` (``conv1``) only if class (input channel) counts match."""
    from kdrun.io import load_checkpoint, state_dict_of

    state = dict(state_dict_of(load_checkpoint(_weights_path(weights, tv_name), "weights")))
    own = model.state_dict()
    for key in ("fc.weight", "fc.bias", "conv1.weight"):  # a new head or stem stays freshly initialized
        if key in state and state[key].shape != own[key].shape:
            state.pop(key)
    wrong = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.startswith(("fc.", "conv1.")) and "num_batches" not in k]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise KdrunError(f"weights={weights} does not fit {tv_name}: {len(wrong)} keys of another shape "
                         f"(e.g. {wrong[:1]}), {len(missing)} missing, {len(unexpected)} unexpected")
    model.load_state_dict(state, strict=False)


def build(name: str, num_classes: int, in_channels: int, input_size: tuple[int, ...],
          weights: str | None) -> KDModel:
    """The model ``name`` of kdrun/models/torchvision_names.py, initialized from ``weights`` if given."""
    tv_name, block, layers, kwargs = ARCHS[name]
    model = TorchvisionResNet(BLOCKS[block], layers, num_classes, in_channels, image_size(input_size, name), **kwargs)
    if weights:
        load_torchvision_weights(model, str(weights), tv_name)
    return model
