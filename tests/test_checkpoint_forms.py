"""Teacher checkpoints as people have them (kdrun/engine/checkpoint.py): every form loads strictly after the
documented normalisation, and a checkpoint of another model fails in one line naming the keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdrun.engine.checkpoint import load_weights
from kdrun.errors import KdrunError
from kdrun.models.foreign import ForeignModel, example_input


def net(width: int = 4) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def foreign(width: int = 4) -> ForeignModel:
    return ForeignModel(net(width), "mynets.Net", 10, example_input(1, (8, 8)))


def save_as(form: str, sd: dict, path) -> str:
    if form == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path) + ".safetensors")
        return str(path) + ".safetensors"
    wrapped = {"bare": sd, "model": {"model": sd, "epoch": 3}, "state_dict": {"state_dict": sd, "optimizer": {}},
               "module.": {f"module.{k}": v for k, v in sd.items()},
               "ddp in state_dict": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
               "fp16": {k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
               "bf16": {"model": {k: v.bfloat16() if v.is_floating_point() else v for k, v in sd.items()}},
               "kdrun's own (net. prefix)": {"model": {f"net.{k}": v for k, v in sd.items()}, "arch": "mynets.Net"}}
    torch.save(wrapped[form], path)
    return str(path)


FORMS = ["bare", "model", "state_dict", "module.", "ddp in state_dict", "fp16", "bf16", "safetensors",
         "kdrun's own (net. prefix)"]


@pytest.mark.parametrize("form", FORMS)
def test_every_checkpoint_form_loads_strictly(tmp_path, form):
    trained = net()
    for p in trained.parameters():
        p.data.add_(1.0)
    path = save_as(form, trained.state_dict(), tmp_path / "ckpt.pt")
    model = foreign()
    load_weights(model, path, "mynets.Net")
    atol = 1e-2 if form in ("fp16", "bf16") else 0
    for k, v in trained.state_dict().items():
        assert torch.allclose(model.net.state_dict()[k].float(), v.float(), atol=atol * (1 + v.abs().max())), k
    assert model.net[0].weight.dtype == torch.float32


def test_a_zoo_model_loads_a_dataparallel_checkpoint(tmp_path):
    from kdrun.models.registry import create_model

    def resnet8():
        return create_model("resnet8", num_classes=10, in_channels=1, input_size=(8, 8))

    sd = resnet8().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "c.pth")
    load_weights(resnet8(), tmp_path / "c.pth", "resnet8")


def test_a_checkpoint_of_another_model_fails_in_one_line_naming_the_keys(tmp_path):
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(KdrunError) as e:
        load_weights(foreign(), tmp_path / "other.pt", "mynets.Net")
    message = str(e.value)
    assert "\n" not in message and "does not" in message and "net." in message, message


def test_a_wider_checkpoint_names_the_mismatching_tensor(tmp_path):
    torch.save(net(8).state_dict(), tmp_path / "wide.pt")
    with pytest.raises(KdrunError, match=r"does not fit mynets.Net: 'net.0.weight' has shape \(8, 1, 3, 3\), "
                                         r"expected \(4, 1, 3, 3\)"):
        load_weights(foreign(), tmp_path / "wide.pt", "mynets.Net")


def test_a_corrupt_safetensors_file_is_one_line(tmp_path):
    bad = tmp_path / "t.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(KdrunError, match="is not a readable safetensors file") as e:
        load_weights(foreign(), bad, "mynets.Net")
    assert "\n" not in str(e.value)


def test_a_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(KdrunError, match="not a weights-only checkpoint"):
        load_weights(foreign(), tmp_path / "evil.pt", "mynets.Net")
