"""Published archives: download with a progress bar, check against the published md5, extract.

Like pip and Hugging Face's hub, nothing is trusted before its checksum matches: a download goes to
a unique temporary name in the target folder and becomes the archive only once its md5 is the
published one; the files extracted from it are checked again (:func:`verify_files`) every time
before anything reads them, because the pickle-format archives (CIFAR) run code when unpickled.
Torch-free.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kdrun.errors import DATA, KdrunError, write_error

log = logging.getLogger("kdrun")

CHUNK = 1 << 20
TIMEOUT_S = 20  # seconds without an answer (DNS, connect, read) before a download gives up


@dataclass(frozen=True)
class Archive:
    """A published dataset archive and the checksums of the files it extracts to."""

    label: str  # e.g. "CIFAR-100"
    url: str
    filename: str  # the archive's name, e.g. cifar-100-python.tar.gz
    md5: str  # of the archive
    folder: str  # what it extracts to, relative to the root
    files: tuple[tuple[str, str], ...]  # (name in folder, md5)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(archive: Archive, root: Path) -> None:
    """Every file of ``archive`` under ``root`` has its published md5; otherwise one line naming the file."""
    for name, expected in archive.files:
        path = root / archive.folder / name
        if md5sum(path) != expected:
            raise KdrunError(
                f"{path} is not the published {archive.label} file (md5 differs from {expected}); it was not "
                f"read. Delete {root / archive.folder}/ and let kdrun download it again, or set "
                f"dataset.verify=false to read files you made yourself (they are unpickled: only files you trust)")


def fetch_archive(archive: Archive, root: Path, download: bool, put_there: str) -> None:
    """Make ``root/archive.folder`` hold the archive's files: extract a present archive, else download it."""
    tarball = root / archive.filename
    if not tarball.is_file():
        if not download:
            lacking = missing(root, archive)
            folder = root / archive.folder
            found = f"{folder}/ not found" if not folder.is_dir() else f"{folder}/ lacks {', '.join(lacking)}"
            raise KdrunError(f"dataset.root={root}: {found} and dataset.download=false; {put_there}")
        _download(archive, root, put_there)
    elif md5sum(tarball) != archive.md5:
        raise KdrunError(f"{tarball} is not the published {archive.label} archive (md5 differs from "
                         f"{archive.md5}); delete it and run again to download it")
    _extract(tarball, root)


def _download(archive: Archive, root: Path, put_there: str) -> None:
    """Download into a unique temporary file beside the target; it becomes the archive once its md5 matches.
    Nothing is created when the server cannot be reached."""
    log.info("downloading %s from %s", archive.label, archive.url)
    try:
        response = urllib.request.urlopen(archive.url, timeout=TIMEOUT_S)  # noqa: S310 (a published https URL)
    except OSError as e:
        raise KdrunError(f"cannot download {archive.label} from {archive.url} ({_reason(e)}); {put_there}") from None
    with response:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{archive.filename}.", suffix=".part")
        except OSError as e:  # a read-only data folder (a read-only HOME): the setting that moves it
            raise write_error(root / archive.filename, f"the {archive.label} download", e, DATA) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(response, out, archive.filename)
            if md5sum(tmp) != archive.md5:
                raise KdrunError(f"the {archive.label} archive downloaded from {archive.url} has the wrong md5 "
                                 f"(not {archive.md5}): a broken or changed download; run again, or {put_there}")
            os.replace(tmp, root / archive.filename)
        except OSError as e:
            raise KdrunError(f"downloading {archive.label} from {archive.url} into {root} failed ({_reason(e)}); "
                             f"{put_there}") from None
        finally:
            tmp.unlink(missing_ok=True)


def _copy(response, out, filename: str) -> None:
    """Copy the response to ``out`` behind a progress bar (size, speed, time left)."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    from kdrun.logs import console

    total = int(response.headers.get("Content-Length") or 0) or None
    columns = (TextColumn(f"downloading {filename}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console(), transient=True) as progress:
        task = progress.add_task("download", total=total)
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            progress.advance(task, len(block))
    log.info("downloaded %s; checking its md5", filename)


def _extract(tarball: Path, root: Path) -> None:
    log.info("extracting %s into %s", tarball.name, root)
    with tarfile.open(tarball) as tar:
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(root, filter="data")  # no absolute paths, links out of root or device files (PEP 706)
            else:
                tar.extractall(root)  # noqa: S202 (the archive's md5 was checked first)
        except OSError as e:
            raise write_error(root, f"the files extracted from {tarball.name}", e, DATA) from None


def _reason(e: OSError) -> str:
    reason = getattr(e, "reason", None) or e.strerror or e
    return " ".join(str(reason).split())


def missing(root: Path, archive: Archive) -> list[str]:
    return [name for name, _ in archive.files if not (root / archive.folder / name).is_file()]
