"""What a run takes from the machine is checked before any data work (kdrun/config/resources.py): a transfer
set that cannot fit in memory and more data-parallel processes than cores (or memory) are one line with the
number, before anything is generated, spawned or created."""

from __future__ import annotations

import os

import pytest
from conftest import TINY, run_kdrun
from omegaconf import OmegaConf

import kdrun.config.resources as resources
from kdrun.cli import CONFIG_DIR  # registers the generated config options
from kdrun.config.preflight import preflight
from kdrun.engine.speed import cpu_cores
from kdrun.errors import KdrunError

GIB = resources.GIB


@pytest.fixture(autouse=True)
def one_job_at_once(monkeypatch):
    """Whatever an earlier test of this process left: these runs are single jobs (kdrun/engine/speed.py)."""
    from kdrun.environment import PARALLEL_JOBS_ENV

    monkeypatch.delenv(PARALLEL_JOBS_ENV, raising=False)


def _refused(args: list[str], tmp_path) -> str:
    with pytest.raises(KdrunError) as e:
        preflight(CONFIG_DIR, [*args, f"hydra.run.dir={tmp_path / 'run'}"])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()
    return str(e.value)


def test_a_transfer_set_larger_than_memory_is_refused_with_the_number(tmp_path):
    """The issue's case (1e9 MNIST-1D inputs: 149 GiB, twice while generated) on the real machine."""
    before = sorted(os.listdir(os.environ["XDG_CACHE_HOME"]))
    said = _refused(["debug=fast", "distill.transfer_size=1000000000"], tmp_path)
    assert said.startswith("distill.transfer_size=1000000000 needs about 298.7 GiB of memory (1000000000 generated "
                           "inputs of 149.0 GiB in float32"), said
    assert "GiB available; use distill.transfer_size<=" in said and said.endswith("or 0 to distil on the labeled set")
    assert sorted(os.listdir(os.environ["XDG_CACHE_HOME"])) == before  # nothing generated


def test_the_command_stops_in_one_line_with_exit_2(workdir):
    proc = run_kdrun(["debug=fast", "distill.transfer_size=1000000000"], workdir, check=False)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("kdrun: error: distill.transfer_size=1000000000 needs about 298.7 GiB of memory")
    assert not (workdir / "outputs").exists() and not (workdir / "data").exists()


def test_a_swept_transfer_size_is_checked_for_each_value(tmp_path):
    said = _refused(["-m", "debug=fast", "distill.transfer_size=0,1000000000"], tmp_path)
    assert said.startswith("distill.transfer_size=1000000000 needs about")


def test_more_processes_than_cores_is_refused(tmp_path):
    """``device.nproc=64`` on a 2-core machine started 64 processes: here one more than this machine's cores."""
    nproc = cpu_cores() + 1
    said = _refused([*TINY, "device=cpu", f"device.nproc={nproc}", f"trainer.batch_size={8 * nproc}"], tmp_path)
    assert said == (f"device.nproc={nproc} is more processes than the {cpu_cores()} CPU cores this process may use "
                    f"(each rank would only wait for the others, with its own copy of the data); use "
                    f"device.nproc<={cpu_cores()}")


def _job(**distill) -> OmegaConf:
    return OmegaConf.create({"device": {"type": "cpu", "nproc": distill.pop("nproc", 1)},
                             "distill": {"transfer_size": 0, "transfer_set": None, **distill},
                             "dataset": {"_target_": "kdrun.data.mnist1d.load_mnist1d", "root": "data"}})


def test_processes_that_do_not_fit_in_memory_are_refused(monkeypatch):
    """Memory, not cores: 2 ranks and the process that spawns them need at least 3 x 0.7 GiB."""
    monkeypatch.setattr(resources, "_check_processes", lambda nproc, device_type: None)  # cores: the test above
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * GIB)
    with pytest.raises(KdrunError) as e:
        resources.check_resources(_job(nproc=2))
    assert str(e.value) == ("device.nproc=2 needs about 2.1 GiB of memory (3 processes of at least 0.7 GiB) but this "
                            "machine has 2.0 GiB available; use device.nproc<=1")
    resources.check_resources(_job(nproc=1))


def test_jobs_at_once_each_hold_the_transfer_set(monkeypatch):
    """A parallel sweep's jobs each generate and hold it: what fits one job at a time may not fit two."""
    monkeypatch.setattr(resources, "available_memory", lambda: 4 * GIB)
    size = 8_000_000  # 1.19 GiB of float32 signals of 1x40
    resources.check_resources(_job(transfer_size=size), at_once=1)  # 0.7 + 2 x 1.19 GiB
    with pytest.raises(KdrunError, match=r"^distill.transfer_size=8000000 needs about 5.0 GiB of memory .* held by 2 "
                                         r"processes and once more while generated"):
        resources.check_resources(_job(transfer_size=size), at_once=2)
    resources.check_resources(_job(transfer_size=size), at_once=2, launcher="hydra_plugins.hydra_submitit_launcher."
                              "submitit_launcher.SlurmLauncher")  # its jobs run on a Slurm node, not here


def test_the_machines_memory_is_read():
    available = resources.available_memory()
    assert available is not None and 0 < available < 2**50
