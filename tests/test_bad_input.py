"""Bad input: one line naming the key, the bad value and the valid choices; exit 2; nothing overwritten."""

import pytest
import torch

from conftest import TINY, read_results, run_kdrun

CASES = {
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
    "missing cifar": (["dataset=cifar100", "teacher=resnet8", "student=resnet8", "dataset.root=/nope",
                       "dataset.download=false"],
                      ["/nope", "cifar-100-python"]),
    "missing imagefolder": (["dataset=imagefolder", "dataset.root=/nope/imgs", "teacher=resnet8", "student=resnet8"],
                            ["/nope/imgs"]),
    "model for wrong input": (["dataset=mnist1d", "student=resnet8"], ["student=resnet8", "cnn1d", "mlp"]),
}


def assert_one_line_error(proc, fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("kdrun: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(workdir, name):
    args, fragments = CASES[name]
    existing = workdir / "outputs" / "runs" / "keep"
    existing.mkdir(parents=True)
    (existing / "results.json").write_text('{"status": "completed"}')
    proc = run_kdrun(["debug=fast", *args], workdir, check=False)
    assert_one_line_error(proc, fragments)
    assert sorted(p.name for p in (workdir / "outputs" / "runs").iterdir()) == ["keep"]
    assert (existing / "results.json").read_text() == '{"status": "completed"}'


def test_existing_run_with_other_config_is_not_overwritten(workdir):
    run_kdrun([*TINY, "hydra.run.dir=outputs/runs/mine"], workdir)
    before = (workdir / "outputs/runs/mine/results.json").read_text()
    proc = run_kdrun([*TINY, "distill.T=8", "hydra.run.dir=outputs/runs/mine"], workdir, check=False)
    assert_one_line_error(proc, ["outputs/runs/mine", "distill.T"])
    assert (workdir / "outputs/runs/mine/results.json").read_text() == before


def test_mismatched_checkpoints(workdir):
    from kdrun.models import create_model

    other_classes = create_model("mlp", num_classes=7, in_channels=1, input_size=(8, 8), hidden=[32])
    torch.save({"model": other_classes.state_dict()}, workdir / "classes.pth")
    other_arch = create_model("mlp", num_classes=10, in_channels=1, input_size=(8, 8), hidden=[48, 48])
    torch.save({"model": other_arch.state_dict()}, workdir / "arch.pth")
    (workdir / "corrupt.pth").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    cases = {"classes.pth": ["7 classes", "10"], "arch.pth": ["does not"], "corrupt.pth": ["corrupt.pth", "corrupt"]}
    for name, fragments in cases.items():
        proc = run_kdrun([*TINY, f"teacher.checkpoint={workdir / name}", f"hydra.run.dir=outputs/runs/{name}"],
                         workdir, check=False)
        assert_one_line_error(proc, [name, *fragments])
        assert not (workdir / f"outputs/runs/{name}").exists()  # failed during setup: no half-made run
