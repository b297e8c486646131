"""A parallel sweep's workers are started, warmed and used for the torch checks before Hydra launches
(kdrun/sweep_workers.py): Hydra's joblib launcher must find that very pool, and the sweep's own process
must not import torch."""

from __future__ import annotations

import os

import pytest
from conftest import compose_config

from kdrun.sweep_workers import joblib_settings, prepare_worker, start_workers

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")


def _launcher(n_jobs: int):
    return compose_config(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"], hydra=True).hydra.launcher


def test_hydras_joblib_launcher_reuses_the_warmed_workers():
    """The launcher's own code path (its kwargs, its processing, ``joblib.Parallel``): the jobs run in
    the processes start_workers warmed, not in a second pool."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    launcher = _launcher(2)
    warmed = start_workers(launcher, 2, ["json"], [])
    assert len(set(warmed)) == 2 and os.getpid() not in warmed
    hydra_kwargs = {k: v for k, v in launcher.items() if k != "_target_"}  # JoblibLauncher(**kwargs).joblib
    hydra_kwargs["backend"] = "loky"
    process_joblib_cfg(hydra_kwargs)
    assert hydra_kwargs == joblib_settings(launcher)
    ran_in = Parallel(**hydra_kwargs)(delayed(os.getpid)() for _ in range(4))
    assert set(ran_in) <= set(warmed)


def test_the_first_worker_checks_the_pairs_and_reports_one_line():
    bad = compose_config(["method=at", "teacher=resnet20", "student=mlp", "dataset=digits"])
    bad_job = bad.copy()
    pid, error = prepare_worker(0, [], [bad_job], None)  # in this process: the same function a worker runs
    assert pid == os.getpid() and "method=at needs spatial feature maps" in error and "\n" not in error
    assert prepare_worker(1, [], [bad_job], None)[1] == ""  # the others only import
    assert prepare_worker(0, [], [compose_config(["dataset=digits", "teacher=mlp", "student=mlp"])], None)[1] == ""
