"""CIFAR download and verification, on small files in the real format served from 127.0.0.1 (no internet)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import pickle
import socket
import tarfile
import threading
import time
from pathlib import Path

import pytest

from kdrun.data import cifar
from kdrun.data.cifar import load_cifar100
from kdrun.errors import KdrunError
from test_data import assert_one_line_naming, write_cifar100


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A small CIFAR-100 in the real format, tarred like the official archive and served over HTTP;
    kdrun's archive table points at it, with this archive's md5s standing in for the published ones."""
    made = tmp_path / "made"
    labels = write_cifar100(made)
    served = tmp_path / "served"
    served.mkdir()
    tarball = served / "cifar-100-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(made / "cifar-100-python", arcname="cifar-100-python")
    files = tuple((name, md5(made / "cifar-100-python" / name)) for name in ("train", "test", "meta"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    archive = dataclasses.replace(cifar.ARCHIVES["cifar100"], md5=md5(tarball), files=files,
                                  url=f"http://127.0.0.1:{server.server_address[1]}/cifar-100-python.tar.gz")
    monkeypatch.setitem(cifar.ARCHIVES, "cifar100", archive)
    yield {"archive": archive, "tarball": tarball, "labels": labels}
    server.shutdown()
    server.server_close()


def test_download_verifies_extracts_and_loads(tmp_path, published, caplog):
    root = tmp_path / "cache"
    caplog.set_level("INFO", logger="kdrun")
    bundle = load_cifar100(str(root), download=True)
    assert bundle.train_targets.tolist() == published["labels"]["train"] and bundle.info.num_test == 5
    assert md5(root / "cifar-100-python.tar.gz") == published["archive"].md5  # kept, like torchvision
    assert not [p for p in root.iterdir() if p.name.endswith(".part")]  # no temp file left
    assert "downloading CIFAR-100 from http://127.0.0.1" in caplog.text


def test_second_load_does_not_download(tmp_path, published, monkeypatch):
    from kdrun.data import download

    load_cifar100(str(tmp_path), download=True)
    monkeypatch.setattr(download, "_download", lambda *a: pytest.fail("downloaded again"))
    assert load_cifar100(str(tmp_path), download=True).info.num_train == 10


def test_a_present_archive_is_checked_and_extracted_offline(tmp_path, published):
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-100-python.tar.gz").write_bytes(published["tarball"].read_bytes())
    assert load_cifar100(str(root), download=False).info.num_train == 10


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, published, monkeypatch):
    monkeypatch.setitem(cifar.ARCHIVES, "cifar100", dataclasses.replace(published["archive"], md5="0" * 32))
    root = tmp_path / "cache"
    with pytest.raises(KdrunError) as e:
        load_cifar100(str(root), download=True)
    assert_one_line_naming(e, "wrong md5", "CIFAR-100", "dataset=digits")
    assert list(root.iterdir()) == []  # neither the archive nor a temp file nor extracted files


def test_offline_stops_within_seconds_naming_where_to_put_the_archive(tmp_path, published, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on: connection refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-100-python.tar.gz"
    monkeypatch.setitem(cifar.ARCHIVES, "cifar100", dataclasses.replace(published["archive"], url=url))
    root = tmp_path / "cache"
    t0 = time.monotonic()
    with pytest.raises(KdrunError) as e:
        load_cifar100(str(root), download=True)
    assert time.monotonic() - t0 < 5
    assert_one_line_naming(e, "cannot download CIFAR-100", "cifar-100-python.tar.gz", str(root), "dataset=digits")
    assert not root.exists()  # nothing created


def test_a_read_only_data_folder_names_the_setting_that_moves_it(tmp_path, published):
    """A read-only tmpfs as the data folder (as under a read-only HOME), where this machine lets the test mount one."""
    import subprocess

    root = tmp_path / "ro"
    root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(root)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        with pytest.raises(KdrunError) as e:
            load_cifar100(str(root), download=True)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
    assert_one_line_naming(e, "read-only", str(root), "KDRUN_DATA", "paths.data")
    assert "paths.outputs" not in str(e.value)


def test_planted_pickle_is_refused_before_it_is_unpickled(tmp_path, published):
    """A file with the right name but not the published content never reaches pickle.load."""
    root = tmp_path / "root"
    load_cifar100(str(root), download=True)
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (root / "cifar-100-python" / "train").write_bytes(pickle.dumps({"data": Payload()}))
    with pytest.raises(KdrunError) as e:
        load_cifar100(str(root), download=True)
    assert_one_line_naming(e, str(root / "cifar-100-python" / "train"), "md5", "not the published")
    assert not marker.exists()


def test_published_checksums_are_torchvisions():
    from torchvision.datasets import CIFAR10, CIFAR100

    for name, cls in (("cifar10", CIFAR10), ("cifar100", CIFAR100)):
        archive = cifar.ARCHIVES[name]
        assert archive.md5 == cls.tgz_md5 and archive.url.startswith("https://")
        assert dict(archive.files) == {**dict(cls.train_list), **dict(cls.test_list), cls.meta["filename"]: cls.meta["md5"]}


def test_unverified_files_are_fingerprinted_verified_ones_are_not(tmp_path, published):
    """Cached teachers are keyed by the files of a user's own (unverified) CIFAR, not by a published one's place."""
    load_cifar100(str(tmp_path / "a"), download=True)
    assert load_cifar100(str(tmp_path / "a")).fingerprint is None
    write_cifar100(tmp_path / "b", n_train=12)
    own = load_cifar100(str(tmp_path / "b"), verify=False).fingerprint
    assert own is not None and str((tmp_path / "b").resolve()) in own
