"""The command line as an attacker or a new user types it: a pickle handed to Hydra, a config folder of
one's own, a group file with a !!python tag, values Hydra's grammar reads only inside quotes, ``~``,
and folders that are not what they should be (kdrun/config/hydra_flags.py, override_values.py, preflight.py)."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import pytest

from conftest import TINY, kdrun_in_process
from in_process import skip_run_plots
from test_bad_input import tiny_teacher


class Planted:
    """Unpickling this creates a marker file: proof that code from the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def here(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(tmp_path / "data"))
    return tmp_path


def kdrun(args: list[str], capsys) -> tuple[int, str]:
    code = kdrun_in_process(args)
    return code, capsys.readouterr().err


def one_line(err: str, *words: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("kdrun: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("flags", [["--experimental-rerun", "{p}"], ["--experimental-rerun={p}"], ["--exp", "{p}"],
                                   ["--e={p}", "-m", "seed=1,2"]], ids=["flag", "flag=", "abbreviated", "sweep"])
def test_experimental_rerun_is_refused_and_its_pickle_never_runs(here, capsys, flags):
    crafted, marker = here / "x" / "config.pickle", here / "PWNED"
    crafted.parent.mkdir()
    crafted.write_bytes(pickle.dumps(Planted(marker)))
    code, err = kdrun([f.format(p=crafted) for f in flags], capsys)
    assert code == 2
    one_line(err, "--experimental-rerun is refused", "pickle")
    assert not marker.exists() and sorted(os.listdir(here)) == ["x"]  # nothing ran, nothing was made
    pickle.loads(crafted.read_bytes())  # the file is a real exploit: unpickled, it runs its code
    assert marker.exists()


@pytest.mark.parametrize("flags, flag", [(["-cn", "mine"], "--config-name"), (["--config-name=mine", "-m", "seed=1,2"], "--config-name"),
                                         (["-cp", "{d}"], "--config-path"), (["--config-p", "{d}"], "--config-path")],
                         ids=["cn", "cn-sweep", "cp", "cp-abbreviated"])
def test_another_primary_config_is_refused_before_anything_runs(here, capsys, flags, flag):
    """A primary config of the user's would replace kdrun's defaults list, so no check would see what runs
    (``-cp DIR trainer.lr=fast`` failed inside SGD): refused in one line naming the way in that is checked."""
    folder = here / "mine"
    folder.mkdir()
    (folder / "mine.yaml").write_text("trainer:\n  lr: fast\n")
    code, err = kdrun([*(f.format(d=folder) for f in flags), "trainer.lr=fast", *TINY], capsys)
    assert code == 2
    one_line(err, f"{flag} is refused", "--config-dir")
    assert sorted(os.listdir(here)) == ["mine"]


def test_a_whole_experiment_comes_in_through_config_dir(here):
    """The way in that the --config-name refusal names: DIR/experiment/NAME.yaml, checked like kdrun's own."""
    from conftest import compose_config

    (here / "mine" / "experiment").mkdir(parents=True)
    (here / "mine" / "experiment" / "quick.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: digits\n  - _self_\ndistill:\n  T: 2\n")
    cfg = compose_config([f"hydra.searchpath=[file://{here / 'mine'}]", "experiment=quick"])
    assert cfg.dataset._target_ == compose_config(["dataset=digits"]).dataset._target_ and cfg.distill.T == 2


def user_config_dir(root: Path) -> Path:
    """A user's config folder: a method of their own, a file with a !!python tag, a file that is not YAML."""
    (root / "method").mkdir(parents=True)
    (root / "method" / "mykd.yaml").write_text("defaults:\n  - kd\n  - _self_\nname: mykd\n")
    (root / "method" / "evil.yaml").write_text(f'name: x\n_target_: !!python/object/apply:os.system '
                                               f'["touch {root.parent / "PWNED"}"]\n')
    (root / "method" / "broken.yaml").write_text("name: [x\n")
    return root


@pytest.mark.parametrize("args, words", [
    (["-cd", "{d}", "trainer.lr=fast"], ["trainer.lr=fast"]),
    (["--config-dir={d}", "method=nope"], ["method=nope", "mykd"]),  # the user's options are listed
    (["--config-d", "{d}", "method=evil"], ["evil.yaml, line 2", "python/object/apply:os.system", "plain YAML"]),
    (["-cd", "{d}", "method=broken"], ["broken.yaml, line 2", "not valid YAML"]),
    (["-cd", "{d}/nowhere", "debug=fast"], ["--config-dir=", "no such folder"]),
    (["hydra.searchpath=[file://{d}]", "method=nope"], ["method=nope", "mykd"]),  # Hydra's other way in
    (["hydra.searchpath=[file://{d}]", "method=evil"], ["evil.yaml, line 2", "plain YAML"]),
], ids=["checked", "options", "python-tag", "not-yaml", "missing", "searchpath", "searchpath-python-tag"])
def test_a_config_dir_gets_every_check(here, capsys, args, words):
    folder = user_config_dir(here / "mine")
    code, err = kdrun([*(a.format(d=folder) for a in args), *TINY], capsys)  # as the issue typed it: flags first
    assert code == 2
    one_line(err, *words)
    assert not (here / "outputs").exists() and not (here / "PWNED").exists()


@pytest.mark.slow  # a whole run (the checks themselves are tested above, quickly)
def test_a_method_from_a_config_dir_runs(here, capsys, monkeypatch):
    skip_run_plots(monkeypatch)
    folder = user_config_dir(here / "mine")
    # overrides on both sides of the flag
    code, err = kdrun([*TINY, "-cd", str(folder), "method=mykd", "stages=[teacher,distilled]",
                       "measure.enabled=false", "hydra.run.dir=run"], capsys)
    assert code == 0, err
    assert "method:\n  name: mykd\n" in (here / "run" / ".hydra" / "config.yaml").read_text()


@pytest.mark.parametrize("value, char", [("/data/ü", "ü"), ("~/data", "~")])
def test_a_value_that_needs_quotes_gets_the_quoted_form(here, capsys, value, char):
    code, err = kdrun([*TINY, f"dataset.root={value}"], capsys)
    assert code == 2
    one_line(err, f"'{char}' is read only inside quotes", f"\"dataset.root='{value}'\"")


@pytest.mark.slow  # a whole run (the checks themselves are tested above, quickly)
def test_tilde_is_expanded_in_a_checkpoint_and_the_output_folder(here, capsys, monkeypatch):
    import torch

    home = here / "home"
    (home / "ck").mkdir(parents=True)
    torch.save({"model": tiny_teacher().state_dict()}, home / "ck" / "t.pt")
    monkeypatch.setenv("HOME", str(home))
    code, err = kdrun([*TINY, "stages=[teacher]", "measure.enabled=false", "teacher.checkpoint='~/ck/t.pt'",
                       "paths.outputs='~/kd'", "name=tilde"], capsys)
    assert code == 0, err
    assert f"teacher: mlp loaded from {home / 'ck' / 't.pt'}" in err
    assert (home / "kd" / "runs" / "tilde" / "results.json").is_file() and not (here / "~").exists()


@pytest.mark.parametrize("run_dir, words", [("afile", ["hydra.run.dir=afile is a file, not a folder"]),
                                            ("afile/sub", ["cannot be made: afile is a file"])])
def test_a_file_as_the_run_folder_is_said_so(here, capsys, run_dir, words):
    (here / "afile").write_text("mine")
    code, err = kdrun([*TINY, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2
    one_line(err, *words)
    assert (here / "afile").read_text() == "mine"


@pytest.mark.slow  # a whole run (the checks themselves are tested above, quickly)
def test_a_read_only_home_names_the_data_folder_setting(here, capsys, monkeypatch):
    """A read-only tmpfs as HOME (the data cache ~/.cache/kdrun in it), where this machine lets the test mount one."""
    home = here / "home"
    home.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(home)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.delenv("KDRUN_DATA")
        monkeypatch.delenv("XDG_CACHE_HOME")
        code, err = kdrun([*TINY, "dataset=mnist1d", "stages=[teacher]", "measure.enabled=false"], capsys)
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)
    assert code == 2
    line = one_line(err, "read-only", str(home / ".cache" / "kdrun"), "KDRUN_DATA", "paths.data")
    assert "paths.outputs" not in line
