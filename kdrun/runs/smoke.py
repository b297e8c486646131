"""Smoke runs: every preset, a couple of steps, on small generated data in the real on-disk formats.

A preset is composed exactly as ``kdrun experiment=<preset>`` composes it (same config tree, same
ConfigStore), checked by the same pre-flight checks, and run by the same pipeline; only the size
changes: ``debug=fast``, batches of 8, two train batches and one eval batch per stage, and the
dataset read from a tiny generated copy -- CIFAR-100's python pickles (``cifar-100-python/``) for
the CIFAR presets, an ImageFolder tree of 32x32 PNGs for the ImageNet ones. So a preset that names a
missing option, a key its method does not have, or a pair its method cannot handle fails here.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

SMOKE = ["debug=fast", "device=cpu", "trainer.batch_size=8", "trainer.num_workers=0",
         "trainer.max_train_batches=2", "trainer.max_eval_batches=1", "teachers_dir=null"]
CIFAR_TRAIN, CIFAR_TEST = 32, 16
FOLDER_CLASSES, FOLDER_IMAGES = 4, 4


def write_tiny_cifar100(root: Path) -> Path:
    """A CIFAR-100 ``python version`` folder with a few random images (torchvision reads it as the real one)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        fine = [i % 100 for i in range(n)]
        entry = {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": split, "fine_labels": fine,
                 "coarse_labels": [f // 5 for f in fine],
                 "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)}
        (folder / split).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)],
            "coarse_label_names": [f"coarse{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_tiny_imagefolder(root: Path) -> Path:
    """<root>/{train,val}/<class>/<i>.png: a few 40x40 RGB images per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(FOLDER_CLASSES):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(FOLDER_IMAGES):
                pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def write_smoke_data(root: str | Path) -> Path:
    """Both tiny datasets under ``root`` (kept between calls: written once)."""
    root = Path(root)
    if not (root / "cifar-100-python" / "meta").is_file():
        write_tiny_cifar100(root)
    if not (root / "imagefolder" / "val").is_dir():
        write_tiny_imagefolder(root / "imagefolder")
    return root


def smoke_overrides(preset: str, data_root: str | Path, outputs: str | Path) -> list[str]:
    """The command-line overrides that shrink ``experiment=<preset>`` to a smoke run."""
    data_root = Path(data_root)
    # the tiny CIFAR-100 is not the published one: read it unverified, and never download the real one
    dataset = [f"dataset.root={data_root}", "dataset.verify=false", "dataset.download=false"]
    if preset.startswith("imagenet/"):
        dataset = [f"dataset.root={data_root / 'imagefolder'}", "dataset.image_size=32"]
    # A teacher trained for two steps on noise has barely-updated batch-norm statistics, so its last map is
    # huge (~1e8); FT's paraphraser, fitted to reconstruct it at the reference lr, goes non-finite at step 2
    # and kdrun stops the stage. The smoke run checks the wiring, not the training: a tiny init lr.
    method = ["method.init_lr=1e-5"] if preset.split("/")[-1] == "ft" else []
    return [f"experiment={preset}", *SMOKE, *dataset, *method, f"paths.outputs={outputs}"]


def compose_run_config(overrides: list[str]) -> DictConfig:
    """The job config ``kdrun <overrides>`` would run, checked as the CLI checks it."""
    from kdrun.config.checks import check_config
    from kdrun.conf_dir import config_dir
    from kdrun.config.store import register_configs
    from kdrun.schemes.registry import STAGE_NAMES

    register_configs()  # the generated options, the experiment= presets included
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="kdrun"):
            cfg = compose(config_name="config", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
    check_config(cfg, STAGE_NAMES)
    return cfg


def smoke_run(preset: str, data_root: str | Path, outputs: str | Path) -> dict[str, Any]:
    """Run ``preset`` in smoke mode in this process; returns its results (raises on any failure)."""
    from kdrun.runs.pipeline import run

    cfg = compose_run_config(smoke_overrides(preset, data_root, outputs))
    run_dir = Path(outputs) / "runs" / preset.replace("/", "__")
    return run(cfg, run_dir)
