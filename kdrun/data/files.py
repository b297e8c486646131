"""Shared by the builders that read a dataset from disk: missing, undownloadable or unreadable
files become one-line ``KdrunError``s that say what is expected where."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from kdrun.errors import KdrunError
from kdrun.io import one_line

T = TypeVar("T")

# What a broken or truncated file raises while torchvision parses it (pickle, numpy reshape, IDX asserts).
_READ_ERRORS = (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AssertionError, RuntimeError)


def missing_files(folder: Path, names: Iterable[str]) -> list[str]:
    return [name for name in names if not (folder / name).is_file()]


def ensure_files(
    root: Path, folder: Path, names: list[str], label: str, put_there: str, download: bool, fetch: Callable[[], object]
) -> None:
    """Make sure ``folder`` holds every file in ``names``, calling ``fetch`` first when asked to download.

    ``put_there`` says what a user can place in ``folder`` instead (e.g. "the extracted CIFAR-10 python version").
    """
    if download and missing_files(folder, names):
        try:
            fetch()
        except Exception as e:  # no network, bad checksum, full disk: all reach the user the same way
            raise KdrunError(
                f"dataset.download=true could not fetch {label} into {root} ({one_line(e)}); "
                f"check the network or put {put_there} in {folder}/"
            ) from e
    missing = missing_files(folder, names)
    if not missing:
        return
    found = f"{folder}/ not found" if not folder.is_dir() else f"{folder}/ lacks {', '.join(missing)}"
    raise KdrunError(f"dataset.root={root}: {found}; download it with dataset.download=true or put {put_there} there")


def read_split(open_split: Callable[[], T], root: Path, folder: Path, label: str) -> T:
    """Construct a dataset split, turning a parse failure of present-but-broken files into one line."""
    try:
        return open_split()
    except _READ_ERRORS as e:
        raise KdrunError(
            f"dataset.root={root}: could not read {label} from {folder}/ ({one_line(e)}); "
            f"the files look corrupted: delete {folder}/ and download again"
        ) from e
