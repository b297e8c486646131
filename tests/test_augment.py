"""The on-device data path: seeds, the batched CIFAR augmentation and its equality with
torchvision's transforms, in distribution (chi-square) and pixel for pixel (fixed draws)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import chi2_contingency, chisquare
from torchvision import transforms
from torchvision.transforms import functional as TF

from kdrun.data.augment import CropFlip
from kdrun.data.cifar import CIFAR100_MEAN, CIFAR100_STD, load_cifar100
from kdrun.data.images import ImageTensors
from kdrun.data.loaders import make_loader
from kdrun.data.seeds import mix_seed, mix_seed_tensor, sample_seeds
from tests.test_data import write_cifar100

P_MIN = 1e-3  # a correct sampler fails a test at this level once in a thousand seeds; the seeds are fixed


def test_vectorized_seeds_equal_the_scalar_hash():
    values = torch.cat([torch.arange(2000), torch.tensor([2**31 - 1, 2**40 + 7, 2**62 - 1, 2**63 - 1])])
    for first in (0, 1, 12345, 2**62 + 3, 2**64 - 1):
        got = mix_seed_tensor(first, values).tolist()
        assert got == [mix_seed(first, v) for v in values.tolist()]
    assert (sample_seeds(0, 3, torch.arange(10)) >= 0).all()


def torchvision_view(image_chw: torch.Tensor, top: int, left: int, flipped: bool) -> torch.Tensor:
    """The reference: torchvision's PIL pipeline (pad 4, crop 32, flip, ToTensor, Normalize) at a fixed draw."""
    pil = Image.fromarray(image_chw.permute(1, 2, 0).numpy())
    view = TF.crop(TF.pad(pil, 4), top, left, 32, 32)
    if flipped:
        view = TF.hflip(view)
    return TF.normalize(TF.to_tensor(view), CIFAR100_MEAN, CIFAR100_STD)


def test_batched_views_equal_torchvision_pixel_for_pixel():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = ImageTensors(images, torch.zeros(16), CIFAR100_MEAN, CIFAR100_STD, augment=CropFlip(4))
    seeds = sample_seeds(7, 2, torch.arange(16))
    batch = data.inputs(data.x, torch.arange(16), seeds)
    tops, lefts, flips = data.augment.draws(seeds)
    assert len(set(zip(tops.tolist(), lefts.tolist()))) > 8 and 0 < int(flips.sum()) < 16  # varied draws
    for i in range(16):
        expected = torchvision_view(images[i], int(tops[i]), int(lefts[i]), bool(flips[i]))
        assert torch.equal(batch[i], expected), f"sample {i}"
        assert torch.equal(data.item(i, int(seeds[i]))[0], expected)  # the per-item (DataLoader) path


def corner_and_flip(view: torch.Tensor) -> tuple[int, int, bool]:
    """Recover the draw from a view of the position image (pixel = 1 + row * 40 + col of the padded image),
    read near the centre, which is never padding."""
    flipped = bool(view[16, 16] > view[16, 17])
    position = int(view[16, 16]) - 1 - 16 * 40 - (15 if flipped else 16)  # minus (16, 16), flipped (16, 15)
    return position // 40, position % 40, flipped


def test_draws_have_torchvisions_distribution():
    """Ours and torchvision's RandomCrop + RandomHorizontalFlip: uniform corners over the 9x9 window,
    flip p = 0.5, independent; and the two samplers agree with each other (chi-square homogeneity)."""
    n = 81 * 60
    ours = CropFlip(4).draws(sample_seeds(11, 5, torch.arange(n)))
    cells_ours = (ours[0] * 9 + ours[1]) * 2 + ours[2].long()

    # torchvision, on an image whose pixels name their position in the padded image
    padded = (1 + torch.arange(40).view(40, 1) * 40 + torch.arange(40)).float()[4:36, 4:36].unsqueeze(0)
    tv = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])
    torch.manual_seed(0)
    draws = [corner_and_flip(tv(padded)[0]) for _ in range(n)]
    cells_tv = torch.tensor([(t * 9 + left) * 2 + int(f) for t, left, f in draws])
    assert all(0 <= t <= 8 and 0 <= left <= 8 for t, left, _ in draws)  # the recovery itself is sound

    for cells in (cells_ours, cells_tv):
        counts = torch.bincount(cells, minlength=162).numpy()
        assert chisquare(counts).pvalue > P_MIN  # uniform over 81 corners x 2 flips: all independent
        assert abs(counts[1::2].sum() / n - 0.5) < 4 * 0.5 / np.sqrt(n)
    table = np.stack([torch.bincount(c, minlength=162).numpy() for c in (cells_ours, cells_tv)])
    assert chi2_contingency(table).pvalue > P_MIN


def test_chi_square_catches_a_biased_sampler():
    """The test above can fail: a sampler that never uses the last corner row is rejected."""
    n = 81 * 60
    top, left, flipped = CropFlip(4).draws(sample_seeds(11, 5, torch.arange(n)))
    biased = (top.clamp(max=7) * 9 + left) * 2 + flipped.long()
    assert chisquare(torch.bincount(biased, minlength=162).numpy()).pvalue < P_MIN


def test_views_are_a_function_of_seed_epoch_and_sample():
    s = sample_seeds(3, 1, torch.tensor([5, 6, 5]))
    assert s[0] == s[2] and s[0] != s[1]
    assert not torch.equal(sample_seeds(3, 1, torch.arange(50)), sample_seeds(3, 2, torch.arange(50)))
    assert not torch.equal(sample_seeds(3, 1, torch.arange(50)), sample_seeds(4, 1, torch.arange(50)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batched_and_dataloader_paths_give_the_same_batches(tmp_path, num_workers):
    """CIFAR files in the real format: the on-device path equals the DataLoader path (workers, per-item
    seeds) batch for batch, and a fresh loader at epoch 2 (a resumed run) equals the running one."""
    write_cifar100(tmp_path, n_train=20)
    train = load_cifar100(str(tmp_path), verify=False).train
    assert isinstance(train, ImageTensors) and train.x.dtype == torch.uint8

    def epoch(batched: bool, e: int, loader=None):
        loader = loader or make_loader(train, 8, True, seed_for_epoch=9, num_workers=num_workers, device="cpu",
                                       with_index=True, batched=batched)
        loader.set_epoch(e)
        return list(loader)

    running = make_loader(train, 8, True, seed_for_epoch=9, device="cpu", with_index=True)
    epoch(True, 1, running)
    for a, b, c in zip(epoch(True, 2, running), epoch(False, 2), epoch(True, 2)):
        for ta, tb, tc in zip(a, b, c):
            assert torch.equal(ta, tb) and torch.equal(ta, tc)
    assert not torch.equal(epoch(True, 1)[0][0], epoch(True, 2)[0][0])
