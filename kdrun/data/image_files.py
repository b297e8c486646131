"""Reading a tree of image files safely: each folder once, and an unreadable image named.

torchvision's ``ImageFolder`` walks a class folder with ``os.walk(followlinks=True)``, so a directory
link that points back up (``train/a/loop -> ../a``, ``val/b/self -> .``) is followed again and again
until the path is too long: the same images counted dozens of times, silently. Here a split is walked
with links followed, but each real folder (device, inode) is read at most once per split, and a link
to a folder already read, to another class's folder or to a folder above the split (which would hold
the split itself) is not followed; such links are counted and named in the log. The order is
torchvision's (folders sorted by path, files sorted in each), so a tree without such links gives the
same samples in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from kdrun.errors import KdrunError
from kdrun.io import one_line


def load_rgb(path: str) -> Image.Image:
    """An image file as RGB; a truncated or unreadable file is one line that names it."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except Exception as e:  # noqa: BLE001 - a decoder's error on bad bytes: OSError "image file is truncated",
        # struct.error, SyntaxError, DecompressionBombError ... all mean the same: this file is not a readable image
        raise KdrunError(f"cannot read image {path} ({one_line(e, limit=120)}); replace or remove that file") from None


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class SplitWalk:
    """The image files of one split, each real folder read once; ``skipped`` holds the links not followed."""

    def __init__(self, split_dir: str | os.PathLike, class_names: list[str]) -> None:
        self.split_dir = Path(split_dir)
        self.skipped: list[str] = []
        real = self.split_dir.resolve()
        # folders above the split hold the split itself: a link to one of them is a loop
        self._read = {i for i in map(_identity, [real, *real.parents]) if i is not None}
        self._class_dirs = {_identity(self.split_dir / c) for c in class_names}

    def samples(self, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
        """(path, class index) of every image file, class by class, in torchvision's order."""
        instances, empty = [], []
        for name in sorted(class_to_idx, key=class_to_idx.get):
            files = [(path, class_to_idx[name]) for path in self._class_files(self.split_dir / name)]
            instances += files
            if not files:
                empty.append(name)
        if empty:  # torchvision's message: kdrun/data/imagefolder.py turns it into one line
            raise FileNotFoundError(f"Found no valid file for the classes {', '.join(sorted(empty))}. "
                                    f"Supported extensions are: {', '.join(IMG_EXTENSIONS)}")
        return instances

    def _class_files(self, class_dir: Path) -> list[str]:
        top = _identity(class_dir)
        if top in self._read:  # a class folder that links to one already read (or to a folder above)
            self.skipped.append(str(class_dir))
            return []
        self._read.add(top)
        folders = sorted(self._walk(class_dir), key=lambda folder: folder[0])
        return [os.path.join(d, f) for d, names in folders for f in sorted(names)
                if has_file_allowed_extension(f, IMG_EXTENSIONS)]

    def _walk(self, top: Path) -> Iterator[tuple[str, list[str]]]:
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            keep = []
            for name in dirnames:
                ident = _identity(os.path.join(dirpath, name))
                if ident in self._read or ident in self._class_dirs:
                    self.skipped.append(os.path.join(dirpath, name))
                    continue
                self._read.add(ident)
                keep.append(name)
            dirnames[:] = keep
            yield dirpath, filenames
