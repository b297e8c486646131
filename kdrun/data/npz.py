"""``dataset=npz dataset.path=arrays.npz``: four arrays in one file, ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Read with ``allow_pickle=False`` (an .npz holding Python objects is refused: loading it could run code). What
the arrays are (kind, shape, classes) is read from them (kdrun/data/arrays.py); :func:`npz_info` reads only
the array headers and the labels, so the model checks run before the inputs are loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from kdrun.data.arrays import SPLITS, bundle_from_arrays
from kdrun.data.base import DataBundle, DataInfo
from kdrun.errors import KdrunError


def _path(path: str) -> Path:
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise KdrunError(f"dataset.path={path}: file not found; give an .npz holding {', '.join(SPLITS)} "
                         f"(np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...))")
    return p


def _open(path: str) -> np.lib.npyio.NpzFile:
    try:
        return np.load(_path(path), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise KdrunError(f"dataset.path={path} is not a readable .npz file ({e})") from None


def load_npz(path: str, input_kind: str | None = None, normalize: bool = True) -> DataBundle:
    with _open(path) as f:
        try:
            arrays = {k: f[k] for k in f.files}
        except ValueError as e:  # object arrays need pickle: refused
            raise KdrunError(f"dataset.path={path} holds Python objects, not plain arrays ({e}); save numeric "
                             f"arrays") from None
    return bundle_from_arrays(f"npz:{Path(path).stem}", arrays, input_kind, normalize, f"dataset.path={path}")


def npz_info(path: str, input_kind: str | None = None, **_: object) -> DataInfo:
    """The facts of an .npz from its array headers and its labels (the inputs stay unread)."""
    with zipfile.ZipFile(_path(path)) as z:
        names = {n.removesuffix(".npy"): n for n in z.namelist()}
        missing = [k for k in SPLITS if k not in names]
        if missing:
            raise KdrunError(f"dataset.path={path} has no {', '.join(missing)}; it needs {', '.join(SPLITS)} "
                             f"(found: {', '.join(names) or 'nothing'})")
        shapes = {}
        for k in ("x_train", "x_test"):
            with z.open(names[k]) as f:
                major, _ = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shapes[k] = read(f)[0]
    with _open(path) as f:
        y_train, y_test = f["y_train"], f["y_test"]
    shape = shapes["x_train"]
    if len(shape) == 2 or (len(shape) == 3 and input_kind == "signal"):
        kind, channels, size = "signal", (1 if len(shape) == 2 else shape[1]), shape[-1:]
    elif len(shape) == 3:
        kind, channels, size = "image", 1, shape[1:]
    else:
        last_channels = shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        kind, channels, size = "image", shape[-1] if last_channels else shape[1], shape[1:3] if last_channels else shape[2:]
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return DataInfo(f"npz:{Path(path).stem}", kind, int(channels), tuple(int(s) for s in size), classes,
                    len(y_train), len(y_test))
