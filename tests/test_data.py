"""Dataset builders and loaders, exercised on small files written in the real on-disk formats."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdrun.data.base import TensorData
from kdrun.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, load_cifar10, load_cifar100
from kdrun.data.imagefolder import load_imagefolder
from kdrun.data.loaders import make_loader
from kdrun.data.synthetic import load_synthetic
from kdrun.data.torchvision_sets import MNIST_MEAN, MNIST_STD, load_fashion_mnist, load_mnist
from kdrun.data.unlabeled import UnlabeledFolder
from kdrun.errors import KdrunError

# ---------------------------------------------------------------- writers of the real formats


class Py2Str(bytes):
    """A Python 2 ``str``: the official CIFAR pickles were written by Python 2, so their keys and
    strings load as ``str`` with encoding='latin1' (torchvision) and as ``bytes`` with encoding='bytes'."""


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj: Py2Str) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def py2(value):
    if isinstance(value, str):
        return Py2Str(value.encode("latin1"))
    if isinstance(value, dict):
        return {py2(k): py2(v) for k, v in value.items()}
    if isinstance(value, list):
        return [py2(v) for v in value]
    return value


def write_py2_pickle(path: Path, obj: dict) -> None:
    with path.open("wb") as f:
        Py2Pickler(f, protocol=2).dump(py2(obj))


def cifar_images(n: int, seed: int) -> np.ndarray:
    """n images as CIFAR stores them: uint8 rows of 3072 = 1024 R, then 1024 G, then 1024 B values."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    labels = {}
    for b in range(1, 6):
        y = [(b + i) % 10 for i in range(per_batch)]
        labels[f"data_batch_{b}"] = y
        entry = {"batch_label": f"training batch {b} of 5", "labels": y, "data": cifar_images(per_batch, b),
                 "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]}  # fmt: skip
        write_py2_pickle(folder / f"data_batch_{b}", entry)
    test_data = cifar_images(n_test, 99)
    test_data[0] = np.repeat([10, 120, 250], 1024)  # a constant-colour image: its normalized values are known
    labels["test_batch"] = [i % 10 for i in range(n_test)]
    write_py2_pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels["test_batch"],
                                             "data": test_data, "filenames": ["t.png"] * n_test})  # fmt: skip
    write_py2_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                               "num_cases_per_batch": per_batch, "num_vis": 3072})  # fmt: skip
    return labels


def write_cifar100(root: Path, n_train: int = 10, n_test: int = 5) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    labels = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        fine = [(7 * i + seed) % 100 for i in range(n)]
        labels[split] = fine
        write_py2_pickle(folder / split, {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": split,
                                          "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
                                          "data": cifar_images(n, seed)})  # fmt: skip
    write_py2_pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                                       "coarse_label_names": [f"coarse{i}" for i in range(20)]})  # fmt: skip
    return labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as in the MNIST distribution: 0, 0, type 0x08 (uint8), ndim, big-endian int32 dims, data."""
    path.write_bytes(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())  # fmt: skip


def write_mnist(root: Path, folder_name: str = "MNIST", n_train: int = 12, n_test: int = 7) -> dict:
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0] = 51  # constant image: normalized value known
        labels[prefix] = (np.arange(n) * 3) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[prefix])
    return labels


def write_png_tree(root: Path, splits: dict[str, list[str]], per_class: int = 2, size=(10, 12)) -> None:
    rng = np.random.default_rng(0)
    for split, classes in splits.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")


def assert_one_line_naming(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


# ---------------------------------------------------------------- CIFAR


def test_fixture_matches_documented_cifar_format(tmp_path):
    write_cifar10(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        entry = pickle.load(f, encoding="bytes")  # how the CIFAR web page reads the files
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (4, 3072)
    assert isinstance(entry[b"labels"], list)


def test_cifar10_loads_real_format(tmp_path):
    labels = write_cifar10(tmp_path)
    bundle = load_cifar10(str(tmp_path), verify=False)  # made here: not the published files
    expected_train = sum((labels[f"data_batch_{b}"] for b in range(1, 6)), [])
    assert bundle.info.num_classes == 10 and bundle.info.input_size == (32, 32) and bundle.info.in_channels == 3
    assert (bundle.info.num_train, bundle.info.num_test) == (20, 6)
    assert bundle.train_targets.tolist() == expected_train and bundle.train_targets.dtype == torch.long
    x, y = bundle.test[0]
    assert x.shape == (3, 32, 32) and y == labels["test_batch"][0]
    expected = (torch.tensor([10, 120, 250]) / 255 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    torch.testing.assert_close(x.mean(dim=(1, 2)), expected.float())
    assert torch.allclose(x.std(dim=(1, 2)), torch.zeros(3), atol=1e-6)


def test_cifar100_loads_fine_labels_and_augments_train_only(tmp_path):
    labels = write_cifar100(tmp_path)
    bundle = load_cifar100(str(tmp_path), verify=False)
    assert bundle.info.num_classes == 100 and bundle.info.name == "cifar100"
    assert bundle.train_targets.tolist() == labels["train"]
    assert [bundle.test[i][1] for i in range(5)] == labels["test"]

    def draws(ds):
        out = []
        for s in range(8):
            torch.manual_seed(s)
            out.append(ds[0][0])
        return out

    train_draws, test_draws = draws(bundle.train), draws(bundle.test)
    assert all(t.shape == (3, 32, 32) for t in train_draws)
    assert any(not torch.equal(train_draws[0], t) for t in train_draws[1:]), "train is not augmented"
    assert all(torch.equal(test_draws[0], t) for t in test_draws[1:]), "test is augmented"
    raw = torch.tensor(cifar_images(5, 2)[0], dtype=torch.float32).view(3, 32, 32) / 255  # stored test image 0
    expected = (raw - torch.tensor(CIFAR100_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR100_STD).view(3, 1, 1)
    torch.testing.assert_close(test_draws[0], expected)


@pytest.mark.parametrize("loader, folder", [(load_cifar10, "cifar-10-batches-py"), (load_cifar100, "cifar-100-python")])
def test_cifar_missing_is_one_line(tmp_path, loader, folder):
    with pytest.raises(KdrunError) as e:
        loader(str(tmp_path))
    assert_one_line_naming(e, f"{tmp_path / folder}/ not found", "dataset.download=false", "dataset.root",
                           "dataset=digits")


def test_cifar_missing_file_is_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(KdrunError) as e:
        load_cifar10(str(tmp_path))
    assert_one_line_naming(e, "lacks data_batch_3")


def test_cifar_corrupted_file_is_one_line(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(KdrunError) as e:
        load_cifar100(str(tmp_path), verify=False)
    assert_one_line_naming(e, "corrupted", "cifar-100-python")


def test_download_skipped_when_files_present(tmp_path, monkeypatch):
    from kdrun.data import download

    write_cifar10(tmp_path)
    monkeypatch.setattr(download, "_download", lambda *a: pytest.fail("tried to download"))
    assert load_cifar10(str(tmp_path), download=True, verify=False).info.num_train == 20


# ---------------------------------------------------------------- MNIST, Fashion-MNIST


def test_mnist_loads_raw_idx(tmp_path):
    labels = write_mnist(tmp_path)
    bundle = load_mnist(str(tmp_path))
    assert bundle.info.in_channels == 1 and bundle.info.input_size == (28, 28) and bundle.info.num_classes == 10
    assert (bundle.info.num_train, bundle.info.num_test) == (12, 7)
    assert bundle.train_targets.tolist() == labels["train"].tolist()
    x, y = bundle.train[0]
    assert x.shape == (1, 28, 28) and y == labels["train"][0]
    torch.testing.assert_close(x, torch.full((1, 28, 28), (51 / 255 - MNIST_MEAN[0]) / MNIST_STD[0]))
    assert torch.equal(bundle.train[1][0], bundle.train[1][0])  # no augmentation
    assert [bundle.test[i][1] for i in range(7)] == labels["t10k"].tolist()


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, "FashionMNIST")
    bundle = load_fashion_mnist(str(tmp_path))
    assert bundle.info.name == "fashion_mnist" and bundle.info.num_train == 12
    with pytest.raises(KdrunError) as e:
        load_mnist(str(tmp_path))
    assert_one_line_naming(e, str(tmp_path / "MNIST" / "raw"), "train-images-idx3-ubyte")


# ---------------------------------------------------------------- ImageFolder


def test_imagefolder_loads_and_transforms(tmp_path):
    write_png_tree(tmp_path, {"train": ["cat", "dog"], "val": ["cat", "dog"]}, per_class=3)
    bundle = load_imagefolder(str(tmp_path), image_size=8)
    assert bundle.info.num_classes == 2 and bundle.info.input_size == (8, 8)
    assert (bundle.info.num_train, bundle.info.num_test) == (6, 6)
    assert bundle.train_targets.tolist() == [0, 0, 0, 1, 1, 1]
    torch.manual_seed(0)
    x, y = bundle.train[4]
    assert x.shape == (3, 8, 8) and y == 1
    assert bundle.test[0][0].shape == (3, 8, 8)
    assert torch.equal(bundle.test[0][0], bundle.test[0][0])


def test_imagefolder_errors_are_one_line(tmp_path):
    with pytest.raises(KdrunError) as e:
        load_imagefolder(str(tmp_path / "nowhere"))
    assert_one_line_naming(e, "dataset.root", "nowhere")

    write_png_tree(tmp_path, {"train": ["cat", "dog"]})
    with pytest.raises(KdrunError) as e:
        load_imagefolder(str(tmp_path))
    assert_one_line_naming(e, "dataset.val_dir=val", f"{tmp_path / 'val'}/ not found")

    write_png_tree(tmp_path, {"val": ["cat", "owl"]})
    with pytest.raises(KdrunError) as e:
        load_imagefolder(str(tmp_path))
    assert_one_line_naming(e, "only in train: dog", "only in val: owl")


# ---------------------------------------------------------------- synthetic, unlabeled


def test_synthetic_is_deterministic_and_learnable():
    a, b = load_synthetic(seed=3), load_synthetic(seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.shape == (256, 3, 8, 8) and a.info.num_classes == 4
    assert torch.bincount(a.train_targets).tolist() == [64] * 4

    torch.manual_seed(0)
    model = torch.nn.Linear(3 * 8 * 8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(a.train.x.flatten(1)), a.train.y).backward()
        opt.step()
    accuracy = (model(a.test.x.flatten(1)).argmax(1) == a.test.y).float().mean()
    assert accuracy > 0.9


def test_unlabeled_folder_recurses(tmp_path):
    write_png_tree(tmp_path, {"a": ["x"], "b/c": ["y"]}, per_class=2)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = UnlabeledFolder(str(tmp_path))
    assert len(ds) == 4
    x, y = ds[0]
    assert x.shape == (3, 10, 12) and y == -1
    with pytest.raises(KdrunError) as e:
        UnlabeledFolder(str(tmp_path / "a" / "nothing"))
    assert_one_line_naming(e, "nothing")


# ---------------------------------------------------------------- loaders


def tensor_data(n: int = 23) -> TensorData:
    return TensorData(torch.arange(n, dtype=torch.float32).view(n, 1) * 10, torch.arange(n))


def epoch_batches(loader, epoch: int) -> list[tuple[torch.Tensor, ...]]:
    loader.set_epoch(epoch)
    return list(loader)


@pytest.mark.parametrize("in_memory", [True, False])
def test_loader_order_is_a_function_of_seed_and_epoch(in_memory):
    data = tensor_data()
    dataset = data if in_memory else torch.utils.data.Subset(data, range(len(data)))  # Subset: DataLoader path

    def order(seed, epoch):
        loader = make_loader(dataset, 5, shuffle=True, seed_for_epoch=seed, num_workers=0, device="cpu")
        return torch.cat([y for _, y in epoch_batches(loader, epoch)]).tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert sorted(order(1, 3)) == list(range(23))
    unshuffled = make_loader(dataset, 5, shuffle=False, seed_for_epoch=0, num_workers=0, device="cpu")
    assert torch.cat([y for _, y in unshuffled]).tolist() == list(range(23))


@pytest.mark.parametrize("in_memory", [True, False])
def test_loader_index_len_and_limits(in_memory):
    data = tensor_data()
    dataset = data if in_memory else torch.utils.data.Subset(data, range(len(data)))
    loader = make_loader(dataset, 5, True, 0, 0, "cpu", with_index=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 5 and [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    for x, y, index in batches:
        assert torch.equal(y, index) and torch.equal(x[:, 0], index.float() * 10)

    assert len(make_loader(dataset, 5, True, 0, 0, "cpu", drop_last=True)) == 4
    limited = make_loader(dataset, 5, True, 0, 0, "cpu", max_batches=2)
    assert len(limited) == len(list(limited)) == 2

    shards = [make_loader(dataset, 4, True, 0, 0, "cpu", rank=r, world_size=2) for r in range(2)]
    seen = [torch.cat([y for _, y in shard]) for shard in shards]
    assert len(shards[0]) == len(shards[1]) == 3 and len(seen[0]) == len(seen[1]) == 12
    assert set(torch.cat(seen).tolist()) == set(range(23))


def test_loader_augmentation_resumes_exactly_with_persistent_workers(tmp_path):
    """Epoch 1 of an uninterrupted run (workers kept from epoch 0) equals epoch 1 of a resumed run."""
    write_cifar10(tmp_path)
    train = load_cifar10(str(tmp_path), verify=False).train
    run = make_loader(train, 8, True, seed_for_epoch=5, num_workers=2, device="cpu", with_index=True)
    epoch_batches(run, 0)
    uninterrupted = epoch_batches(run, 1)
    resumed = epoch_batches(make_loader(train, 8, True, seed_for_epoch=5, num_workers=0, device="cpu",
                                        with_index=True), 1)  # fmt: skip
    assert len(uninterrupted) == len(resumed) == 3
    for a, b in zip(uninterrupted, resumed):
        for ta, tb in zip(a, b):
            assert torch.equal(ta, tb)
    assert torch.equal(uninterrupted[0][1], train_targets_at(train, uninterrupted[0][2]))

    state = torch.get_rng_state()
    epoch_batches(make_loader(train, 8, True, 5, 0, "cpu"), 0)
    assert torch.equal(state, torch.get_rng_state()), "loading consumed the global RNG"


def train_targets_at(dataset, index: torch.Tensor) -> torch.Tensor:
    return torch.tensor([dataset.targets[i] for i in index.tolist()])


def test_digits_are_scikit_learns_read_without_importing_it(monkeypatch):
    import builtins
    import importlib.util

    from sklearn.datasets import load_digits as sk_load_digits

    from kdrun.data.digits import digits_arrays

    raw = sk_load_digits()
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        assert not name.startswith("sklearn"), "digits_arrays imported scikit-learn"
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as m:  # its import was half of a digits run's start
        m.setattr(builtins, "__import__", no_sklearn)
        images, labels = digits_arrays()
    assert np.array_equal(images, raw.images) and np.array_equal(labels, raw.target)
    # where the bundled file is not on disk, load_digits itself
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    images, labels = digits_arrays()
    assert np.array_equal(images, raw.images) and np.array_equal(labels, raw.target)
