"""The default run's numbers are a function of the command and of pinned versions (constraints.txt): the data's
bits, the thread count and the library versions are fixed or recorded in results.json."""

from __future__ import annotations

import numpy as np
import torch

from conftest import compose_config
from kdrun.data.digits import load_digits
from kdrun.data.fingerprint import data_fingerprint, tensor_digest
from kdrun.data.mnist1d import generate_mnist1d
from kdrun.runs.pipeline import library_versions

# generate_mnist1d(num_samples=100, seed=42) under constraints.txt's numpy, scipy and mnist1d
PINNED_SMALL_SET = "4e7b3acabc9d9636"


def test_the_mnist1d_generator_gives_the_pinned_bits():
    data = generate_mnist1d(num_samples=100, seed=42)
    digest = tensor_digest(*(torch.from_numpy(np.asarray(data[k])) for k in ("x", "y", "x_test", "y_test")))
    assert digest == PINNED_SMALL_SET, ("numpy/scipy/mnist1d here generate other MNIST-1D bits than the versions "
                                        "README's table was measured with: install with -c constraints.txt")


def test_the_default_run_uses_one_thread_whatever_the_machine():
    assert compose_config([]).device.threads == 1
    assert compose_config(["device.threads=4"]).device.threads == 4
    assert compose_config(["device=cpu"]).device.threads == 1
    assert compose_config(["dataset=digits"]).device.threads is None  # other datasets: cores / processes


def test_results_record_what_the_numbers_depend_on():
    versions = library_versions()
    for name in ("torch", "numpy", "scipy", "mnist1d", "torchvision"):
        assert versions[name], name
    data = load_digits()
    first, again = data_fingerprint(data), data_fingerprint(load_digits())
    assert first == again and first["train"] != first["test"] and first["transfer"] is None
    data.train.x[0, 0, 0, 0] += 1e-6  # one float's last bits
    assert data_fingerprint(data)["train"] != first["train"]
