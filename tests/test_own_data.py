"""Data from anywhere (docs/models_and_data.md): arrays in an .npz, a user's loader by import path, any torchvision
class by name, a Hugging Face ``datasets`` folder; facts read from the data; identity of user code and data in
the cache keys (an edited module or other arrays retrain the teacher)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_kdrun
from kdrun.data.arrays import as_bundle, bundle_from_arrays
from kdrun.errors import KdrunError

TINY_MODELS = ["teacher=mlp", "student=mlp", "teacher.hidden=[16]", "student.hidden=[8]", "debug=fast",
               "measure.enabled=false"]


def write_npz(path: Path, seed: int = 0, n: int = 60, shape: tuple[int, ...] = (8, 8, 3)) -> Path:
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 255, (n, *shape), dtype=np.uint8), rng.integers(0, 3, n)
    np.savez(path, x_train=x[: n // 2], y_train=y[: n // 2], x_test=x[n // 2:], y_test=y[n // 2:])
    return path


@pytest.mark.parametrize("shape, kind, channels, size", [
    ((8, 8, 3), "image", 3, (8, 8)),  # channels-last images
    ((3, 8, 8), "image", 3, (8, 8)),
    ((8, 8), "image", 1, (8, 8)),
    ((40,), "signal", 1, (40,)),
])
def test_the_facts_come_from_the_arrays(tmp_path, shape, kind, channels, size):
    from kdrun.data.npz import load_npz, npz_info

    path = write_npz(tmp_path / "a.npz", shape=shape)
    data = load_npz(str(path))
    assert (data.info.input_kind, data.info.in_channels, data.info.input_size) == (kind, channels, size)
    assert data.info.num_classes == 3 and data.info.num_train == 30 and data.train.x.shape[1:] == (channels, *size)
    assert npz_info(str(path)) == data.info  # the checks before data work see what the run will see
    assert abs(float(data.train.x.mean())) < 1e-3  # standardised with the train split's statistics


def test_signals_with_channels_need_the_input_kind(tmp_path):
    from kdrun.data.npz import load_npz

    data = load_npz(str(write_npz(tmp_path / "s.npz", shape=(2, 40))), input_kind="signal")
    assert (data.info.input_kind, data.info.in_channels, data.info.input_size) == ("signal", 2, (40,))


@pytest.mark.parametrize("arrays, said", [
    ({"x_train": np.zeros((4, 8)), "y_train": np.zeros(4, int)}, "has no x_test, y_test; it needs"),
    ({"x_train": np.zeros((4, 8)), "y_train": np.zeros(4), "x_test": np.zeros((2, 8)), "y_test": np.zeros(2, int)},
     "y_train must be a 1-D array of integer class labels"),
    ({"x_train": np.zeros((4, 8)), "y_train": np.zeros(3, int), "x_test": np.zeros((2, 8)), "y_test": np.zeros(2, int)},
     "x_train has 4 samples, y_train 3"),
])
def test_bad_arrays_are_one_line(arrays, said):
    with pytest.raises(KdrunError, match=said) as e:
        bundle_from_arrays("mine", arrays)
    assert "\n" not in str(e.value)


def test_an_npz_with_python_objects_is_refused(tmp_path):
    from kdrun.data.npz import load_npz

    np.savez(tmp_path / "o.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, int),
             x_test=np.zeros((1, 4)), y_test=np.zeros(1, int))
    with pytest.raises(KdrunError, match="holds Python objects"):
        load_npz(str(tmp_path / "o.npz"))


def test_a_pair_of_datasets_is_read_through_its_items():
    from torch.utils.data import TensorDataset

    train = TensorDataset(torch.randn(10, 1, 6, 6), torch.arange(10) % 5)
    test = TensorDataset(torch.randn(4, 1, 6, 6), torch.arange(4))
    data = as_bundle((train, test), "mydata.load", "dataset._target_=mydata.load")
    assert (data.info.input_kind, data.info.in_channels, data.info.input_size, data.info.num_classes) == \
        ("image", 1, (6, 6), 5)
    assert data.fingerprint.startswith("datasets:10:4:")
    with pytest.raises(KdrunError, match="returned a str; a loader returns a dict of x_train"):
        as_bundle("nope", "x", "dataset._target_=mydata.load")


def test_any_torchvision_class_by_name_reads_mnist_files(tmp_path):
    from test_data import write_mnist

    from kdrun.data.torchvision_any import load_torchvision

    write_mnist(tmp_path, n_train=12, n_test=6)
    data = load_torchvision("MNIST", str(tmp_path))
    assert (data.info.name, data.info.in_channels, data.info.input_size, data.info.num_train) == \
        ("MNIST", 1, (28, 28), 12)
    with pytest.raises(KdrunError, match="dataset.name=SVHM is not valid .*did you mean SVHN"):
        load_torchvision("SVHM", str(tmp_path))


def test_a_hugging_face_datasets_folder_loads_offline(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from kdrun.data.hf_datasets import load_hf

    def split(n):
        return datasets.Dataset.from_dict({"img": [Image.new("RGB", (8, 8), (i * 20, 0, 0)) for i in range(n)],
                                           "label": [i % 2 for i in range(n)]})

    datasets.DatasetDict({"train": split(6), "test": split(4)}).save_to_disk(str(tmp_path / "pets"))
    data = load_hf(str(tmp_path / "pets"))
    assert (data.info.input_kind, data.info.in_channels, data.info.input_size, data.info.num_classes) == \
        ("image", 3, (8, 8), 2)
    with pytest.raises(KdrunError, match="no split 'validation'; splits: train, test"):
        load_hf(str(tmp_path / "pets"), test_split="validation")


@pytest.mark.slow
def test_an_npz_dataset_runs_and_other_arrays_retrain_the_teacher(tmp_path):
    path = write_npz(tmp_path / "arrays.npz")
    args = ["dataset=npz", "dataset.path=arrays.npz", *TINY_MODELS, "stages=[teacher,baseline,distilled]"]
    first = run_kdrun([*args, "hydra.run.dir=r1"], tmp_path)
    assert "preparing dataset=npz (arrays.npz)" in first.stdout + first.stderr
    assert json.loads((tmp_path / "r1" / "results.json").read_text())["dataset"] == "npz:arrays"
    again = run_kdrun([*args, "stages=[teacher]", "hydra.run.dir=r2"], tmp_path)
    assert "reusing cached" in again.stdout + again.stderr
    write_npz(path, seed=1)
    other = run_kdrun([*args, "stages=[teacher]", "hydra.run.dir=r3"], tmp_path)
    assert "reusing cached" not in other.stdout + other.stderr


LOADER = textwrap.dedent("""
    import numpy as np

    def load(n=60, length=16):
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, length)).astype("float32") + y[:, None]
        return {"x_train": x[: n // 2], "y_train": y[: n // 2], "x_test": x[n // 2:], "y_test": y[n // 2:]}
""")


def test_a_users_loader_by_import_path_runs_and_its_mismatch_with_a_model_is_one_line(tmp_path):
    (tmp_path / "mydata_own.py").write_text(LOADER)
    args = ["dataset=custom", "dataset._target_=mydata_own.load", "dataset.length=12", *TINY_MODELS,
            "stages=[teacher]", "hydra.run.dir=r1"]
    proc = run_kdrun(args, tmp_path)
    assert "preparing dataset=custom (mydata_own.load)" in proc.stdout + proc.stderr
    bad_args = [a for a in args if not a.startswith(("teacher", "hydra"))] + ["teacher=resnet8", "hydra.run.dir=r2"]
    bad = run_kdrun(bad_args, tmp_path, check=False)
    last = bad.stderr.strip().splitlines()[-1]  # read before training: the data is the user's, known once loaded
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert last.startswith("kdrun: error: teacher=resnet8 needs image input but dataset mydata_own.load gives signals")
    assert not (tmp_path / "r2" / "checkpoints").exists()


NETS_V1 = textwrap.dedent("""
    from torch import nn

    def make(num_classes, in_channels, input_size):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size[0] * input_size[1], num_classes))
""")


@pytest.mark.slow
def test_editing_the_users_module_retrains_the_teacher(tmp_path):
    (tmp_path / "stale_nets.py").write_text(NETS_V1)
    args = ["dataset=digits", "teacher=custom", "teacher._target_=stale_nets.make", "student=mlp",
            "student.hidden=[8]", "debug=fast", "measure.enabled=false", "stages=[teacher]"]
    run_kdrun([*args, "hydra.run.dir=r1"], tmp_path)
    same = run_kdrun([*args, "hydra.run.dir=r2"], tmp_path)
    assert "reusing cached" in same.stdout + same.stderr
    (tmp_path / "stale_nets.py").write_text(NETS_V1.replace("nn.Flatten(),", "nn.Flatten(), nn.Dropout(0.1),"))
    sys.modules.pop("stale_nets", None)  # in-process runs share sys.modules; a new kdrun process imports afresh
    edited = run_kdrun([*args, "hydra.run.dir=r3"], tmp_path)
    assert "reusing cached" not in edited.stdout + edited.stderr
    assert "teacher epoch 1/1" in edited.stdout + edited.stderr
