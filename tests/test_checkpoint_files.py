"""A checkpoint path that is not what it should be: a folder, a FIFO, /dev/zero, a broken link, weights that are
not tensors, a safetensors file under another name (kdrun/io.py, kdrun/config/checks.py). Each is one line that
says what the thing is, never a hang or a traceback."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from conftest import TINY, kdrun_in_process
from test_bad_input import tiny_teacher
from kdrun.engine.checkpoint import load_weights
from kdrun.errors import KdrunError
from kdrun.io import load_checkpoint


def make(kind: str, tmp_path: Path) -> Path:
    """The thing itself, made for real."""
    if kind == "folder":
        (tmp_path / "ck").mkdir()
        return tmp_path / "ck"
    if kind == "fifo":  # open() would block until a writer comes: kdrun must never open it
        os.mkfifo(tmp_path / "ck.pt")
        return tmp_path / "ck.pt"
    if kind == "broken link":
        os.symlink(tmp_path / "gone.pt", tmp_path / "ck.pt")
        return tmp_path / "ck.pt"
    return Path("/dev/zero")  # reads never end


KINDS = {"folder": "is a folder, not a file", "fifo": "is a named pipe (FIFO), not a file",
         "/dev/zero": "is a character device, not a file", "broken link": "is a broken link"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_checkpoint_that_is_not_a_file_is_said_so_before_anything_runs(tmp_path, monkeypatch, capsys, kind):
    path = make(kind, tmp_path)
    monkeypatch.chdir(tmp_path)
    code = kdrun_in_process([*TINY, f"teacher.checkpoint={path}", "hydra.run.dir=run"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kdrun: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"teacher.checkpoint={path} {KINDS[kind]}" in lines[0] and ".safetensors" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", list(KINDS))
def test_loading_one_never_hangs(tmp_path, kind):
    """The Python API's path (no preflight): load_checkpoint itself, in a thread that must end."""
    path, outcome = make(kind, tmp_path), []

    def load():
        try:
            load_checkpoint(path, "teacher.checkpoint")
        except KdrunError as e:
            outcome.append(str(e))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # let the blocked open() of a FIFO return before failing
        with open(path, "wb"):
            pass
        pytest.fail(f"load_checkpoint blocked on {kind}")
    assert outcome and KINDS[kind] in outcome[0]


@pytest.mark.parametrize("weights, where", [({"layers.0.weight": [1.0, 2.0]}, "'layers.0.weight'"),
                                            pytest.param("one list among tensors", "'fc.weight'",
                                                         marks=pytest.mark.slow)],
                         ids=["only lists", "one list"])
def test_a_model_entry_with_a_non_tensor_value_is_one_line(tmp_path, monkeypatch, capsys, weights, where):
    if weights == "one list among tensors":
        weights = {**tiny_teacher().state_dict(), "fc.weight": [[0.0] * 32] * 10}
    path = tmp_path / "t.pt"
    torch.save({"model": weights, "epoch": 3}, path)
    monkeypatch.chdir(tmp_path)
    code = kdrun_in_process([*TINY, f"teacher.checkpoint={path}", "stages=[teacher]", "measure.enabled=false"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kdrun: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"teacher.checkpoint={path}: its 'model' entry holds a list at {where}, not a tensor" in lines[0]


def test_a_safetensors_file_under_another_name_loads_and_a_cut_one_says_what_it_is(tmp_path):
    from safetensors.torch import save_file

    teacher = tiny_teacher()
    path = tmp_path / "teacher.pt"  # safetensors content, a torch-style name
    save_file(teacher.state_dict(), str(path))
    loaded = tiny_teacher()
    torch.nn.init.zeros_(loaded.fc.weight)
    load_weights(loaded, path, "mlp")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), teacher.state_dict().values()))
    cut = tmp_path / "teacher.bin"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(KdrunError, match=f"{cut} is not a readable safetensors file") as e:
        load_weights(tiny_teacher(), cut, "mlp")
    assert "\n" not in str(e.value)
