"""Hydra's submitit launcher (the Slurm path), run here with its local executor: jobs run as separate
submitit processes, write into the sweep's folders, and the sweep ends with the aggregated report;
a job with two tasks trains data-parallel, as a Slurm job with tasks_per_node=2 would."""

from __future__ import annotations

import pytest
from conftest import TINY, read_results, run_kdrun

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


@pytest.mark.slow  # submitit processes; sweeps with the basic launcher: test_sweeps.py
def test_submitit_local_sweep(workdir):
    proc = run_kdrun(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "name=slurmish",
                      *TINY, "stages=[teacher,distilled]", "distill.T=1,4"], workdir)
    sweep = workdir / "outputs" / "sweeps" / "slurmish"
    for T in (1, 4):
        results = read_results(sweep / f"distill.T={T}")
        assert results["status"] == "completed" and results["distill"]["T"] == T
    logs = list((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # each job ran in its own submitit process
    assert "2 runs: 2 completed" in proc.stdout and (sweep / "report.md").is_file()
    sources = sorted(read_results(sweep / f"distill.T={T}")["stages"]["teacher"]["source"] for T in (1, 4))
    assert sources == ["cache", "trained"]


@pytest.mark.slow  # two submitit tasks; data-parallel in-process: test_distributed.py
def test_submitit_tasks_train_data_parallel(workdir):
    run_kdrun(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
               "hydra.launcher.tasks_per_node=2", "name=tasks", *TINY, "stages=[teacher,distilled]", "device=cpu",
               "distill.T=4"], workdir,
              env={"OMP_NUM_THREADS": "1"})
    (job,) = [p.parent for p in (workdir / "outputs" / "sweeps" / "tasks").glob("*/results.json")]
    assert read_results(job)["status"] == "completed"
    log = (job / "kdrun.log").read_text()
    assert "data-parallel run: 2 processes (gloo)" in log and log.count("] distilled epoch 1/1") == 1
