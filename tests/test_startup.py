"""Every command answers without importing torch (issue 10): ``import kdrun.cli``, ``--help``, ``--cfg job``,
``--version``, tab completion and the config errors preflight finds before any model is built.

Each case runs in a fresh interpreter (this one may have torch loaded by other tests) and reports,
at exit, whether torch or torchvision was imported. Only the method x architecture pair check
builds models (on the meta device) and so imports torch; it runs after every torch-free check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PROBE = """
import atexit, sys
from hydra.core.config_store import ConfigStore
atexit.register(lambda: print("torch imported: " + str(sorted({"torch", "torchvision"} & set(sys.modules))),
                              file=sys.stderr))
atexit.register(lambda: print("presets registered: " + str("experiment" in ConfigStore.instance().repo),
                              file=sys.stderr))
sys.argv = ["kdrun", *sys.argv[1:]]
from kdrun.cli import main
main()
"""


def probe(args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``kdrun <args>`` in a fresh interpreter whose last line on stderr says whether it imported torch."""
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_importing_the_cli_imports_no_torch():
    code = "import sys, kdrun.cli; print(sorted({'torch', 'torchvision'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("args, code, output", [
    (["--help"], 0, "teacher"),
    (["--cfg", "job", "teacher=resnet8", "student=resnet8"], 0, "arch: resnet8"),
    (["--version"], 0, "kdrun "),
    (["teacher=nope"], 2, "teacher=nope"),
    (["distill.T=-1"], 2, "distill.T=-1"),
    (["scheme=born_again", "scheme.generations=1"], 2, "scheme.generations=1"),
    (["stages=[nope]"], 2, "stages=nope"),
    (["-m", "distill.T=1,2", "--cfg", "job"], 2, "-m cannot be combined with --cfg"),
])
def test_commands_and_config_errors_answer_without_torch(args, code, output):
    proc = probe(args)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert output in proc.stdout + proc.stderr
    assert "torch imported: []" in proc.stderr


@pytest.mark.parametrize("args, code, said, presets", [
    (["teacher=nope"], 2, "teacher=nope", False),  # storing the ~200 presets took half a second of every start
    pytest.param(["-m", "distill.T=1,2", "teacher=nope"], 2, "teacher=nope", False, marks=pytest.mark.slow),
    (["experiment=nope"], 2, "all 205 choices: kdrun --list presets", True),
    pytest.param(["-m", "experiment=cifar100/resnet56-resnet20/kd,nope"], 2, "experiment=nope", True,
                 marks=pytest.mark.slow),
    pytest.param(["--help"], 0, "experiment/cifar100/resnet56-resnet20: ", True, marks=pytest.mark.slow),
])
def test_presets_are_registered_only_for_command_lines_that_can_use_them(args, code, said, presets):
    proc = probe(args)
    assert proc.returncode == code and said in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert f"presets registered: {presets}" in proc.stderr


def test_tab_completion_answers_without_torch():
    proc = probe(["-sc", "query=bash"], env={"COMP_LINE": "kdrun teacher=resnet1", "COMP_POINT": "21"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "teacher=resnet110" in proc.stdout and "teacher=resnet14" in proc.stdout
    assert "torch imported: []" in proc.stderr


@pytest.mark.slow  # a parallel sweep's process and its two workers (the refusal itself: test_sweep_workers.py)
def test_a_parallel_sweeps_own_process_imports_no_torch(tmp_path):
    """Its workers import torch and make the pair checks (kdrun/config/sweep_workers.py); the sweep's process only
    starts them, here to be told the pair is refused. A whole parallel sweep (jobs launched, waited for and
    reported without torch in this process) runs through the same probe in test_sweeps.py's parallel sweep."""
    args = ["-m", "debug=fast", "dataset=digits", "method=at", "teacher=resnet20", "student=mlp", "student.hidden=[16]",
            "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"paths.outputs={tmp_path}/out",
            f"paths.cache={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/sweep"]
    proc = probe(args, env={"KDRUN_DATA": str(tmp_path / "data")})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "method=at needs spatial feature maps" in proc.stderr
    assert "torch imported: []" in proc.stderr
    assert proc.stderr.startswith("kdrun: error: ") and not (tmp_path / "sweep").exists()


def test_version_is_kdruns_own():
    from importlib.metadata import version

    proc = probe(["--version"])
    assert proc.stdout.startswith(f"kdrun {version('kdrun')} ")


def test_python_m_kdrun_is_the_cli_entry_point(monkeypatch, capsys):
    """``python -m kdrun`` runs ``kdrun.cli.main`` (in this process: the module imported fresh, as -m runs it)."""
    import importlib
    from importlib.metadata import version

    from conftest import kdrun_globals_restored

    monkeypatch.setattr(sys, "argv", ["kdrun", "--version"])
    sys.modules.pop("kdrun.__main__", None)  # not monkeypatched: it stays imported, for module_coverage
    with kdrun_globals_restored():  # main() handles SIGTERM and SIGHUP: a process this test run forks later must not
        importlib.import_module("kdrun.__main__")
    assert capsys.readouterr().out.startswith(f"kdrun {version('kdrun')} ")
