"""Scheme defaults that fit the models: every scheme runs with any compatible pair without extra options,
and scheme=assistant picks its assistant from the teacher's family (Mirzadeh et al., AAAI 2020)."""

from __future__ import annotations

import pytest

from conftest import compose_config, read_results
from in_process import run_here
from kdrun.tasks.build import build_data
from kdrun.data.base import DataInfo
from kdrun.errors import KdrunError
from kdrun.schemes.assistant_pick import pick_assistant
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.registry import SCHEMES, scheme_from_config

DIGITS = DataInfo("digits", "image", 1, (8, 8), 10, 1000, 500)
SIGNAL = DataInfo("mnist1d", "signal", 1, (40,), 10, 1000, 500)
PAIRS = {"default": [], "image": ["dataset=digits", "teacher=resnet20", "student=resnet8"]}
QUICK = ["debug=fast", "measure.enabled=false", "trainer.batch_size=16", "trainer.max_train_batches=1",
         "trainer.max_eval_batches=1"]


def node(arch: str, **options):
    cfg = compose_config([f"teacher={arch}", *(f"teacher.{k}={v}".replace(" ", "") for k, v in options.items())])
    return cfg.teacher


@pytest.mark.parametrize("teacher, student, picked", [
    ("resnet110", "resnet20", "resnet56"),   # the paper's chain; resnet8x4 is in the family but not the line
    ("resnet56", "resnet20", "resnet44"),
    ("resnet20", "resnet8", "resnet14"),
    ("wrn_40_2", "wrn_16_1", "wrn_16_2"),
    ("vgg13", "vgg8", "vgg11"),
])
def test_assistant_is_the_next_model_down_the_teacher_line(teacher, student, picked):
    assert pick_assistant(node(teacher), node(student), DIGITS).arch == picked


def test_configurable_families_get_intermediate_widths():
    mlp = pick_assistant(node("mlp", hidden=[32, 400]), node("mlp", hidden=[8, 100]), DIGITS)
    assert (mlp.arch, list(mlp.hidden)) == ("mlp", [16, 200])  # geometric mean, layer by layer
    cnn = pick_assistant(node("cnn1d"), node("mlp"), SIGNAL)  # the default pair: half the teacher's widths
    assert (cnn.arch, list(cnn.channels)) == ("cnn1d", [32, 32, 32])
    assert cnn.get("lr", None) is None and cnn.checkpoint is None  # the teacher's checkpoint is not the assistant's
    # a deeper teacher of the student's widths (the zoo's pair shape): the assistant is between them in depth
    deep = pick_assistant(node("cnn1d", channels=[12, 12, 12], depth=4), node("cnn1d", channels=[12, 12, 12]), SIGNAL)
    assert (list(deep.channels), deep.depth) == ([12, 12, 12], 2)
    both = pick_assistant(node("cnn1d", depth=3), node("cnn1d", channels=[16, 16, 16]), SIGNAL)
    assert (list(both.channels), both.depth) == ([32, 32, 32], 2)


def test_no_model_between_is_one_line_naming_the_option():
    with pytest.raises(KdrunError, match="no resnet model lies between teacher=resnet8.*assistant=<arch>") as e:
        pick_assistant(node("resnet8"), node("resnet20"), DIGITS)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("scheme", [s.name for s in SCHEMES])
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_every_scheme_builds_its_stages_for_the_pair_without_options(scheme, pair, tmp_path):
    # no generated transfer set: the stages do not depend on it, and making its 20,000 MNIST-1D signals
    # took ~8 s of this quick test (kdrun's default runs use it: test_readme's headline run)
    cfg = compose_config([*QUICK, f"paths.outputs={tmp_path}", f"scheme={scheme}", *PAIRS[pair],
                          "distill.transfer_size=0"])
    ctx = SchemeContext(cfg, build_data(cfg))
    scheme = scheme_from_config(cfg)
    ctx.check_pairs(scheme.pairs(cfg), scheme.name)
    assert set(cfg.stages) <= {s.name for s in scheme.stages(ctx)}


@pytest.mark.slow  # every scheme's stages built for the pair without options: the test above
@pytest.mark.parametrize("scheme", [s.name for s in SCHEMES])
def test_every_scheme_runs_with_an_image_pair(scheme, workdir, monkeypatch):
    run_here([*QUICK, f"scheme={scheme}", *PAIRS["image"], "hydra.run.dir=outputs/run"], workdir, monkeypatch)
    results = read_results(workdir / "outputs/run")
    assert results["status"] == "completed"
    if scheme == "assistant":
        assert results["stages"]["assistant"]["arch"] == "resnet14"
        assert results["stages"]["assistant"]["picked_assistant"]["arch"] == "resnet14"
