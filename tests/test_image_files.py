"""Image folders as users have them: real symlink loops, links out of the tree, truncated files
(kdrun/data/image_files.py, kdrun/data/imagefolder.py)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pytest
from torchvision.datasets import ImageFolder

from conftest import kdrun_in_process
from test_data import write_png_tree
from kdrun.data.imagefolder import load_imagefolder
from kdrun.data.unlabeled import UnlabeledFolder
from kdrun.errors import KdrunError


def counts(bundle) -> tuple[Counter, Counter]:
    return Counter(bundle.train.targets), Counter(bundle.test.targets)


def test_symlink_loops_are_cut_and_named_in_the_log(tmp_path, caplog):
    write_png_tree(tmp_path, {"train": ["a", "b"], "val": ["a", "b"]}, per_class=3, size=(8, 8))
    os.symlink("../a", tmp_path / "train/a/loop")  # the two loops, made for real
    os.symlink(".", tmp_path / "val/b/self")
    os.symlink("../..", tmp_path / "train/b/up")  # to the dataset root: it holds the split itself
    with caplog.at_level(logging.INFO, logger="kdrun"):
        bundle = load_imagefolder(str(tmp_path), image_size=8)
    assert counts(bundle) == (Counter({0: 3, 1: 3}), Counter({0: 3, 1: 3}))  # each image once
    assert (bundle.info.num_train, bundle.info.num_test) == (6, 6)
    messages = [r.getMessage() for r in caplog.records]
    assert "data: train: 6 images in 2 classes (3 per class)" in messages
    assert "data: val: 6 images in 2 classes (3 per class)" in messages
    [train_links] = [m for m in messages if m.startswith("data: train: 2 folder link(s) not followed")]
    assert str(tmp_path / "train/a/loop") in train_links and str(tmp_path / "train/b/up") in train_links
    assert any(m.startswith("data: val: 1 folder link(s)") and "val/b/self" in m for m in messages)


def test_a_link_to_another_folder_is_followed_once_and_the_order_is_torchvisions(tmp_path, caplog):
    write_png_tree(tmp_path / "set", {"train": ["a", "b"], "val": ["a", "b"]}, per_class=2, size=(8, 8))
    write_png_tree(tmp_path / "more", {"x": ["sub"]}, per_class=3, size=(8, 8))
    os.symlink(tmp_path / "more/x", tmp_path / "set/train/a/extra")  # a folder kept elsewhere: followed
    os.symlink(tmp_path / "more/x", tmp_path / "set/train/a/again")  # the same folder twice: read once
    os.symlink(tmp_path / "set/train/a", tmp_path / "set/train/b/other")  # another class's folder: not followed
    (tmp_path / "set/train/b/nested").mkdir()
    (tmp_path / "set/train/b/0.png").rename(tmp_path / "set/train/b/nested/0.png")
    with caplog.at_level(logging.INFO, logger="kdrun"):
        bundle = load_imagefolder(str(tmp_path / "set"), image_size=8)
    assert counts(bundle)[0] == Counter({0: 5, 1: 2})
    assert "data: train: 7 images in 2 classes (fewest: b, 2; most: a, 5)" in caplog.text
    os.unlink(tmp_path / "set/train/a/again")  # without the duplicate links: exactly torchvision's samples
    os.unlink(tmp_path / "set/train/b/other")
    bundle = load_imagefolder(str(tmp_path / "set"), image_size=8)
    assert bundle.train.samples == ImageFolder(str(tmp_path / "set/train")).samples


def test_a_class_folder_linked_to_another_is_refused(tmp_path):
    write_png_tree(tmp_path, {"train": ["a"], "val": ["a", "b"]}, per_class=2, size=(8, 8))
    os.symlink("a", tmp_path / "train/b")  # class b's folder is class a's: its images would get both labels
    with pytest.raises(KdrunError, match="Found no valid file for the classes b") as e:
        load_imagefolder(str(tmp_path), image_size=8)
    assert "\n" not in str(e.value)


def truncated_png(tmp_path: Path) -> Path:
    write_png_tree(tmp_path / "set", {"train": ["a", "b"], "val": ["a", "b"]}, per_class=2, size=(8, 8))
    write_png_tree(tmp_path / "big", {"x": ["y"]}, per_class=1, size=(64, 64))
    data = (tmp_path / "big/x/y/0.png").read_bytes()
    bad = tmp_path / "set/train/b/1.png"
    bad.write_bytes(data[: len(data) // 2])  # a copy cut short: PIL's "image file is truncated"
    return bad


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_truncated_image_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, workers):
    bad = truncated_png(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(tmp_path / "data"))
    code = kdrun_in_process(["debug=fast", "dataset=imagefolder", f"dataset.root={tmp_path / 'set'}",
                             "dataset.image_size=8", "teacher=mlp", "teacher.hidden=[8]", "stages=[teacher]",
                             "measure.enabled=false", f"trainer.num_workers={workers}", "hydra.run.dir=run"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kdrun: error:")]
    assert code == 2 and "Traceback" not in err, err
    assert lines == [f"kdrun: error: cannot read image {bad} (image file is truncated); replace or remove that file"]
    assert bad.read_bytes()  # nothing removed


def test_a_truncated_image_in_a_transfer_folder_names_the_file(tmp_path):
    bad = truncated_png(tmp_path)
    folder = UnlabeledFolder(str(tmp_path / "set/train"))
    with pytest.raises(KdrunError, match=f"cannot read image {bad}"):
        folder[folder.paths.index(bad)]
