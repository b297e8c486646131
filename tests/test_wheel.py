"""A plain ``pip install .`` (a wheel, not the checkout) carries the configs and runs from anywhere."""

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of what the wheel is made of: setuptools builds in the source tree's build/, and the
    # module's tests may run in two pytest-xdist workers at once, each building its own wheel.
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("kdrun", "conf"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, cwd=out)
    return next(out.glob("kdrun-*.whl"))


@pytest.mark.slow  # builds a wheel (pip); the package list: pyproject's, checked by this file only
def test_wheel_carries_every_package_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (REPO / "kdrun").rglob("__init__.py"):
        assert f"kdrun/{init.relative_to(REPO / 'kdrun').as_posix()}" in names, f"{init} missing from the wheel"
    for conf in (REPO / "conf").rglob("*.yaml"):
        assert f"kdrun/conf/{conf.relative_to(REPO / 'conf').as_posix()}" in names, f"{conf} missing from the wheel"
    assert "kdrun/models/param_counts.json" in names  # kdrun --list models reads it (torch-free)


@pytest.mark.slow  # a venv, pip install, three processes
def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    # without pip of its own (ensurepip took 8 s of this test): this environment's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # Dependencies come from this environment (a .pth line, not a site dir: its editable kdrun stays out).
    site_dir = next(venv.glob("lib/python*/site-packages"))
    (site_dir / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # The installed wheel, not a checkout a developer's PYTHONPATH may point at (pip would also take a
    # kdrun.egg-info there for an installed kdrun and skip the wheel). --ignore-installed: a kdrun installed
    # in this environment (seen through deps.pth) would otherwise count as installed already, and pip would
    # skip the wheel.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", "--ignore-installed", str(wheel)], check=True, env=env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([venv / "bin" / "python", "-c", "import kdrun; print(kdrun.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert str(site_dir) in where
    args = ["debug=fast", "dataset=digits", "teacher=mlp", "student=mlp", "student.hidden=[8]", "hydra.run.dir=run"]
    proc = subprocess.run([venv / "bin" / "kdrun", *args], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((work / "run" / "results.json").read_text())["status"] == "completed"
    report = subprocess.run([venv / "bin" / "kdrun-report", "run"], cwd=work, env=env, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert (work / "run" / "report.md").is_file() and (work / "run" / "plots" / "curves.png").is_file()
    help_text = subprocess.run([venv / "bin" / "python", "-m", "kdrun", "--help"], cwd=work, env=env,
                               capture_output=True, text=True, check=True).stdout
    assert "resnet110" in help_text and "mnist1d" in help_text
