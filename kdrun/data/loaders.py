"""Batches for the engine, reproducible per epoch so that a resumed run sees exactly the batches
an uninterrupted run would have seen.

    loader = make_loader(bundle.train, batch_size=64, shuffle=True, seed_for_epoch=seed, num_workers=4, device="cuda")
    for epoch in range(start, epochs):
        loader.set_epoch(epoch)          # like DistributedSampler.set_epoch; default epoch is 0
        for x, y in loader: ...

An epoch's sample order is a pure function of (seed_for_epoch, epoch, rank, world_size). So is its
augmentation: each sample is transformed under its own seed, derived from (seed, epoch, index), so
results do not depend on num_workers, on persistent workers carrying RNG state across epochs, or on
which epoch a run was resumed at (kdrun/data/seeds.py holds both functions). Two paths:
- ``TensorData`` (in memory: CIFAR and MNIST as uint8, the small sets as float) is moved to ``device``
  once and batched by tensor indexing there, augmented per batch from the samples' seeds;
- any other Dataset (ImageFolder, folders of images), or a TensorData with ``batched=False``, goes
  through a torch DataLoader (pinned memory on CUDA, persistent workers). A TensorData gives the
  same batches on both paths.
Batches are ``(x, y)``, or ``(x, y, index)`` with ``with_index=True`` (dataset indices, for CRD).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from kdrun.data.base import TensorData
from kdrun.errors import KdrunError
from kdrun.data.seeds import epoch_seed, mix_seed, sample_seeds

__all__ = ["EpochLoader", "EpochOrder", "make_loader", "mix_seed"]


class EpochOrder:
    """Which dataset indices one rank visits in one epoch, in which order, cut into how many batches.

    With ``world_size > 1`` the order is padded by repeating its start to a multiple of world_size and
    rank r takes every world_size-th index from r (DistributedSampler's rule), so every rank sees the
    same number of batches.
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool = False,
                 max_batches: int | None = None, rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be None or >= 1, got {max_batches}")
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.drop_last, self.max_batches, self.rank, self.world_size = drop_last, max_batches, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def epoch_seed(self) -> int:
        return epoch_seed(self.seed, self.epoch)

    @property
    def num_samples(self) -> int:
        """Samples this rank visits per epoch (after padding, drop_last and max_batches)."""
        n = math.ceil(self.size / self.world_size) if self.size else 0
        if self.drop_last:
            n = n // self.batch_size * self.batch_size
        if self.max_batches is not None:
            n = min(n, self.max_batches * self.batch_size)
        return n

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> torch.Tensor:
        """This epoch's dataset indices for this rank (CPU int64), in visiting order."""
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.epoch_seed))
        else:
            order = torch.arange(self.size)
        if self.world_size > 1 and self.size:
            total = math.ceil(self.size / self.world_size) * self.world_size
            order = order.repeat(math.ceil(total / self.size))[:total][self.rank :: self.world_size]
        return order[: self.num_samples]


class FollowsEpochs:
    """``epoch``, ``set_epoch`` and ``len`` of the object that keeps the epoch (the attribute named by
    ``EPOCHS_FROM``): a loader follows its order, a paired loader its labeled loader."""

    EPOCHS_FROM: str

    @property
    def epoch(self) -> int:
        return getattr(self, self.EPOCHS_FROM).epoch

    def set_epoch(self, epoch: int) -> None:
        getattr(self, self.EPOCHS_FROM).set_epoch(epoch)

    def __len__(self) -> int:
        return len(getattr(self, self.EPOCHS_FROM))


class EpochLoader(FollowsEpochs):
    """What make_loader returns: iterate for one epoch's batches; call set_epoch before each epoch."""

    EPOCHS_FROM = "order"

    def __init__(self, dataset: Dataset, order: EpochOrder) -> None:
        self.dataset, self.order = dataset, order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        raise NotImplementedError


class TensorLoader(EpochLoader):
    """Batches a TensorData by indexing its tensors on ``device``: no per-item calls, no collate, no
    workers; an augmented dataset augments each batch there, from the samples' seeds."""

    def __init__(self, dataset: TensorData, order: EpochOrder, device: torch.device, with_index: bool) -> None:
        super().__init__(dataset, order)
        self.x, self.y = dataset.x.to(device), dataset.y.to(device)
        self.with_index = with_index

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.order.indices()
        # every seed of the epoch in one vectorized op on the CPU, moved with the order
        seeds = sample_seeds(self.order.seed, self.order.epoch, order) if self.dataset.augmented else None
        order = order.to(self.x.device)
        seeds = seeds.to(self.x.device) if seeds is not None else None
        for start in range(0, len(order), self.order.batch_size):
            stop = start + self.order.batch_size
            idx = order[start:stop]
            x = self.dataset.inputs(self.x, idx, seeds[start:stop] if seeds is not None else None)
            yield (x, self.y[idx], idx) if self.with_index else (x, self.y[idx])


class _SeededSampler(Sampler):
    """Yields ``(index, item_seed)``: the sampler runs in the main process, so each epoch's seeds
    reach the workers with the indices, even when workers persist across epochs."""

    def __init__(self, order: EpochOrder) -> None:
        self.order = order

    def __len__(self) -> int:
        return self.order.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seed = self.order.epoch_seed
        return ((i, mix_seed(seed, i)) for i in self.order.indices().tolist())


class _SeededItems(Dataset):
    """Runs the wrapped dataset's transform for one item under that item's seed (torch's CPU RNG and
    Python's ``random``, which torchvision transforms draw from), then restores both RNGs so the
    caller's random streams (e.g. dropout with num_workers=0) are untouched."""

    def __init__(self, dataset: Dataset, with_index: bool) -> None:
        self.dataset, self.with_index = dataset, with_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple:
        index, seed = key
        if get_worker_info() is not None:  # a worker's RNGs serve only this loader: no need to restore
            x, y = self._seeded_item(index, seed)
        else:
            torch_state, py_state = torch.default_generator.get_state(), random.getstate()
            try:
                x, y = self._seeded_item(index, seed)
            finally:
                torch.default_generator.set_state(torch_state)
                random.setstate(py_state)
        return (x, y, index) if self.with_index else (x, y)

    def _seeded_item(self, index: int, seed: int) -> tuple:
        if isinstance(self.dataset, TensorData):  # draws from the seed itself: the batched path's views
            return self.dataset.item(index, seed)
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would also reseed CUDA
        random.seed(seed)
        return self.dataset[index]


class DatasetLoader(EpochLoader):
    """Any map-style Dataset through a torch DataLoader, with per-epoch order and per-item seeds."""

    def __init__(self, dataset: Dataset, order: EpochOrder, num_workers: int, device: torch.device,
                 with_index: bool) -> None:  # fmt: skip
        super().__init__(dataset, order)
        # Worker base seeds are drawn from this generator, not from the global RNG, so building an
        # iterator never shifts the training's random stream.
        self._generator = torch.Generator().manual_seed(order.epoch_seed)
        self._loader = DataLoader(
            _SeededItems(dataset, with_index),
            batch_size=order.batch_size,
            sampler=_SeededSampler(order),  # already applies shuffle, shard, drop_last and max_batches
            num_workers=num_workers,
            pin_memory=device.type == "cuda" and torch.cuda.is_available(),
            persistent_workers=num_workers > 0,
            generator=self._generator,
        )

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._generator.manual_seed(self.order.epoch_seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        try:
            yield from self._loader
        except KdrunError as e:  # from a worker process: torch puts the worker's traceback in the message
            raise KdrunError(worker_message(str(e))) from None


def worker_message(text: str) -> str:
    """A KdrunError's own line out of the message torch re-raises it with ("Caught KdrunError in DataLoader
    worker process 0. Original Traceback ... KdrunError: <line>")."""
    lines = [line for line in text.splitlines() if "KdrunError: " in line]
    return lines[-1].split("KdrunError: ", 1)[1] if lines and "Traceback" in text else text


LOADERS = ("auto", "device", "dataloader")


def batch_on_device(mode: str, dataset: Dataset, device: str | torch.device) -> bool:
    """``trainer.loader``: whether ``dataset`` is batched from memory on ``device`` (else a DataLoader).

    ``auto`` does so for every in-memory dataset that fits: always on the CPU (it is already in
    memory), on a GPU when it takes at most half of the free memory."""
    if mode not in LOADERS:
        raise KdrunError(f"trainer.loader={mode} is not valid; valid choices: {', '.join(LOADERS)}")
    in_memory = isinstance(dataset, TensorData)
    if mode == "dataloader":
        return False
    if mode == "device" and not in_memory:
        raise KdrunError(f"trainer.loader=device: this dataset ({type(dataset).__name__}) is read from files item by "
                         "item, not held in memory; use trainer.loader=auto or dataloader")
    if not in_memory:
        return False
    device = torch.device(device)
    if mode == "auto" and device.type == "cuda":
        size = dataset.x.element_size() * dataset.x.nelement() + dataset.y.element_size() * dataset.y.nelement()
        return size <= torch.cuda.mem_get_info(device)[0] // 2
    return True


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed_for_epoch: int | None,
    num_workers: int = 0,
    device: str | torch.device | None = "cpu",
    drop_last: bool = False,
    with_index: bool = False,
    max_batches: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    batched: bool = True,
) -> EpochLoader:
    """Batches of ``dataset`` for one rank; ``seed_for_epoch`` is the base seed every epoch's order and
    augmentation derive from (None draws one from torch's global RNG, reproducible only from the start).
    ``max_batches`` caps the batches per epoch (debug runs, limit_train_batches). An in-memory
    dataset (TensorData) is batched on ``device`` unless ``batched=False`` sends it through a
    DataLoader (``trainer.loader=dataloader``); both give the same batches."""
    if seed_for_epoch is None:
        seed_for_epoch = int(torch.randint(0, 2**62, (1,)).item())
    device = torch.device(device if device is not None else "cpu")
    order = EpochOrder(len(dataset), batch_size, shuffle, seed_for_epoch, drop_last, max_batches, rank, world_size)
    if isinstance(dataset, TensorData) and batched:
        return TensorLoader(dataset, order, device, with_index)
    return DatasetLoader(dataset, order, num_workers, device, with_index)
