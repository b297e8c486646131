"""Data-parallel training on CPU with gloo and 2 processes: the collectives kdrun adds, and whole runs
(``device.nproc=2`` and ``torchrun``) against one process.

Tolerance: with full global batches (``trainer.max_train_batches`` keeps the padded last batch out)
and a model without batch norm, a 2-process run computes the same gradients as one process up to
floating-point summation order: losses agree to 1e-4 (relative), accuracies to 0.5 points (two
test samples; in practice they are identical). docs/scaling.md lists what makes them differ otherwise.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, read_metrics, read_results, run_kdrun
from in_process import skip_run_plots

from kdrun.data.base import TensorData
from kdrun.distributed.data import eval_shard, per_rank_batch_size
from kdrun.runs.launch import gpu_for_job
from kdrun.errors import KdrunError

LOSS_RTOL, TOP1_ATOL = 1e-4, 0.5
# Quantization-aware training: each rank's observers measure activation ranges on its own shard (like
# batch-norm statistics), so the fake-quantized model differs slightly from one process's. Its rows are
# not compared with one process; the data-parallel run must still complete them (deployed by rank 0).
PER_RANK_STATISTICS = ("quantized",)
# A teacher, its distilled student and the int8 row: a stage trained from scratch, one taught by a teacher
# rank 0 trained, and one fine-tuned from that student and deployed by rank 0 (the baseline and
# self-distilled rows run the same code paths again).
RUN = [*TINY, "trainer.epochs=2", "trainer.max_epochs=2", "device=cpu", "method._target_=kdrun_test_methods.RowBank",
       "distill.beta=1", "stages=[teacher,distilled,quantized]"]
ENV = {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}


def _two_ranks(rank: int, store: str, out: str) -> None:
    """One process group of two ranks for both tests below (one spawn of two interpreters, not two)."""
    from kdrun.distributed import state

    state.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    _collectives(rank, out)
    _crd_rank(rank, out)
    state.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The folder where each of two spawned ranks wrote what it computed (rank<r>.json, crd<r>.pt)."""
    out = tmp_path_factory.mktemp("ranks")
    torch.multiprocessing.start_processes(_two_ranks, args=(str(out / "store"), str(out)), nprocs=2,
                                          start_method="spawn")
    return out


def _collectives(rank: int, out: str) -> None:
    """Each rank holds a different number of rows and its own shard of a batch."""
    from kdrun.distributed import all_gather_rows, all_reduce_mean
    from kdrun.engine.data_parallel import average_buffers
    from kdrun.engine.meters import EpochMeter

    rows = torch.arange(3 - rank, dtype=torch.float32) + 10 * rank  # rank 0: 3 rows, rank 1: 2 rows
    index = torch.arange(3 - rank) + 100 * rank
    gathered_rows, gathered_index = all_gather_rows(rows.unsqueeze(1), index)
    mean = all_reduce_mean(torch.tensor([float(rank)]))
    meter = EpochMeter()  # samples 0..3 on rank 0, 4..5 on rank 1
    logits = torch.eye(2)[[0, 1, 0, 1, 0, 0][rank * 4: 4 + rank * 2]]
    targets = torch.tensor([0, 1, 1, 1, 0, 1][rank * 4: 4 + rank * 2])
    meter.update(len(targets), logits, targets, {"loss": torch.tensor(float(rank + 1))})
    meter.reduce_across_ranks()
    bn = torch.nn.BatchNorm1d(2)
    bn.running_mean.fill_(float(rank))
    average_buffers(bn)
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "rows": gathered_rows.squeeze(1).tolist(), "index": gathered_index.tolist(), "mean": mean.item(),
        "meter": meter.compute(), "bn": bn.running_mean.tolist()}))


def test_collectives_across_two_ranks(two_ranks: Path):
    r0, r1 = (json.loads((two_ranks / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank ends with the same numbers
    assert r0["rows"] == [0.0, 1.0, 2.0, 10.0, 11.0] and r0["index"] == [0, 1, 2, 100, 101]
    assert r0["mean"] == 0.5 and r0["bn"] == [0.5, 0.5]
    # the whole epoch: 6 samples, 4 correct, loss (4 * 1 + 2 * 2) / 6
    assert r0["meter"]["top1"] == pytest.approx(100 * 4 / 6) and r0["meter"]["loss"] == pytest.approx(8 / 6)


def _crd_method():
    """A CRD whose banks and embeddings every process builds alike (seeded), and a global batch of 8."""
    from kdrun.data.base import DataInfo
    from kdrun.methods.base import MethodContext
    from kdrun.methods.crd import CRD
    from kdrun.models.features import FeatureInfo

    info = FeatureInfo(stage_channels=(6,), stage_sizes=((),), pooled_dim=6, num_classes=3)
    targets = torch.arange(30) % 3
    torch.manual_seed(0)
    method = CRD(MethodContext(info, info, DataInfo("test", "signal", 1, (40,), 3, 30, 10), targets), feat_dim=4,
                 nce_k=5)
    g = torch.Generator().manual_seed(1)
    return method, torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g), torch.randperm(30, generator=g)[:8]


def _crd_step(method, s, t, index) -> None:
    from kdrun.engine.task import Batch, Progress
    from kdrun.models.features import Features

    method(Features(s, pooled=s), Features(t, pooled=t), Batch(s, torch.zeros(len(s)), index), Progress(1, 1))


def _crd_rank(rank: int, out: str) -> None:
    method, s, t, index = _crd_method()
    half = slice(4 * rank, 4 * rank + 4)  # each rank holds half of the global batch
    torch.manual_seed(10 + rank)  # and draws its own negatives
    _crd_step(method, s[half], t[half], index[half])
    torch.save({k: v for k, v in method.state_dict().items() if k.startswith("memory.")}, Path(out, f"crd{rank}.pt"))


def test_crd_memory_banks_stay_equal_across_ranks(two_ranks: Path):
    r0, r1 = (torch.load(two_ranks / f"crd{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # every rank holds the same banks and constants
    one, s, t, index = _crd_method()
    _crd_step(one, s, t, index)  # one process, the whole batch
    # the banks saw the whole global batch on every rank, exactly as in one process
    for bank in ("memory.memory_s", "memory.memory_t"):
        assert torch.allclose(r0[bank], one.state_dict()[bank], atol=1e-6)
        assert not torch.equal(r0[bank][index], _crd_method()[0].state_dict()[bank][index])  # rows were written


def test_batches_and_evaluation_shards():
    assert per_rank_batch_size(64, 2) == 32
    with pytest.raises(KdrunError, match="trainer.batch_size=64 is the global batch"):
        per_rank_batch_size(64, 3)
    data = TensorData(torch.arange(11.0), torch.arange(11))
    shards = [eval_shard(data, batch_size=4, max_batches=2, rank=r, world_size=3) for r in range(3)]
    # capped at 2 batches of 4 *before* sharding (as one process evaluates), each sample once
    assert sorted(int(y) for s in shards for y in s.y) == list(range(8))
    assert eval_shard(data, 4, None, 0, 1) is data


def _train_on_ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the children of a job started in the background
    time.sleep(600)


def test_an_interrupted_run_stops_its_spawned_ranks(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM to the process that spawned the ranks: it ends them before it exits (it would
    wait for them at exit while they trained on), even ranks that ignore SIGINT."""
    from omegaconf import OmegaConf

    from kdrun.runs import launch

    fork = multiprocessing.get_context("fork")
    ranks = [fork.Process(target=_train_on_ignoring_sigint), fork.Process(target=time.sleep, args=(0.5,))]
    for rank in ranks:
        rank.start()

    class Interrupted:  # what torch's start_processes(join=False) returns, its join() interrupted
        processes = ranks

        def join(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(torch.multiprocessing, "start_processes", lambda *a, **k: Interrupted())
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        launch.spawn(lambda cfg, run_dir: {}, OmegaConf.create({"device": {"backend": "gloo"}}), tmp_path, 2)
    assert not any(rank.is_alive() for rank in ranks)
    assert ranks[1].exitcode == 0 and ranks[0].exitcode == -signal.SIGTERM  # one stopped by itself
    assert time.monotonic() - started < 5  # a moment's grace, then SIGTERM: not the 5 s to SIGKILL


def test_sweep_jobs_spread_over_the_gpus():
    assert [gpu_for_job(None, num, 4) for num in range(6)] == [0, 1, 2, 3, 0, 1]
    assert gpu_for_job(None, None, 4) is None  # a single run: the first GPU
    assert gpu_for_job(None, 3, 1) is None  # a Slurm job that sees only its own GPU
    assert gpu_for_job(2, 5, 4) == 2  # device.index wins


def _compare(one: Path, other: Path) -> None:
    a, b = read_metrics(one), read_metrics(other)
    assert [(r["stage"], r["epoch"]) for r in a] == [(r["stage"], r["epoch"]) for r in b]
    for x, y in zip(a, b):
        if x["stage"].startswith(PER_RANK_STATISTICS):
            continue
        for key in x:
            if key.endswith("top1"):
                assert abs(x[key] - y[key]) <= TOP1_ATOL, (x["stage"], key, x[key], y[key])
            elif key.startswith(("train_", "test_loss")):
                assert math.isclose(x[key], y[key], rel_tol=LOSS_RTOL, abs_tol=1e-6), (x["stage"], key)
    bank_a, bank_b = (torch.load(d / "checkpoints" / "distilled" / "last.pt", weights_only=True)["task"]
                      for d in (one, other))
    # the memory bank saw the *global* batches on rank 0, as in one process
    assert torch.equal(bank_a["method.seen"], bank_b["method.seen"]) and bank_a["method.seen"].sum() == 2 * 3 * 64
    assert torch.allclose(bank_a["method.bank"], bank_b["method.bank"], atol=1e-5)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: the same run in one process (this one)."""
    workdir = tmp_path_factory.mktemp("one")
    with pytest.MonkeyPatch.context() as mp:
        skip_run_plots(mp)  # tests/in_process.py says why
        run_kdrun([*RUN, "name=one", "paths.cache=cache1"], workdir, env=ENV)
    return workdir / "outputs" / "runs" / "one"


def _matches_one_process(run: Path, one: Path) -> None:
    _compare(one, run)
    assert read_results(run)["status"] == "completed"
    # rank 0 alone wrote: one event file, one line per stage epoch, one copy of every log line
    assert len(list((run / "tb").iterdir())) == 1
    assert len(read_metrics(run)) == len(read_metrics(one))
    assert (run / "kdrun.log").read_text().count("] distilled epoch 2/2") == 1


# Two tests, not one: under -n 2 they run side by side (each ~half of the old one's time).
@pytest.mark.slow  # the collectives and CRD's banks across two ranks: the in-process tests above
def test_spawned_processes_match_one(one_process: Path, workdir: Path):
    """``device.nproc=2``: kdrun spawns the ranks."""
    spawned = run_kdrun([*RUN, "name=two", "device.nproc=2", "paths.cache=cache2"], workdir, env=ENV)
    assert "spawning 2 processes (gloo)" in spawned.stderr
    _matches_one_process(workdir / "outputs" / "runs" / "two", one_process)


@pytest.mark.slow  # the collectives and CRD's banks across two ranks: the in-process tests above
def test_torchrun_processes_match_one(one_process: Path, workdir: Path):
    """``torchrun``: the ranks start kdrun, and all of them use rank 0's automatically named folder."""
    env = {**os.environ, **ENV, "KDRUN_DATA": str(workdir / "data")}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "kdrun",
                *RUN, "paths.cache=cache3"]
    proc = subprocess.run(torchrun, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (started,) = (workdir / "outputs" / "runs").iterdir()  # all ranks used rank 0's folder
    assert "data-parallel run: 2 processes (gloo)" in (started / "kdrun.log").read_text()
    _matches_one_process(started, one_process)
