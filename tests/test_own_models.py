"""Models kdrun did not write: a user's module by import path, timm by name, a Hugging Face classifier from a
config folder; as teacher and student, with KD, feature and relation methods; one-line errors before any data work.

Offline: timm and transformers models are built with random init (timm's ``test_resnet``, a two-stage
transformers ResNet from a saved config).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import run_kdrun

NETS = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes, in_channels, width=8):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
            self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
            self.layer2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                                        nn.ReLU())
            self.fc = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))

    def make_teacher(num_classes, in_channels, input_size, width=16):
        assert len(input_size) == 2
        return Net(num_classes, in_channels, width)
""")
FAST = ["debug=fast", "dataset=digits", "stages=[teacher,baseline,distilled]", "trainer.max_eval_batches=1",
        "measure.enabled=false"]


def user_module(folder: Path, name: str, source: str = NETS) -> str:
    """``<folder>/<name>.py`` (a module name of its own per test: in-process runs share sys.modules)."""
    (folder / f"{name}.py").write_text(source)
    return name


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.mark.slow
def test_a_users_module_is_teacher_and_student_with_kd_and_attention_transfer(tmp_path):
    mod = user_module(tmp_path, "mynets_e2e")
    args = [*FAST, "teacher=custom", f"teacher._target_={mod}.make_teacher", "teacher.width=12",
            "teacher.taps=[layer1,layer2]", "student=custom", f"student._target_={mod}.Net", "student.taps=[layer1,layer2]",
            "method=at", "distill.alpha=0.5", "hydra.run.dir=run"]
    proc = run_kdrun(args, tmp_path)
    stages = results(tmp_path / "run")["stages"]
    assert stages["teacher"]["arch"] == f"{mod}.make_teacher" and stages["distilled"]["arch"] == f"{mod}.Net"
    assert stages["teacher"]["params"] > stages["baseline"]["params"]  # width 12 vs the default 8
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    distilled = [m for m in metrics if m.get("stage") == "distilled" and "train_loss" in m]
    assert distilled and any(k.startswith("train_") and "at" in k for k in distilled[-1]), distilled[-1]
    assert f"{mod}.make_teacher" in proc.stdout + proc.stderr
    # its checkpoint (and the bare network's weights, as a user would save them) teach again
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "teacher" / "last.pt", weights_only=True)
    torch.save({k.removeprefix("net."): v for k, v in ckpt["model"].items()}, tmp_path / "bare.pt")
    for path in ("run/checkpoints/teacher/last.pt", "bare.pt"):
        loaded = run_kdrun([*args[:-1], "stages=[teacher]", f"teacher.checkpoint={path}", f"hydra.run.dir=again_{path[:3]}"],
                           tmp_path)
        assert f"teacher: {mod}.make_teacher loaded from {path}" in loaded.stdout + loaded.stderr


@pytest.mark.slow
def test_a_timm_teacher_distils_into_a_zoo_student_with_fitnet(tmp_path):
    args = [*FAST, "teacher=timm", "teacher.name=test_resnet", "student=resnet8", "method=fitnet", "hydra.run.dir=run"]
    run_kdrun(args, tmp_path)
    stages = results(tmp_path / "run")["stages"]
    assert stages["teacher"]["arch"] == "timm/test_resnet" and stages["distilled"]["method"] == "fitnet"


def tiny_hf_folder(folder: Path) -> Path:
    from transformers import ResNetConfig

    ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=1).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_a_hugging_face_classifier_from_a_config_folder_teaches_with_rkd(tmp_path):
    hf = tiny_hf_folder(tmp_path / "tiny-resnet")
    args = [*FAST, "teacher=hf", f"teacher.name={hf}", "student=resnet8", "method=rkd", "hydra.run.dir=run"]
    run_kdrun(args, tmp_path)
    assert results(tmp_path / "run")["stages"]["teacher"]["arch"] == f"hf/{hf}"


def build(node: dict, info=None, key: str = "teacher"):
    from kdrun.tasks.build import build_model
    from kdrun.data.static_info import STATIC

    return build_model(OmegaConf.create(node), info or STATIC["kdrun.data.digits.load_digits"](), key)


def test_the_adapter_gives_logits_and_tapped_features(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = user_module(tmp_path, "mynets_adapter")
    model = build({"arch": "custom", "_target_": f"{mod}.Net", "taps": ["layer1", "layer2"], "width": 4})
    assert model.feature_info.stage_channels == (4, 8) and model.feature_info.stage_sizes == ((8, 8), (4, 4))
    assert model.feature_info.pooled_dim == 8
    x = torch.randn(3, 1, 8, 8)
    f = model.forward_features(x)
    assert torch.equal(f.logits, model(x)) and f.pooled.shape == (3, 8) and [s.shape[1] for s in f.stages] == [4, 8]
    assert not model.net.layer1._forward_hooks  # hooks live only during the call: export sees a plain module


def test_timm_default_taps_are_its_feature_info_and_hf_gives_hidden_states(tmp_path):
    timm_model = build({"arch": "timm", "name": "test_resnet", "pretrained": False, "taps": None})
    assert timm_model.taps == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert timm_model.feature_info.num_stages == 5 and timm_model.feature_info.spatial
    hf = build({"arch": "hf", "name": str(tiny_hf_folder(tmp_path / "hf")), "pretrained": True, "revision": None,
                "trust_remote_code": False, "taps": None})
    assert hf.feature_info.stage_channels == (8, 8, 16) and hf.feature_info.num_classes == 10
    assert hf(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_feature_and_relation_methods_accept_mixed_foreign_pairs_before_any_data(tmp_path, monkeypatch):
    """FitNet, AT, CRD, RKD on timm -> zoo and custom -> hf pairs: the pair checks pass on the meta device."""
    from conftest import compose_config
    from kdrun.schemes.registry import check_before_data

    monkeypatch.chdir(tmp_path)
    mod = user_module(tmp_path, "mynets_pairs")
    hf = tiny_hf_folder(tmp_path / "hf")
    pairs = {("fitnet", "at", "crd", "rkd"): ["teacher=timm", "teacher.name=test_resnet", "student=resnet8"],
             # the tiny transformers ResNet is at 2x2 after its stem: FitNet refuses the 8x8 maps of this teacher
             ("at", "crd", "rkd"): ["teacher=custom", f"teacher._target_={mod}.Net", "teacher.taps=[stem,layer1,layer2]",
                                    "student=hf", f"student.name={hf}"]}
    for methods, pair in pairs.items():
        for method in methods:
            check_before_data(compose_config(["dataset=digits", f"method={method}", *pair]))


@pytest.mark.parametrize("args, said", [
    (["teacher=custom", "teacher._target_=nosuchmodule_xyz.Net"], "teacher._target_=nosuchmodule_xyz.Net: module"),
    (["teacher=custom", "teacher._target_={mod}.Nope"], "has no 'Nope'; callables there: Net, make_teacher"),
    (["teacher=custom", "teacher._target_={mod}.Net", "teacher.depth=3"], "teacher.depth is not an argument"),
    (["teacher=custom"], "teacher=custom needs teacher._target_="),
    (["teacher=timm"], "teacher=timm needs teacher.name="),
    (["teacher=timm", "teacher.name=resnet_nope"], "teacher.name=resnet_nope is not a timm model"),
    (["teacher=custom", "teacher._target_={mod}.Net", "method=at"], "exposes none; name its modules with teacher.taps"),
    (["teacher=custom", "teacher._target_={mod}.Net", "teacher.taps=[layer9]", "method=at"],
     "teacher.taps: {mod}.Net has no module 'layer9'; its top-level modules: stem, layer1, layer2, fc"),
    (["teacher=custom", "teacher._target_={mod}.Net", "teacher.taps=[layer1,layer2]", "method=ab"],
     "method=ab needs pre-activation features, which teacher={mod}.Net (a foreign model) does not expose"),
])
def test_bad_foreign_models_are_one_line_before_any_data_work(tmp_path, args, said):
    mod = user_module(tmp_path, "mynets_bad")
    args = [a.replace("{mod}", mod) for a in args]
    proc = run_kdrun(["dataset=digits", "student=resnet8", *args], tmp_path, check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and said.replace("{mod}", mod) in err[0], proc.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args, said", [
    (["teacher=timm", "teacher.name=resnet18", "teacher.pretrained=true"],
     "teacher: the pretrained weights of timm/resnet18 could not be fetched"),
    (["teacher=hf", "teacher.name=microsoft/resnet-18"], "teacher: the pretrained weights of hf/microsoft/resnet-18"),
])
def test_pretrained_weights_offline_are_one_line_before_any_data_work(tmp_path, args, said):
    from kdrun.models.foreign_common import hub_reachable

    hub_reachable.cache_clear()
    try:
        proc = run_kdrun(["dataset=digits", "student=resnet8", *args], tmp_path, check=False,
                         env={"HF_HUB_OFFLINE": "1"})
    finally:
        hub_reachable.cache_clear()
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and said in err[0] and "pretrained=false" in err[0], proc.stderr


def test_a_hugging_face_folder_with_code_is_refused_without_trust_remote_code(tmp_path):
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "evilnet", "auto_map": {
        "AutoConfig": "configuration_evil.EvilConfig"}}))
    marker = tmp_path / "code-ran"
    (folder / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    proc = run_kdrun(["dataset=digits", "student=resnet8", "teacher=hf", f"teacher.name={folder}"], tmp_path,
                     check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "contains custom code" in err[0], proc.stderr
    assert "[y/N]" not in proc.stdout + proc.stderr and not marker.exists()
