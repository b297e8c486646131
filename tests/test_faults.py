"""Fault injection: each way a run can go wrong is made to happen, and we check that kdrun says so in
one line, exits non-zero, and loses or corrupts nothing already on disk.

Most cases run the real ``kdrun`` entry point in this process (``kdrun.cli.main``: preflight, Hydra,
the pipeline), on tiny models; a second process is started only where the case is about processes
(two of them on one run folder, a lock left by a killed one). Disk full and read-only folders use a
small tmpfs where this machine lets the test mount one (root in a container usually may), else a
patched write raising the same ``OSError``; each test says which it used.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY, kdrun_in_process
from kdrun.engine.finite import is_divergence
from kdrun.errors import KdrunError

# A tiny run: teacher and baseline only, no timing, one short epoch each.
FAST = [*TINY, "stages=[teacher,baseline]", "measure.enabled=false"]
TWO_EPOCHS = ["trainer.epochs=2", "trainer.max_epochs=2"]


def kdrun(args: list[str], capsys) -> tuple[int, str]:
    """Run ``kdrun <args>`` in this process; (exit status, stderr)."""
    code = kdrun_in_process(args)
    return code, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("kdrun: error:")]


def assert_one_line(err: str, *words: str) -> str:
    """Exactly one error line, no traceback, naming every word."""
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def here(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(tmp_path / "data"))
    return tmp_path


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its content: what must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# --- non-finite values ---------------------------------------------------------------------------


def test_diverging_run_stops_with_one_line_and_keeps_last_good_checkpoint(here, capsys):
    # lr 1e8 on the tiny MLP: epoch 1 ends with huge but finite weights, epoch 2's first loss is NaN
    run_dir = here / "run"
    code, err = kdrun([*FAST, *TWO_EPOCHS, "trainer.lr=1e8", f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2
    line = assert_one_line(err, "stage teacher", "epoch 2, step 1", "'ce'", "not finite", "trainer.lr",
                           "distill.beta", "last.pt")
    assert results(run_dir)["status"] == "failed" and "not finite" in results(run_dir)["error"]
    assert is_divergence(results(run_dir)["error"])  # what a study counts as diverged (scripts/cpu_study.py)
    saved = torch.load(run_dir / "checkpoints" / "teacher" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and all(torch.isfinite(t).all() for t in saved["model"].values()), line
    cache = here / "outputs" / "cache"
    assert not list(cache.glob("*/model.pt")), "a diverged stage was cached"


def test_finite_watch_names_the_first_bad_term_and_step():
    from kdrun.engine.finite import FiniteWatch, NonFiniteError, is_divergence

    watch = FiniteWatch()
    one = torch.tensor(1.0)
    watch.record(0, {"loss": one, "ce": one, "kd": one})
    watch.record(1, {"loss": one * float("nan"), "ce": one, "kd": one * float("inf")})
    with pytest.raises(NonFiniteError) as e:
        watch.check(epoch=3)
    assert "epoch 3, step 2" in str(e.value) and "'kd'" in str(e.value)
    assert is_divergence(str(e.value)) and is_divergence(str(e.value.in_stage("distilled", "last.pt")))
    assert not is_divergence(None) and not is_divergence("OSError: No space left on device: results.json")
    watch.record(2, {"loss": one})
    watch.check(epoch=3)  # the next interval starts clean


def test_tables_show_no_number_for_non_finite_values_and_no_delta_for_failed_runs():
    from kdrun.report.aggregate import summarize
    from kdrun.report.jobs import Job
    from kdrun.report.table import markdown_table, table_rows

    stages = {"baseline": {"last_top1": 50.0, "best_top1": 50.0, "arch": "mlp"},
              "distilled": {"last_top1": float("nan"), "best_top1": 60.0, "arch": "mlp"}}
    rows = table_rows({"status": "completed", "stages": stages})
    assert rows[1]["top1"] is None and "nan" not in markdown_table(rows).lower()
    ok = {"last_top1": 55.0, "best_top1": 55.0}
    failed = table_rows({"status": "failed", "stages": {**stages, "distilled": ok}})
    assert failed[1]["delta_vs_baseline"] is None
    jobs = [Job(Path(f"j{i}"), status, None, {"status": status, "stages": {**stages, "distilled": ok}},
                [f"seed={i}"]) for i, status in enumerate(("failed", "failed"))]
    assert summarize(jobs).groups[0].delta.mean is None


# --- the cache -----------------------------------------------------------------------------------


def _checkpoint(path: Path, value: float) -> Path:
    torch.save({"model": {"w": torch.full((3,), value)}, "arch": "mlp"}, path)
    return path


OUTCOME = {"best_top1": 50.0, "last_top1": 50.0, "best_epoch": 1, "epochs": 1, "wall_time": 0.1, "history": []}


def test_cache_stores_only_finite_models_and_sets_aside_bad_entries(tmp_path, caplog):
    from kdrun.engine.cache import StageCache

    cache = StageCache(tmp_path / "cache")
    assert cache.put("nan", _checkpoint(tmp_path / "nan.pt", float("nan")), OUTCOME) is None
    assert not (tmp_path / "cache" / "nan").exists()
    model = cache.put("good", _checkpoint(tmp_path / "good.pt", 1.0), OUTCOME)
    assert cache.get("good")[0] == model and not temp_files(tmp_path / "cache")

    data = bytearray(model.read_bytes())
    data[-30] ^= 0xFF  # one flipped byte
    model.write_bytes(bytes(data))
    assert cache.get("good") is None  # not trusted ...
    aside = list((tmp_path / "cache").glob("good.bad-*"))
    assert len(aside) == 1 and (aside[0] / "model.pt").read_bytes() == bytes(data)  # ... kept for inspection
    assert "SHA-256" in caplog.text and "training it again" in caplog.text
    assert cache.put("good", _checkpoint(tmp_path / "good.pt", 1.0), OUTCOME) is not None  # and no block

    old = tmp_path / "cache" / "old"
    old.mkdir()
    _checkpoint(old / "model.pt", 1.0)
    (old / "outcome.json").write_text(json.dumps(OUTCOME))  # an entry without a content hash
    assert cache.get("old") is None and not old.exists()


def test_corrupt_cache_entry_is_retrained_by_the_next_run(here, capsys):
    args = [*TINY, "stages=[teacher]", "measure.enabled=false"]
    assert kdrun([*args, "name=a"], capsys)[0] == 0
    (entry,) = [p for p in (here / "outputs" / "cache").iterdir() if p.is_dir()]
    (entry / "model.pt").write_bytes(b"not a checkpoint")
    code, err = kdrun([*args, "name=b"], capsys)
    assert code == 0 and not error_lines(err)
    log = (here / "outputs" / "runs" / "b" / "kdrun.log").read_text()
    assert "not usable" in log and "training it again" in log
    assert results(here / "outputs" / "runs" / "b")["stages"]["teacher"]["source"] == "trained"
    assert kdrun([*args, "name=c"], capsys)[0] == 0  # the retrained entry is verified and reused
    assert results(here / "outputs" / "runs" / "c")["stages"]["teacher"]["source"] == "cache"


def test_a_corrupt_checkpoint_says_what_to_do(tmp_path):
    from kdrun.io import load_checkpoint

    path = tmp_path / "last.pt"
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(KdrunError) as e:
        load_checkpoint(path, "checkpoint of stage teacher", remedy="delete it to train the stage again")
    assert str(path) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(KdrunError, match="replace it with an intact copy"):
        load_checkpoint(path, "teacher.checkpoint")


def _image_folder(root: Path, n: int) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (40 * i, 100 if c == "a" else 0, 0)).save(root / split / c / f"{i}.png")
    return root


def test_another_imagefolder_root_is_another_cache_key(tmp_path):
    from conftest import compose_config
    from kdrun.tasks.build import supervised_cache_key
    from kdrun.data.imagefolder import load_imagefolder

    a, b = _image_folder(tmp_path / "a", 2), _image_folder(tmp_path / "b", 2)
    cfg = compose_config(["dataset=imagefolder", f"dataset.root={a}", "teacher=mlp"])
    keys = {supervised_cache_key(cfg, cfg.teacher, "imagefolder", data_fingerprint=load_imagefolder(str(root),
                                 image_size=8).fingerprint) for root in (a, b)}
    assert len(keys) == 2
    (a / "train" / "a" / "extra.png").write_bytes((a / "train" / "a" / "0.png").read_bytes())
    grown = load_imagefolder(str(a), image_size=8).fingerprint
    assert supervised_cache_key(cfg, cfg.teacher, "imagefolder", data_fingerprint=grown) not in keys


def test_a_run_on_another_imagefolder_root_trains_its_own_teacher(here, capsys):
    args = ["debug=fast", "dataset=imagefolder", "dataset.image_size=8", "teacher=mlp", "teacher.hidden=[8]",
            "stages=[teacher]", "measure.enabled=false"]
    sources = []
    for name, root in (("a", _image_folder(here / "a", 2)), ("b", _image_folder(here / "b", 3))):
        code, err = kdrun([*args, f"dataset.root={root}", f"name={name}"], capsys)
        assert code == 0, err
        sources.append(results(here / "outputs" / "runs" / name)["stages"]["teacher"]["source"])
    assert sources == ["trained", "trained"]  # B never reuses the teacher trained on A's images


# --- no pickles from data folders -----------------------------------------------------------------


class Planted:
    """Unpickling this creates a marker file: proof that code from the data folder ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickles_in_the_data_folder_never_run(tmp_path, monkeypatch):
    from kdrun.data import mnist1d

    marker = tmp_path / "pwned"
    folder = tmp_path / "data" / "mnist1d"
    folder.mkdir(parents=True)
    payload = {"x": np.zeros((4, 40)), "y": np.zeros(4, int), "x_test": np.zeros((2, 40)),
               "y_test": np.zeros(2, int), "evil": Planted(str(marker))}
    (folder / "mnist1d_seed42.pkl").write_bytes(pickle.dumps(payload))  # the old cache name
    np.savez(folder / "mnist1d_seed42.npz", x=np.array([Planted(str(marker))], dtype=object),
             y=np.zeros(1), x_test=np.zeros(1), y_test=np.zeros(1))  # object arrays are pickles inside
    np.save(folder / "transfer_seed42_n8.npy", np.array([Planted(str(marker))], dtype=object), allow_pickle=True)
    rng = np.random.default_rng(0)
    fresh = {"x": rng.normal(size=(20, 40)), "y": np.arange(20) % 10, "x_test": rng.normal(size=(10, 40)),
             "y_test": np.arange(10)}
    monkeypatch.setattr(mnist1d, "generate_mnist1d", lambda **kw: {**fresh, "x": rng.normal(size=(20, 40))})

    bundle = mnist1d.load_mnist1d(str(tmp_path / "data"))
    assert bundle.info.num_train == 20 and bundle.generate_inputs(8).shape == (8, 1, 40)
    assert not marker.exists()
    with np.load(folder / "mnist1d_seed42.npz", allow_pickle=False) as f:  # regenerated, pickle-free
        assert f["x"].shape == (20, 40)
    assert mnist1d.load_mnist1d(str(tmp_path / "data")).info.num_train == 20 and not marker.exists()


# --- one run folder, one process ------------------------------------------------------------------

HOLD = """
import sys, time
from kdrun.runs.lock import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_process_on_a_run_folder_is_refused_and_a_killed_holder_does_not_block(here, capsys):
    run_dir = here / "run"
    assert kdrun([*FAST, f"hydra.run.dir={run_dir}"], capsys)[0] == 0
    before = tree(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = kdrun([*FAST, f"hydra.run.dir={run_dir}"], capsys)
        assert code == 2
        assert_one_line(err, f"hydra.run.dir={run_dir}", f"PID {holder.pid}", "in use")
        after = tree(run_dir)
        assert {k: v for k, v in after.items() if not k.startswith((".hydra", "kdrun.log", ".kdrun.lock"))} == \
               {k: v for k, v in before.items() if not k.startswith((".hydra", "kdrun.log", ".kdrun.lock"))}
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel drops it
        holder.wait()
    code, err = kdrun([*FAST, f"hydra.run.dir={run_dir}"], capsys)  # a completed run: skipped, not blocked
    assert code == 0 and not error_lines(err)


def test_automatic_run_folder_names_never_collide(tmp_path):
    from kdrun.runs.lock import reserve_run_dir

    base = tmp_path / "runs" / "2026-01-01_00-00-00"
    got = [reserve_run_dir(base) for _ in range(3)]
    assert len(set(got)) == 3 and all(p.is_dir() for p in got) and got[0] == base


# --- writes that fail ------------------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 kB tmpfs (a real full disk), or None where mounting is not allowed."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_on_a_real_small_tmpfs_keeps_the_old_file(small_tmpfs):
    from kdrun.io import write_bytes_atomic

    if small_tmpfs is None:
        pytest.skip("cannot mount a tmpfs here; test_disk_full_during_training covers ENOSPC with a patched write")
    target = small_tmpfs / "results.json"
    write_bytes_atomic(target, b"old")
    with pytest.raises(KdrunError) as e:
        write_bytes_atomic(target, b"x" * 1_000_000, "the results")
    assert "the results" in str(e.value) and str(target) in str(e.value) and "full" in str(e.value)
    assert target.read_bytes() == b"old" and os.listdir(small_tmpfs) == ["results.json"]


def test_a_checkpoint_on_a_real_full_disk_is_one_line_and_keeps_the_old_one(small_tmpfs):
    """torch.save's zip writer meets ENOSPC as an OSError, then fails closing the archive with a
    RuntimeError ("unexpected pos"): the write is still a full disk, said in one line."""
    from kdrun.io import save_atomic

    if small_tmpfs is None:
        pytest.skip("cannot mount a tmpfs here; test_disk_full_during_training covers ENOSPC with a patched write")
    target = small_tmpfs / "last.pt"
    save_atomic({"epoch": 1}, target)
    with pytest.raises(KdrunError) as e:
        save_atomic({"epoch": 2, "w": torch.zeros(100_000)}, target, "a checkpoint")
    assert "\n" not in str(e.value) and str(target) in str(e.value) and "No space left on device" in str(e.value)
    assert torch.load(target, weights_only=True)["epoch"] == 1 and os.listdir(small_tmpfs) == ["last.pt"]


def test_sigterm_while_a_checkpoint_is_written_stays_an_interrupt(tmp_path, monkeypatch):
    """SIGTERM landing inside torch.save: its zip writer, stopped mid-archive, then raises a RuntimeError
    closing it ("unexpected pos 1216 vs 1110", seen when a killed joblib sweep's worker got its SIGTERM
    there). The write is an interruption (the run marked interrupted, not failed) and the old file stays."""
    from kdrun.interrupts import Terminated
    from kdrun.io import save_atomic

    real_save = torch.save

    def save(obj, f, *a, **kw):
        if obj.get("epoch") == 2:
            try:
                f.write(b"partial")
                raise Terminated(signal.SIGTERM)  # the signal handler, between two records
            finally:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1216 vs 1110")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    target = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, target)
    with pytest.raises(Terminated):
        save_atomic({"epoch": 2}, target, "a checkpoint")
    assert torch.load(target, weights_only=True)["epoch"] == 1 and os.listdir(tmp_path) == ["last.pt"]


def test_disk_full_during_training_is_one_line_and_loses_nothing(here, capsys, monkeypatch):
    """ENOSPC from a patched ``torch.save`` (the checkpoint write of epoch 2)."""
    real_save, calls = torch.save, []

    def save(obj, f, *a, **kw):
        calls.append(obj.get("epoch"))
        if obj.get("epoch") == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    run_dir = here / "run"
    code, err = kdrun([*FAST, *TWO_EPOCHS, "stages=[teacher]", f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2
    assert_one_line(err, "could not write a checkpoint", "No space left on device", "checkpoints/teacher/")
    monkeypatch.setattr(torch, "save", real_save)
    ckpts = run_dir / "checkpoints" / "teacher"
    assert torch.load(ckpts / "last.pt", weights_only=True)["epoch"] == 1 and not temp_files(run_dir)
    assert torch.load(ckpts / "best.pt", weights_only=True)["epoch"] == 1
    assert results(run_dir)["status"] == "failed"
    code, err = kdrun([*FAST, *TWO_EPOCHS, "stages=[teacher]", f"hydra.run.dir={run_dir}"], capsys)
    assert code == 0 and results(run_dir)["status"] == "completed"  # space freed: it resumes


def test_disk_full_while_writing_the_dataset_leaves_no_partial_file(tmp_path, monkeypatch):
    from kdrun.data import mnist1d

    def savez(file, **arrays):
        Path(file).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mnist1d, "generate_mnist1d", lambda **kw: {k: np.zeros((2, 40)) for k in mnist1d.ARRAYS})
    monkeypatch.setattr(mnist1d.np, "savez", savez)
    with pytest.raises(KdrunError) as e:
        mnist1d.load_mnist1d(str(tmp_path))
    assert "MNIST-1D" in str(e.value) and "mnist1d_seed42.npz" in str(e.value) and "\n" not in str(e.value)
    assert os.listdir(tmp_path / "mnist1d") == []


def test_read_only_output_folder_is_one_line_before_anything_runs(here, capsys, monkeypatch, tmp_path):
    """A read-only tmpfs as the output folder where mounting is allowed, else a patched ``os.access``."""
    outputs = tmp_path / "ro"
    outputs.mkdir()
    mounted = not subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(outputs)],
                                 capture_output=True).returncode
    if not mounted:
        import kdrun.config.preflight as preflight

        monkeypatch.setattr(preflight.os, "access", lambda path, mode: False)
        monkeypatch.setattr(preflight, "_read_only_fs", lambda path: True)
    try:
        code, err = kdrun([*FAST, f"paths.outputs={outputs}"], capsys)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(outputs)], check=False)
    assert code == 2
    assert_one_line(err, "read-only", str(outputs), "paths.outputs")


def test_write_error_names_path_and_what(tmp_path):
    from kdrun.errors import write_error

    for code, word in ((errno.ENOSPC, "full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission")):
        message = str(write_error(tmp_path / "x.pt", "a checkpoint", OSError(code, os.strerror(code))))
        assert "a checkpoint" in message and str(tmp_path / "x.pt") in message and word in message


# --- Ctrl-C ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop, code, said", [("ctrl-c", 130, "interrupted"),
                                               ("sigterm", 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_marks_the_run_interrupted_and_it_resumes(stop, code, said, here, capsys, monkeypatch):
    import kdrun.engine.fit as fit

    real = fit.train_one_epoch

    def interrupted(*args, **kwargs):
        if args[6] == 2:  # the epoch argument: stopped during epoch 2
            if stop == "ctrl-c":
                raise KeyboardInterrupt
            # kill <pid>, timeout, a scheduler: the signal itself (without kdrun's handler it would end pytest)
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "kdrun handles no SIGTERM"
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "train_one_epoch", interrupted)
    run_dir = here / "run"
    got, err = kdrun([*FAST, *TWO_EPOCHS, f"hydra.run.dir={run_dir}"], capsys)
    assert got == code
    assert_one_line(err, said, "to resume")
    assert results(run_dir)["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "teacher" / "last.pt").is_file()  # the teacher's epoch 1 is kept
    monkeypatch.setattr(fit, "train_one_epoch", real)
    assert kdrun([*FAST, *TWO_EPOCHS, f"hydra.run.dir={run_dir}"], capsys)[0] == 0
    assert results(run_dir)["status"] == "completed"


def test_an_interrupted_rank_other_than_0_leaves_the_line_to_rank_0(here, capsys, monkeypatch):
    """torchrun passes a Ctrl-C or SIGTERM on to every rank: one line on the terminal, not one per rank."""
    import kdrun.distributed.state as state
    import kdrun.engine.fit as fit

    def interrupted(*args, **kwargs):
        monkeypatch.setattr(state, "is_main", lambda: False)  # as rank 1 sees itself
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "train_one_epoch", interrupted)
    code, err = kdrun([*FAST, f"hydra.run.dir={here / 'run'}"], capsys)
    assert code == 130 and "kdrun: error" not in err


# --- config values ---------------------------------------------------------------------------------

TYPE_ERRORS = {
    "distill.T=abc": "distill.T=abc must be a number",
    "trainer.epochs=abc": "trainer.epochs=abc must be an integer",
    "distill.alpha=null": "distill.alpha=null must be a number",
    "trainer.lr=fast": "trainer.lr=fast must be a number",
    "seed=abc": "seed=abc must be an integer",
    "seed=-1": "seed=-1 must be an integer from 0",
    "trainer.batch_size=2.5": "trainer.batch_size=2.5 must be an integer",
    "measure.enabled=3": "measure.enabled=3 must be true or false",
    "trainer.milestones=[a]": "trainer.milestones=['a'] must be a list of integers",
    "method.T=hot": "method.T=hot must be a number",  # method=dkd below: an option's own key
    "student.hidden=[8,x]": "must be a list of integers",
}


@pytest.mark.parametrize("override", list(TYPE_ERRORS))
def test_a_value_of_the_wrong_type_is_one_line_before_a_run_folder_exists(here, capsys, override):
    code, err = kdrun([*FAST, "method=dkd", override], capsys)
    assert code == 2
    assert_one_line(err, TYPE_ERRORS[override])
    assert not (here / "outputs").exists()


def test_a_missing_launcher_plugin_names_the_extra_to_install(here, capsys, monkeypatch):
    import kdrun.config.preflight as preflight

    real = preflight.group_options
    monkeypatch.setattr(preflight, "group_options",
                        lambda loader, group: [o for o in real(loader, group) if o != "joblib"])
    code, err = kdrun(["-m", *FAST, "seed=0,1", "hydra/launcher=joblib"], capsys)
    assert code == 2
    assert_one_line(err, "hydra/launcher=joblib", 'pip install -e ".[launchers]"')
    assert not (here / "outputs").exists()
