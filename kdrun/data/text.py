"""Text classification data: token ids padded to ``max_length``, held in memory as one int64 tensor.

Every text dataset declares the input kind ``tokens``: ``DataInfo.in_channels`` is the vocabulary size,
``input_size`` is ``(max_length,)``, ``pad_id`` marks padding (the models derive the attention mask from it)
and ``tokenizer`` names the tokenizer that made the ids. The tokenizer is the teacher's, so the student reads
the same ids: ``dataset.tokenizer`` defaults to ``${teacher.pretrained}``; where that is null (models built
from configs, offline) a word-level tokenizer is built from the training texts (kdrun/data/tokenize.py).

Three sources, one builder each:
- ``load_listops``: the embedded, generated ListOps task (kdrun/data/listops.py), offline;
- ``load_text_files``: local csv / jsonl / parquet files, one text column and one label column;
- ``load_hf_text``: a Hugging Face ``datasets`` dataset by name (GLUE SST-2), online or from its cache.

A batch is trimmed to its longest sequence (dynamic padding, as transformers' DataCollatorWithPadding):
teacher and student see the same trimmed ids, and short batches cost less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData, files_fingerprint
from kdrun.data.tokenize import Tokenized, tokenize
from kdrun.errors import KdrunError


class TextData(TensorData):
    """Token ids (N, max_length) and labels (N,); ``inputs`` trims a batch to its longest sequence."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pad_id: int) -> None:
        super().__init__(x, y)
        self.pad_id = pad_id

    def inputs(self, x: torch.Tensor, index: torch.Tensor, seeds: torch.Tensor | None = None) -> torch.Tensor:
        ids = x[index]
        longest = int((ids != self.pad_id).sum(1).max()) if len(ids) else ids.shape[1]
        return ids[:, :max(longest, 1)]


def text_bundle(name: str, train: Tokenized, test: Tokenized, train_labels: list[int], test_labels: list[int],
                num_classes: int, fingerprint: str | None = None) -> DataBundle:
    y_train = torch.tensor(train_labels, dtype=torch.long)
    y_test = torch.tensor(test_labels, dtype=torch.long)
    info = DataInfo(name, "tokens", train.vocab_size, (train.ids.shape[1],), num_classes, len(y_train), len(y_test),
                    pad_id=train.pad_id, tokenizer=train.name)
    return DataBundle(info, TextData(train.ids, y_train, train.pad_id), TextData(test.ids, y_test, test.pad_id),
                      y_train, fingerprint=fingerprint)


def load_listops(max_length: int = 48, num_train: int = 4000, num_test: int = 1000, max_depth: int = 3,
                 tree_p: float = 0.25, max_args: int = 5, seed: int = 0, tokenizer: str | None = None,
                 **_: Any) -> DataBundle:
    """ListOps, generated in memory (a fraction of a second): train and test are disjoint draws of one
    generator (seed), so no test expression occurs in training."""
    from kdrun.data.listops import VOCAB, generate

    texts, labels = generate(num_train + num_test, seed, max_length, max_depth, tree_p, max_args)
    ids = tokenize(texts, max_length, tokenizer, fixed_vocab=VOCAB, corpus_name="listops")
    train = Tokenized(ids.ids[:num_train], ids.pad_id, ids.vocab_size, ids.name)
    test = Tokenized(ids.ids[num_train:], ids.pad_id, ids.vocab_size, ids.name)
    return text_bundle("listops", train, test, labels[:num_train], labels[num_train:], 10)


def _labels(train: list, test: list) -> tuple[list[int], list[int], int]:
    """Integer labels as given (0..C-1), or text labels numbered in sorted order."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in [*train, *test]):
        return list(train), list(test), max([*train, *test]) + 1
    names = sorted({str(v) for v in [*train, *test]})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v)] for v in train], [index[str(v)] for v in test], len(names)


def _columns(split, text_column: str, label_column: str, where: str) -> tuple[list[str], list]:
    missing = [c for c in (text_column, label_column) if c not in split.column_names]
    if missing:
        key = "dataset.text_column" if missing[0] == text_column else "dataset.label_column"
        raise KdrunError(f"{key}={missing[0]}: no such column in {where}; columns: {', '.join(split.column_names)}")
    return [str(t) for t in split[text_column]], list(split[label_column])


def _from_splits(name: str, train_split, test_split, text_column: str, label_column: str, max_length: int,
                 tokenizer: str | None, vocab_size: int, where: str, num_classes: int | None,
                 fingerprint: str | None = None) -> DataBundle:
    train_texts, train_labels = _columns(train_split, text_column, label_column, where)
    test_texts, test_labels = _columns(test_split, text_column, label_column, where)
    train_y, test_y, counted = _labels(train_labels, test_labels)
    if num_classes is not None and counted > num_classes:
        raise KdrunError(f"dataset.num_classes={num_classes}: {where} has labels up to {counted - 1}; "
                         f"set dataset.num_classes={counted} or null")
    num_classes = num_classes or counted
    if min([*train_y, *test_y]) < 0:
        raise KdrunError(f"dataset.label_column={label_column}: {where} has unlabeled rows (label -1); "
                         "choose a labeled split (dataset.test_split)")
    train = tokenize(train_texts, max_length, tokenizer, vocab_size=vocab_size, corpus_name=name)
    test = tokenize(test_texts, max_length, tokenizer, fit_on=train)
    return text_bundle(name, train, test, train_y, test_y, num_classes, fingerprint)


FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def load_text_files(train: str, test: str, text_column: str = "text", label_column: str = "label",
                    max_length: int = 128, tokenizer: str | None = None, vocab_size: int = 8000,
                    num_classes: int | None = None, **_: Any) -> DataBundle:
    """Local files (csv, tsv, jsonl, parquet) read with Hugging Face ``datasets``."""
    import datasets

    paths = {"train": Path(str(train)).expanduser(), "test": Path(str(test)).expanduser()}
    for split, path in paths.items():
        if not path.is_file():
            raise KdrunError(f"dataset.{split}={path}: file not found; give a csv, tsv, jsonl or parquet file")
        if path.suffix not in FORMATS:
            raise KdrunError(f"dataset.{split}={path}: unknown format {path.suffix!r}; valid: {', '.join(FORMATS)}")
    fmt = FORMATS[paths["train"].suffix]
    extra = {"delimiter": "\t"} if paths["train"].suffix == ".tsv" else {}
    data = datasets.load_dataset(fmt, data_files={k: str(v) for k, v in paths.items()}, **extra)
    root = paths["train"].parent
    return _from_splits("text_files", data["train"], data["test"], text_column, label_column, max_length, tokenizer,
                        vocab_size, str(paths["train"]), num_classes, files_fingerprint(root, paths.values()))


def load_hf_text(path: str, name: str | None = None, train_split: str = "train", test_split: str = "validation",
                 text_column: str = "sentence", label_column: str = "label", max_length: int = 128,
                 tokenizer: str | None = None, vocab_size: int = 30000, num_classes: int | None = None,
                 **_: Any) -> DataBundle:
    """A Hugging Face hub dataset (``datasets.load_dataset(path, name)``), e.g. GLUE SST-2. GLUE's test
    labels are hidden, so its validation split is the test set, as in the papers' dev-set tables."""
    import datasets

    try:
        data = datasets.load_dataset(path, name)
    except (ConnectionError, OSError, ValueError) as e:
        raise KdrunError(f"dataset.path={path}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0]}); "
                         "offline, use dataset=listops or dataset=text_files") from None
    for split in (train_split, test_split):
        if split not in data:
            raise KdrunError(f"dataset split {split} not in {path}; splits: {', '.join(data)}")
    label = f"{path}/{name}" if name else path
    return _from_splits(label.replace("/", "_"), data[train_split], data[test_split], text_column, label_column,
                        max_length, tokenizer, vocab_size, label, num_classes)
