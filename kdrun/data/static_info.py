"""What each built-in dataset is, known without reading, generating or downloading it.

The compatibility checks (architecture vs. input kind, method vs. feature maps, a scheme's pairs)
build the models against this :class:`DataInfo` before any data work, so a pair that cannot work
fails in one line before a run folder, a download or a generated file exists. tests/test_static_info.py
keeps each entry equal to what its builder reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdrun.data.base import DataInfo
from kdrun.errors import KdrunError


def _imagefolder(root: str, image_size: int = 224, train_dir: str = "train", val_dir: str = "val",
                 **_: Any) -> DataInfo:
    """Classes are the folders under ``<root>/<train_dir>`` (what the builder finds, cheaply listed)."""
    root_path = Path(str(root)).expanduser()
    if not root_path.is_dir():  # the builder's own messages, before anything is created
        raise KdrunError(f"dataset.root={root}: directory not found; point it at a folder holding {train_dir}/ "
                         f"and {val_dir}/")
    train = root_path / train_dir
    if not train.is_dir():
        raise KdrunError(f"dataset.train_dir={train_dir}: {train}/ not found; put one folder per class there")
    classes = [e.name for e in os.scandir(train) if e.is_dir()]
    if not classes:
        raise KdrunError(f"dataset.train_dir={train_dir}: {train}/ has no class folders; put one folder per class there")
    size = int(image_size)
    return DataInfo("imagefolder", "image", 3, (size, size), len(classes), 0, 0)


def _synthetic(num_train: int = 256, num_test: int = 128, num_classes: int = 4, in_channels: int = 3,
               size: int = 8, **_: Any) -> DataInfo:
    return DataInfo("synthetic", "image", in_channels, (size, size), num_classes, num_train, num_test)


def _tokens(name: str, vocab_size: int, max_length: int, num_classes: int | None, tokenizer: str | None,
            num_train: int = 0, num_test: int = 0) -> DataInfo | None:
    """A text dataset: the tokenizer's size and padding id (a pretrained tokenizer's files are read, no data)."""
    if num_classes is None:
        return None
    if tokenizer:
        from kdrun.data.tokenize import pretrained_facts

        vocab_size, pad_id = pretrained_facts(str(tokenizer))
        return DataInfo(name, "tokens", vocab_size, (int(max_length),), int(num_classes), num_train, num_test,
                        pad_id=pad_id, tokenizer=str(tokenizer))
    return DataInfo(name, "tokens", int(vocab_size), (int(max_length),), int(num_classes), num_train, num_test,
                    pad_id=0, tokenizer=f"corpus:{name}")


def _listops(max_length: int = 48, num_train: int = 4000, num_test: int = 1000, tokenizer: str | None = None,
             **_: Any) -> DataInfo | None:
    from kdrun.data.listops import VOCAB

    return _tokens("listops", len(VOCAB), max_length, 10, tokenizer, int(num_train), int(num_test))


def _listops_lm(max_length: int = 64, num_train: int = 4000, num_test: int = 1000, tokenizer: str | None = None,
                **_: Any) -> DataInfo | None:
    """Next-token ListOps: the classes are the vocabulary (kdrun/data/causal.py)."""
    from kdrun.data.listops import VOCAB

    info = _tokens("listops_lm", len(VOCAB), max_length, len(VOCAB), tokenizer, int(num_train), int(num_test))
    return replace(info, input_kind="next_tokens", num_classes=info.in_channels)


def _text_files(max_length: int = 128, vocab_size: int = 8000, num_classes: int | None = None,
                tokenizer: str | None = None, **_: Any) -> DataInfo | None:
    return _tokens("text_files", vocab_size, max_length, num_classes, tokenizer)


def _hf_text(path: str, name: str | None = None, max_length: int = 128, vocab_size: int = 30000,
             num_classes: int | None = None, tokenizer: str | None = None, **_: Any) -> DataInfo | None:
    label = (f"{path}/{name}" if name else str(path)).replace("/", "_")
    return _tokens(label, vocab_size, max_length, num_classes, tokenizer)


# _target_ -> DataInfo from the node's keyword arguments
STATIC: dict[str, Callable[..., DataInfo]] = {
    "kdrun.data.mnist1d.load_mnist1d": lambda **_: DataInfo("mnist1d", "signal", 1, (40,), 10, 4000, 1000),
    "kdrun.data.digits.load_digits": lambda **_: DataInfo("digits", "image", 1, (8, 8), 10, 1347, 450),
    "kdrun.data.cifar.load_cifar10": lambda **_: DataInfo("cifar10", "image", 3, (32, 32), 10, 50000, 10000),
    "kdrun.data.cifar.load_cifar100": lambda **_: DataInfo("cifar100", "image", 3, (32, 32), 100, 50000, 10000),
    "kdrun.data.torchvision_sets.load_mnist": lambda **_: DataInfo("mnist", "image", 1, (28, 28), 10, 60000, 10000),
    "kdrun.data.torchvision_sets.load_fashion_mnist":
        lambda **_: DataInfo("fashion_mnist", "image", 1, (28, 28), 10, 60000, 10000),
    "kdrun.data.imagefolder.load_imagefolder": _imagefolder,
    "kdrun.data.synthetic.load_synthetic": _synthetic,
    "kdrun.data.text.load_listops": _listops,
    "kdrun.data.causal.load_listops_lm": _listops_lm,
    "kdrun.data.text.load_text_files": _text_files,
    "kdrun.data.text.load_hf_text": _hf_text,
    "kdrun.data.npz.load_npz": lambda **kw: _npz(**kw),  # the array headers and labels only
}


def _npz(**kwargs: Any) -> DataInfo:
    from kdrun.data.npz import npz_info

    return npz_info(**kwargs)


def static_info(node: dict[str, Any]) -> DataInfo | None:
    """The dataset's facts from its config node (``_target_`` + kwargs), or None for a builder kdrun
    does not know (then the checks run once the data is loaded)."""
    describe = STATIC.get(str(node.get("_target_")))
    if describe is None:
        return None
    return describe(**{k: v for k, v in node.items() if not k.startswith("_")})
