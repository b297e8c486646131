"""Trained teachers in the community's layout: ``<dir>/<name>_vanilla/ckpt_epoch_240.pth``.

That is the layout of mdistiller's release archive ``cifar_teachers.tar`` (weights under the key
``model``; key names equal to kdrun's zoo, so they load strictly). ``teachers_dir=<dir>`` makes
every run take its teacher from there instead of training one, so all seeds and methods of a
benchmark share one teacher, as in the published tables. ``scripts/benchmark.py teachers --export``
writes kdrun-trained teachers into the same layout.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from kdrun.benchmarks.published import tables
from kdrun.io import load_checkpoint, save_atomic, state_dict_of

CHECKPOINT = "ckpt_epoch_240.pth"


def archive_name(arch: str) -> str:
    """The folder stem the archive uses for ``arch`` (``ResNet50`` for resnet50, else the name itself)."""
    for table in tables():
        if arch in table.archive_names:
            return table.archive_names[arch]
    return arch


def _candidates(folder: Path) -> list[Path]:
    """ckpt_epoch_<n>.pth files, latest epoch first (the archive's are all ckpt_epoch_240.pth)."""
    found = []
    for path in folder.glob("ckpt_epoch_*.pth"):
        match = re.fullmatch(r"ckpt_epoch_(\d+)\.pth", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def archived_teacher(teachers_dir: str | Path, arch: str) -> Path:
    """The teacher file for ``arch`` under ``teachers_dir``; the expected path if there is none (callers check)."""
    root = Path(teachers_dir).expanduser()
    for name in dict.fromkeys((archive_name(arch), arch)):
        folder = root / f"{name}_vanilla"
        if (folder / CHECKPOINT).is_file():
            return folder / CHECKPOINT
        if folder.is_dir() and _candidates(folder):
            return _candidates(folder)[0]
    return root / f"{archive_name(arch)}_vanilla" / CHECKPOINT


def teacher_checkpoint(cfg: DictConfig) -> str | None:
    """``teacher.checkpoint``, else the teacher's file in ``teachers_dir`` (mdistiller's layout), else None."""
    if cfg.teacher.get("checkpoint"):
        return str(cfg.teacher.checkpoint)
    if cfg.get("teachers_dir"):
        return str(archived_teacher(cfg.teachers_dir, cfg.teacher.arch))
    return None


def export_teacher(checkpoint: str | Path, teachers_dir: str | Path, arch: str) -> Path:
    """Write a kdrun teacher checkpoint into the layout: its weights under ``model`` (no optimizer state)."""
    saved = load_checkpoint(checkpoint, "teacher checkpoint")
    target = Path(teachers_dir) / f"{archive_name(arch)}_vanilla" / CHECKPOINT
    extra = {k: saved[k] for k in ("epoch", "top1", "num_classes", "dataset") if k in saved}
    save_atomic({"model": state_dict_of(saved), "arch": arch, **extra}, target)
    return target
