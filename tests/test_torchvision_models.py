"""torchvision's ResNets as kdrun models: torchvision's keys (released weights load), features, local weights.

The registry-wide checks (shapes, FeatureInfo, gradients, checkpoint round trip) run for them in
test_models.py; this file checks what is particular to the adapter. Nothing is downloaded: the
"released" files are written here in torchvision's format (a bare state dict without BatchNorm's
``num_batches_tracked``, as the old released files are).
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from kdrun.engine.checkpoint import load_weights
from kdrun.errors import KdrunError
from kdrun.models import create_model
from kdrun.models.torchvision_resnet import weights_file


@pytest.fixture(autouse=True)
def _hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def released(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = getattr(torchvision.models, name)().state_dict()
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _tv(name: str, num_classes: int = 1000, **kwargs):
    return create_model(name, num_classes=num_classes, in_channels=3, input_size=(32, 32), **kwargs)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_keys_and_size_are_torchvisions(name):
    ours, theirs = _tv(f"tv_{name}"), getattr(torchvision.models, name)()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_parameters == sum(p.numel() for p in theirs.parameters())


@torch.no_grad()
def test_released_file_loads_as_teacher_checkpoint_and_forward_is_torchvisions(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(released("resnet18"), path)
    model = _tv("tv_resnet18").eval()
    load_weights(model, path, "tv_resnet18")
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(released("resnet18"), strict=False)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))
    feats = model.forward_features(x, preact=True)
    torch.testing.assert_close(feats.logits, reference(x))
    for stage, pre in zip(feats.stages[1:], feats.preact[1:]):
        torch.testing.assert_close(stage, torch.relu(pre))
    assert tuple(feats.stages[0].shape[1:]) == (64, 16, 16)  # stem: conv stride 2 + max-pool


def test_weights_hub_reads_the_local_cache_only():
    path = weights_file("resnet18")
    assert path.name == "resnet18-f37072fd.pth" and "torch_home" in str(path)
    with pytest.raises(KdrunError, match="not found \\(kdrun never downloads\\); fetch https://.*resnet18-f37072fd"):
        _tv("tv_resnet18", weights="hub")
    path.parent.mkdir(parents=True)
    torch.save(released("resnet18"), path)
    model = _tv("tv_resnet18", weights="hub")
    torch.testing.assert_close(model.state_dict()["layer4.1.conv2.weight"], released("resnet18")["layer4.1.conv2.weight"])


def test_weights_for_another_class_count_keep_the_backbone_only(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(released("resnet18"), path)
    model = _tv("tv_resnet18", num_classes=10, weights=str(path))
    assert model.fc.weight.shape == (10, 512)
    torch.testing.assert_close(model.state_dict()["conv1.weight"], released("resnet18")["conv1.weight"])
    with pytest.raises(KdrunError, match="does not fit resnet50"):
        _tv("tv_resnet50", weights=str(path))
    with pytest.raises(KdrunError, match="weights=hub:NOPE is not valid for resnet18; valid tags: IMAGENET1K_V1"):
        _tv("tv_resnet18", weights="hub:NOPE")
