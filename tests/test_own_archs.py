"""A user's named architectures in their own config folder (``<dir>/arch/<name>.yaml``, kdrun/models/user_archs.py),
and ``kdrun --list models`` listing them beside the built-ins without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_kdrun

NETS = textwrap.dedent("""
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes, in_channels, width=8):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
            self.layer2 = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
            self.fc = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.fc(self.layer2(self.layer1(x)).mean((2, 3)))
""")
ARCH = textwrap.dedent("""
    # A small CNN for 8x8 digits
    _target_: {module}.Net
    input_kind: image
    family: mine
    taps: [layer1, layer2]
    width: 6
""")


def user_folder(tmp_path: Path, module: str) -> Path:
    (tmp_path / f"{module}.py").write_text(NETS)
    (tmp_path / "myconf" / "arch").mkdir(parents=True)
    (tmp_path / "myconf" / "arch" / "tinycnn.yaml").write_text(ARCH.format(module=module))
    return tmp_path / "myconf"


def test_the_saved_parameter_counts_are_a_fresh_count():
    from kdrun.models.param_count import count_all, saved_counts

    assert saved_counts() == count_all(), "run python -m kdrun.models.param_count"


def test_list_models_shows_the_users_architecture_without_importing_torch(tmp_path):
    folder = user_folder(tmp_path, "listed_nets")
    code = ("import sys; sys.argv = ['kdrun', '--list', 'models', 'hydra.searchpath=[file://myconf]']\n"
            "from kdrun.cli import main\nmain()\n"
            "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "torch imported: False" in proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.strip().startswith("tinycnn"))
    assert "image" in line and "A small CNN for 8x8 digits" in line and str(folder.name) in line
    assert any(ln.strip().startswith("resnet20") and "0.28M" in ln for ln in proc.stdout.splitlines())


def test_a_user_architecture_composes_like_a_builtin(tmp_path, monkeypatch):
    from conftest import compose_config
    from kdrun.config.store import register_user_archs

    monkeypatch.chdir(tmp_path)
    user_folder(tmp_path, "composed_nets")
    searchpath = "hydra.searchpath=[file://myconf]"
    assert register_user_archs([searchpath]) == ["tinycnn"]
    cfg = compose_config(["teacher=tinycnn", "student=tinycnn", "teacher.width=12", searchpath])
    assert cfg.teacher._target_ == "composed_nets.Net" and cfg.teacher.width == 12 and cfg.student.width == 6
    assert list(cfg.teacher.taps) == ["layer1", "layer2"]


@pytest.mark.parametrize("text, said", [
    ("width: 3\n", "an architecture file needs _target_"),
    ("_target_: x.Net\ninput_kind: video\n", "input_kind=video is not valid; valid choices: image, signal, any"),
    ("_target_: [unclosed\n", "not valid YAML"),
])
def test_a_bad_architecture_file_is_one_line(tmp_path, text, said):
    (tmp_path / "myconf" / "arch").mkdir(parents=True)
    (tmp_path / "myconf" / "arch" / "broken.yaml").write_text(text)
    proc = run_kdrun(["--list", "models", "hydra.searchpath=[file://myconf]"], tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and said in lines[0] and "broken.yaml" in lines[0], proc.stderr


@pytest.mark.slow
def test_a_user_architecture_teaches_a_zoo_student_with_attention_transfer(tmp_path):
    user_folder(tmp_path, "taught_nets")
    args = ["hydra.searchpath=[file://myconf]", "dataset=digits", "teacher=tinycnn", "teacher.width=10",
            "student=resnet8", "method=at", "debug=fast", "measure.enabled=false", "stages=[teacher,baseline,distilled]",
            "hydra.run.dir=run"]
    run_kdrun(args, tmp_path)
    stages = json.loads((tmp_path / "run" / "results.json").read_text())["stages"]
    assert stages["teacher"]["arch"] == "tinycnn" and stages["distilled"]["method"] == "at"
