"""Every ``kdrun`` command in README.md runs as written.

The commands are extracted from README.md (indented code lines and inline code). Each is checked the way
``kdrun`` checks it before Hydra creates anything (the headline rule, composition, every config and
compatibility check), with ``debug=fast``; placeholders (``...``, example paths) are replaced by real
temporary ones. The ``slow`` part runs the cheap ones for real: the commands that print something and
stop (``--help``, ``--cfg job``, ``--list``), and every single run on embedded data (debug=fast).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO, run_kdrun
from kdrun.cli import checked_arguments
from kdrun.config_store import register_configs
from kdrun.errors import KdrunError
from kdrun.preflight import passes_through

register_configs()
README = REPO / "README.md"
# Commands README shows failing on purpose, with the start of the one line they must print.
EXPECTED_ERRORS = {"kdrun teacher=resnet110 student=resnet20 dataset=mnist1d":
                   "teacher=resnet110 needs image input but dataset mnist1d gives signals"}
EMBEDDED = ("mnist1d", "digits", "synthetic")


def readme_commands() -> list[str]:
    """``kdrun ...`` commands of README.md, comments dropped, in order, once each."""
    text = README.read_text()
    found = [ln.strip() for ln in text.splitlines() if re.match(r"    (\$ )?kdrun( |$)", ln)]
    found += [" ".join(m.split()) for m in re.findall(r"`(kdrun(?: [^`]*)?)`", text)]
    commands = [" ".join(shlex.split(c.removeprefix("$ "), comments=True)) for c in found]
    # a command's first argument is an override, a flag or "..." (not printed output such as "kdrun step: ...")
    commands = [c for c in commands if c == "kdrun" or re.match(r"kdrun (-|\.\.\.|\S*=)", c)]
    return list(dict.fromkeys(commands))


COMMANDS = readme_commands()


def test_readme_has_the_commands_this_test_promises():
    assert len(COMMANDS) > 30
    assert "kdrun method=rkd teacher=resnet110 student=resnet20" in COMMANDS
    assert "kdrun --list" in COMMANDS and "kdrun" in COMMANDS


def _placeholders(tmp: Path) -> dict[str, str]:
    """README's example paths -> real ones: an image folder with two classes, a checkpoint file."""
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp / "mydata" / split / c).mkdir(parents=True, exist_ok=True)
    (tmp / "ckpt_epoch_240.pth").write_bytes(b"")
    return {"/data/mydata": str(tmp / "mydata"), "/path/ckpt_epoch_240.pth": str(tmp / "ckpt_epoch_240.pth")}


def arguments(command: str, tmp: Path) -> list[str]:
    args = [a for a in shlex.split(command)[1:] if a != "..."]
    for old, new in _placeholders(tmp).items():
        args = [a.replace(old, new) for a in args]
    return args


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_passes_every_check(command, tmp_path, monkeypatch):
    args = arguments(command, tmp_path)
    if passes_through(args) or args[:1] == ["--list"]:
        pytest.skip("prints and stops: run for real in test_readme_commands_run")
    monkeypatch.chdir(tmp_path)
    if command in EXPECTED_ERRORS:
        with pytest.raises(KdrunError, match=re.escape(EXPECTED_ERRORS[command])):
            checked_arguments([*args, "debug=fast"])
        return
    args, cfg = checked_arguments([*args, "debug=fast"])
    assert cfg.trainer.max_train_batches is not None  # debug=fast composed with it
    if "dataset=" not in command and "teacher=resnet110 student=resnet20" in command:
        assert "dataset=cifar100" in args  # the headline rule


def _cheap(command: str, tmp: Path) -> bool:
    """Prints and stops, or a single run on embedded data."""
    args = arguments(command, tmp)
    if passes_through(args) or args[:1] == ["--list"]:
        return True
    if command in EXPECTED_ERRORS or "-m" in args or any(a.startswith(("device.nproc", "hydra/")) for a in args):
        return False
    _, cfg = checked_arguments([*args, "debug=fast"])
    return cfg.dataset._target_.rsplit("_", 1)[-1] in EMBEDDED and cfg.device.get("nproc", 1) == 1


@pytest.mark.slow
def test_readme_commands_run(tmp_path, monkeypatch):
    """The cheap ones for real, in one shared data cache (MNIST-1D generated once): exit 0, no traceback."""
    monkeypatch.chdir(tmp_path)
    cheap = [c for c in COMMANDS if _cheap(c, tmp_path)]
    assert len(cheap) >= 15, cheap
    env = {"KDRUN_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    for i, command in enumerate(cheap):
        args = arguments(command, tmp_path)
        if not (passes_through(args) or args[:1] == ["--list"]):
            args += ["debug=fast", "measure.enabled=false", f"hydra.run.dir=runs/{i}"]
        proc = run_kdrun(args, tmp_path, check=False, env=env, timeout=900)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{command}\n{proc.stderr[-3000:]}"
