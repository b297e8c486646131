"""Bad input: one line naming the key, the bad value and the valid choices; exit 2; nothing overwritten.

The checks run in-process, through the function that raises them: ``preflight`` (everything decided
before Hydra creates a run folder), ``build_data`` and ``load_weights`` (what fails once the run has
started). Two CLI runs check what only the command adds: exit code 2, one line on stderr, no
traceback, and nothing created or overwritten, before Hydra starts (``python -m kdrun``, its real
exit) and after (the same entry point in this process).
"""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF, TINY, compose_config, run_kdrun
from kdrun.errors import KdrunError

PREFLIGHT = {
    "unknown teacher": (["teacher=resnet1000"], ["teacher=resnet1000", "resnet110", "valid choices"]),
    "unknown student": (["student=tiny"], ["student=tiny", "resnet20"]),
    "unknown dataset": (["dataset=imagenet21k"], ["dataset=imagenet21k", "cifar100", "mnist1d"]),
    "unknown method": (["method=magic"], ["method=magic", "kd"]),
    "T zero": (["distill.T=0"], ["distill.T=0", "> 0"]),
    "T negative": (["distill.T=-1"], ["distill.T=-1"]),
    "negative alpha": (["distill.alpha=-0.5"], ["distill.alpha=-0.5", ">= 0"]),
    "negative beta": (["distill.beta=-1"], ["distill.beta=-1"]),
    "negative gamma": (["distill.gamma=-1"], ["distill.gamma=-1"]),
    "unknown device": (["device=tpu"], ["device=tpu", "auto", "cpu", "cuda"]),
    "unknown stage": (["stages=[teacher,magic]"], ["stages=magic", "baseline"]),
    "unknown key": (["distill.temperature=3"], ["temperature"]),
    "missing checkpoint": (["teacher.checkpoint=/nope/t.pth"], ["teacher.checkpoint=/nope/t.pth", "does not exist"]),
    "missing imagefolder": (["dataset=imagefolder", "dataset.root=/nope/imgs", "teacher=resnet8", "student=resnet8"],
                            ["/nope/imgs"]),
    "init lr zero": (["method=ft", "method.init_lr=0"], ["method.init_lr=0", "> 0", "trainer.lr"]),
    "teacher lr zero": (["teacher.lr=0"], ["teacher.lr=0", "> 0"]),
    "model for wrong input": (["dataset=mnist1d", "student=resnet8"], ["student=resnet8", "cnn1d", "mlp"]),
}


def test_a_given_lr_is_used_never_replaced_by_trainer_lr():
    """0 is refused by the checks above; below them, only a missing lr (None) means trainer.lr."""
    from kdrun.tasks.build import optim_settings

    cfg = OmegaConf.create({"trainer": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "milestones": [],
                                        "lr_decay": 0.1}})
    assert optim_settings(cfg, 0.0).lr == 0.0
    assert optim_settings(cfg, None).lr == 0.05


def run_preflight(args: list[str]):
    from kdrun.config.store import register_configs
    from kdrun.config.preflight import preflight

    register_configs()  # what importing kdrun.cli does
    return preflight(str(CONF), args)


def assert_one_line(error: KdrunError, fragments: list[str]) -> None:
    message = str(error)
    assert type(error) is KdrunError and message and "\n" not in message, repr(message)
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("name", list(PREFLIGHT))
def test_preflight_refuses_in_one_line_before_a_run_folder_exists(tmp_path, name):
    args, fragments = PREFLIGHT[name]
    with pytest.raises(KdrunError) as e:
        run_preflight(["debug=fast", f"hydra.run.dir={tmp_path / 'run'}", *args])
    assert_one_line(e.value, fragments)
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_files_are_one_line_when_the_data_is_built(tmp_path):
    from kdrun.tasks.build import build_data

    cfg = compose_config(["dataset=cifar100", f"dataset.root={tmp_path / 'nope'}", "dataset.download=false"])
    with pytest.raises(KdrunError) as e:
        build_data(cfg)
    assert_one_line(e.value, [str(tmp_path / "nope"), "cifar-100-python"])
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_is_reused_only_by_the_same_config(tmp_path):
    """What Hydra saved for the run (.hydra/config.yaml) decides: the same command resumes, another is refused."""
    run_dir = tmp_path / "mine"
    cfg = run_preflight([*TINY, f"hydra.run.dir={run_dir}"])
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), run_dir / ".hydra" / "config.yaml")
    run_preflight([*TINY, f"hydra.run.dir={run_dir}"])  # resuming: same config
    with pytest.raises(KdrunError) as e:
        run_preflight([*TINY, "distill.T=8", f"hydra.run.dir={run_dir}"])
    assert_one_line(e.value, [str(run_dir), "distill.T"])


def tiny_teacher():
    from kdrun.tasks.build import build_model
    from kdrun.data.base import DataInfo

    return build_model(compose_config(TINY).teacher, DataInfo("digits", "image", 1, (8, 8), 10, 1, 1), "teacher")


@pytest.mark.parametrize("case, fragments", [("classes", ["7 classes", "10"]), ("arch", ["does not"]),
                                             ("corrupt", ["corrupt"])])
def test_mismatched_teacher_checkpoints_are_one_line(tmp_path, case, fragments):
    from kdrun.engine.checkpoint import load_weights
    from kdrun.models import create_model

    path = tmp_path / f"{case}.pth"
    if case == "corrupt":
        path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    else:
        classes, hidden = (7, [32]) if case == "classes" else (10, [48, 48])
        other = create_model("mlp", num_classes=classes, in_channels=1, input_size=(8, 8), hidden=hidden)
        torch.save({"model": other.state_dict()}, path)
    with pytest.raises(KdrunError) as e:
        load_weights(tiny_teacher(), path, "mlp")
    assert_one_line(e.value, [str(path), *fragments])


# --- the command itself: exit code, stderr, nothing written ---------------------------------------------------------


def assert_one_line_error(proc, fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("kdrun: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def keep_run(workdir: Path) -> Path:
    existing = workdir / "outputs" / "runs" / "keep"
    existing.mkdir(parents=True)
    (existing / "results.json").write_text('{"status": "completed"}')
    return existing


def test_cli_refuses_bad_input_before_hydra_starts(workdir):
    existing = keep_run(workdir)
    proc = run_kdrun(["debug=fast", "method=magic"], workdir, check=False, in_process=False)  # the real exit
    assert_one_line_error(proc, ["method=magic", "kd"])
    assert sorted(p.name for p in (workdir / "outputs" / "runs").iterdir()) == ["keep"]
    assert (existing / "results.json").read_text() == '{"status": "completed"}'


def test_cli_failing_during_setup_leaves_no_half_made_run(workdir):
    """A corrupt teacher checkpoint is found once the run has started: its new folder is removed again."""
    keep_run(workdir)
    (workdir / "corrupt.pth").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    proc = run_kdrun([*TINY, f"teacher.checkpoint={workdir / 'corrupt.pth'}", "stages=[teacher,distilled]",
                      "hydra.run.dir=outputs/runs/bad"], workdir, check=False)
    assert_one_line_error(proc, ["corrupt.pth", "corrupt"])
    assert sorted(p.name for p in (workdir / "outputs" / "runs").iterdir()) == ["keep"]
