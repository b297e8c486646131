"""A parallel sweep's workers are started, warmed and used for the torch checks before Hydra launches
(kdrun/config/sweep_workers.py): Hydra's joblib launcher must find that very pool, the sweep's own process
must not import torch, and the checks' result is awaited before any job starts."""

from __future__ import annotations

import os

import pytest
from conftest import compose_config

from kdrun.config.sweep_workers import (WorkerCheckFailed, await_workers, joblib_settings, meet, prepare_worker,
                                 start_workers)

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def _launcher(n_jobs: int):
    return compose_config(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"], hydra=True).hydra.launcher


def test_hydras_joblib_launcher_reuses_the_warmed_workers():
    """The launcher's own code path (its kwargs, its processing, ``joblib.Parallel``): the jobs run in
    the processes start_workers warmed, not in a second pool."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    launcher = _launcher(2)
    start_workers(launcher, 2, ["json"], [])
    warmed = await_workers()
    assert len(set(warmed)) == 2 and os.getpid() not in warmed
    hydra_kwargs = {k: v for k, v in launcher.items() if k != "_target_"}  # JoblibLauncher(**kwargs).joblib
    hydra_kwargs["backend"] = "loky"
    process_joblib_cfg(hydra_kwargs)
    assert hydra_kwargs == joblib_settings(launcher)
    ran_in = Parallel(**hydra_kwargs)(delayed(os.getpid)() for _ in range(4))
    assert set(ran_in) <= set(warmed)


def test_a_warm_up_task_waits_until_every_worker_has_one(tmp_path):
    """A worker that warmed fast must not take a second warm-up task while another stays cold (it did on a
    loaded machine: both tasks ran in one process): each task waits until every worker has checked in."""
    import threading
    import time

    done = threading.Event()
    threading.Thread(target=lambda: (meet(str(tmp_path), 2), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # alone: still waiting
    (tmp_path / "424242").touch()  # the other worker checks in
    assert done.wait(10)
    alone = tmp_path / "alone"
    alone.mkdir()
    start = time.monotonic()
    meet(str(alone), 3, timeout=0.2)
    assert 0.2 <= time.monotonic() - start < 5  # a worker that never came does not hold the sweep


def test_the_first_worker_checks_the_pairs_and_reports_one_line():
    bad = compose_config(["method=at", "teacher=resnet20", "student=mlp", "dataset=digits"])
    bad_job = bad.copy()
    pid, error = prepare_worker(0, [], [bad_job], None)  # in this process: the same function a worker runs
    assert pid == os.getpid() and "method=at needs spatial feature maps" in error and "\n" not in error
    assert prepare_worker(1, [], [bad_job], None)[1] == ""  # the others only import
    assert prepare_worker(0, [], [compose_config(["dataset=digits", "teacher=mlp", "student=mlp"])], None)[1] == ""


def test_a_failed_check_is_raised_where_the_sweep_awaits_its_workers():
    """start_workers returns at once (Hydra composes the sweep meanwhile); the first worker's one-line
    error stops the sweep at await_workers, which Hydra's callbacks cannot swallow (not an Exception)."""
    bad = compose_config(["method=at", "teacher=resnet20", "student=mlp", "dataset=digits"])
    start_workers(_launcher(2), 2, [], [bad])
    with pytest.raises(WorkerCheckFailed, match="method=at needs spatial feature maps") as failed:
        await_workers()
    assert "\n" not in str(failed.value) and not isinstance(failed.value, Exception)
    assert await_workers() == []  # awaited once: a second sweep in this process starts its own


def test_the_sweep_config_awaits_the_workers_before_launching():
    callbacks = compose_config(["hydra/launcher=joblib"], hydra=True).hydra.callbacks
    assert callbacks.await_workers._target_ == "kdrun.config.sweep_workers.AwaitWorkers"


def test_a_warmed_worker_resolves_kdruns_interpolations_in_the_pair_checks():
    """The workers leave kdrun's config nodes to the jobs (kdrun/config/store.py), not its resolvers:
    mnist1d's ``root: ${kdrun.data_root:}`` is resolved by the check before any job has run."""
    job = compose_config(["dataset=mnist1d", "teacher=cnn1d", "student=mlp"])
    assert str(job.dataset._get_node("root")._value()) == "${paths.data}"
    assert str(job.paths._get_node("data")._value()) == "${kdrun.data_root:}"
    start_workers(_launcher(2), 2, [], [job])
    assert len(await_workers()) == 2
