"""MNIST-1D (Greydanus, "Scaling down deep learning", 2020): 4,000 train / 1,000 test signals of length 40.

Generated locally by the ``mnist1d`` package with its default arguments (never downloaded)
and cached under ``<root>/mnist1d/`` after the first generation, as ``.npz``/``.npy`` arrays read
with ``allow_pickle=False``: the data folder is often shared (``KDRUN_DATA``), so nothing in it is
ever unpickled (a planted ``.pkl`` is simply not read). A cache file that does not hold the
expected arrays is generated again. Small and large models
separate far more here than on digits (published: MLP 68%, CNN 94%).

The generator also makes *transfer sets* (``distill.transfer_size=N``): N fresh signals drawn with
the same arguments under seeds derived from, and different from, the dataset's seed, so they are
never train or test signals. Their labels are discarded: only the teacher labels them.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData
from kdrun.data.loaders import mix_seed
from kdrun.errors import DATA
from kdrun.io import atomic_path

log = logging.getLogger(__name__)

# Transfer inputs are generated in chunks of the published set's size: the generator standardizes
# each call's signals by their own mean and std, so a chunk is scaled like the training signals.
TRANSFER_CHUNK = 5000
TRANSFER_SALT = 0x7F4A7C15  # keeps transfer seeds apart from dataset seeds


def generate_mnist1d(num_samples: int = 5000, seed: int = 42, train_split: float = 0.8) -> dict:
    """Make an MNIST-1D set with the package's generator (the published set uses these defaults)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, train_split
    return make_dataset(args)


ARRAYS = ("x", "y", "x_test", "y_test")


def _cached(root: str, seed: int) -> dict:
    path = Path(root).expanduser() / "mnist1d" / f"mnist1d_seed{seed}.npz"
    data = _read_arrays(path)
    if data is not None:
        return data
    log.info("generating MNIST-1D (seed %d) into %s", seed, path)
    data = {k: np.asarray(v) for k, v in generate_mnist1d(seed=seed).items() if k in ARRAYS}
    with atomic_path(path, "the generated MNIST-1D dataset", DATA) as tmp:
        np.savez(tmp, **data)
    return data


def _read_arrays(path: Path) -> dict | None:
    """The cached arrays, or None when there are none or they are unreadable (generated again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError) as e:  # truncated, not an .npz, object arrays, missing key
        log.warning("%s is not a readable MNIST-1D cache (%s); generating it again", path, type(e).__name__)
        return None
    return data


def transfer_seed(dataset_seed: int, chunk: int) -> int:
    """The generator seed of transfer chunk ``chunk`` (numpy seeds are 32-bit)."""
    return mix_seed(TRANSFER_SALT, dataset_seed, chunk) % 2**32


def generate_transfer(n: int, dataset_seed: int = 42) -> np.ndarray:
    """``n`` fresh MNIST-1D signals, shape (n, 40): chunk i comes from seed ``transfer_seed(dataset_seed, i)``."""
    chunks, done = [], 0
    for chunk in range(-(-n // TRANSFER_CHUNK)):
        want = min(TRANSFER_CHUNK, n - done)
        # the generator makes num_samples // 10 signals per class: ask for a multiple of 10, keep `want`
        data = generate_mnist1d(num_samples=-(-want // 10) * 10, seed=transfer_seed(dataset_seed, chunk),
                                train_split=1.0)
        chunks.append(data["x"][:want].astype(np.float32))
        done += want
        log.info("generating MNIST-1D transfer inputs: %d/%d", done, n)
    return np.concatenate(chunks)


def transfer_inputs(root: str, dataset_seed: int, n: int) -> torch.Tensor:
    """``n`` transfer signals as (n, 1, 40), generated once and cached under ``<root>/mnist1d/``."""
    if n < 1:
        raise ValueError(f"a transfer set needs at least one input, got {n}")
    path = Path(root).expanduser() / "mnist1d" / f"transfer_seed{dataset_seed}_n{n}.npy"
    x = _read_transfer(path, n)
    if x is None:
        log.info("generating %d MNIST-1D transfer inputs into %s", n, path)
        x = generate_transfer(n, dataset_seed)
        with atomic_path(path, "the generated MNIST-1D transfer inputs", DATA) as tmp:
            np.save(tmp, x)
    return torch.from_numpy(x).unsqueeze(1)


def _read_transfer(path: Path, n: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        log.warning("%s is not a readable transfer set (%s); generating it again", path, type(e).__name__)
        return None
    if x.shape != (n, 40) or x.dtype != np.float32:
        log.warning("%s holds arrays of shape %s, expected (%d, 40); generating it again", path, x.shape, n)
        return None
    return x


def load_mnist1d(root: str = "data", seed: int = 42) -> DataBundle:
    data = _cached(root, seed)
    x = torch.tensor(data["x"], dtype=torch.float32).unsqueeze(1)
    xt = torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(1)
    y, yt = torch.tensor(data["y"], dtype=torch.long), torch.tensor(data["y_test"], dtype=torch.long)
    info = DataInfo("mnist1d", "signal", 1, (x.shape[-1],), 10, len(y), len(yt))
    return DataBundle(info, TensorData(x, y), TensorData(xt, yt), y,
                      generate_inputs=partial(transfer_inputs, root, seed))
