"""A new user's first commands: the headline command, checks before any data work, --list, did you mean."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import CONF, run_kdrun
from in_process import run_here
from kdrun.config.headline import benchmark_overrides
from kdrun.config.store import register_configs
from kdrun.errors import KdrunError
from kdrun.config.listing import CATEGORIES, listing
from kdrun.config.preflight import parse_overrides, preflight

register_configs()  # as kdrun.cli does on import: the generated teacher=/student=/experiment= options
HEADLINE = ["method=rkd", "teacher=resnet110", "student=resnet20"]


@pytest.mark.parametrize("args, added", [
    (HEADLINE, ["dataset=cifar100", "trainer=cifar"]),
    ([*HEADLINE, "dataset.download=false"], ["dataset=cifar100", "trainer=cifar"]),  # a dataset key, not a choice
    ([*HEADLINE, "trainer=default"], ["dataset=cifar100"]),  # a given trainer is kept
    ([*HEADLINE, "dataset=digits"], []),
    (["experiment=cifar100/resnet56-resnet20/kd"], []),  # a preset chooses its own dataset
    (["teacher=resnet110"], []),  # the default student (mlp) is not an image architecture
    (["teacher=resnet56", "student=resnet20,resnet8"], ["dataset=cifar100", "trainer=cifar"]),
    (["teacher=resnet56", "student=resnet20,mlp"], []),
    (["teacher=resnet111", "student=resnet20"], []),  # unknown: the config checks name it
])
def test_headline_rule_adds_the_benchmark_setting_only_when_nothing_chose_a_dataset(args, added):
    assert benchmark_overrides(parse_overrides(args)) == added


@pytest.mark.slow  # a real first contact, a process of its own (its parts quickly: the rule above, test_data)
def test_headline_command_says_what_it_runs_and_stops_at_the_data_step(workdir, tmp_path):
    """As typed (offline here, so dataset.download=false): the first line names the benchmark setting, the last is
    one error saying where to put the archive; nothing is left in the folder or the data cache."""
    xdg = tmp_path / "xdg"
    proc = run_kdrun([*HEADLINE, "debug=fast", "dataset.download=false"], workdir, check=False,
                     env={"KDRUN_DATA": "", "XDG_CACHE_HOME": str(xdg)}, in_process=False)  # the real first contact
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "CIFAR-100 benchmark setting (dataset=cifar100 trainer=cifar" in lines[0]
    assert lines[-1].startswith("kdrun: error:") and "Traceback" not in proc.stderr
    for part in ("cifar-100-python.tar.gz", str(xdg / "kdrun"), "dataset=digits"):
        assert part in lines[-1], lines[-1]
    assert list(workdir.iterdir()) == [] and not xdg.exists()


def test_incompatible_pair_fails_before_any_data_work(workdir, tmp_path, monkeypatch):
    """The issue's case: image models on the default signal dataset. No MNIST-1D generated, no run folder.
    (In this process; the test above runs the real first contact in a process of its own.)"""
    xdg = tmp_path / "xdg"
    proc = run_here(["teacher=resnet110", "student=resnet20", "dataset=mnist1d"], workdir, monkeypatch,
                    check=False, env={"KDRUN_DATA": "", "XDG_CACHE_HOME": str(xdg)})
    assert proc.returncode == 2
    assert "teacher=resnet110 needs image input but dataset mnist1d gives signals" in proc.stderr
    assert list(workdir.iterdir()) == [] and not xdg.exists()


@pytest.mark.parametrize("args, fragment", [
    (["method=at", "teacher=resnet20", "student=mlp", "dataset=digits"], "method=at needs spatial feature maps"),
    (["method=fsp", "teacher=vgg8", "student=resnet8", "dataset=cifar100"], "method=fsp needs equal channel counts"),
    (["-m", "student=mlp,resnet8", "dataset=mnist1d"], "student=resnet8 needs image input"),  # a later swept value
])
def test_compatibility_is_checked_in_preflight(args, fragment):
    before = sorted(Path(os.environ["XDG_CACHE_HOME"]).rglob("*"))
    with pytest.raises(KdrunError, match=fragment):
        preflight(str(CONF), args)
    assert sorted(Path(os.environ["XDG_CACHE_HOME"]).rglob("*")) == before  # no data read or generated


@pytest.mark.parametrize("args, fragment", [
    (["distill.alhpa=0.5"], "distill.alhpa is not a config key; did you mean distill.alpha?"),
    (["trainer.lr_decy=0.2"], "did you mean trainer.lr_decay?"),
    (["methd=kd"], "did you mean method?"),
    (["dataset=cifar1000"], "did you mean cifar100?"),
    (["teacher=resnet111"], "did you mean resnet110?"),
    (["stages=[teacher,baselin]"], "did you mean baseline?"),
    (["experiment=cifar100/resnet56-resnet20/kdd"], "did you mean cifar100/resnet56-resnet20/kd?"),
])
def test_mistyped_keys_and_values_get_a_suggestion(args, fragment):
    with pytest.raises(KdrunError) as e:
        preflight(str(CONF), args)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_list_has_one_line_per_choice_with_a_description():
    for group, category in (("method", "methods"), ("dataset", "datasets"), ("scheme", "schemes")):
        lines = listing(category, str(CONF)).splitlines()
        names = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert [ln.split()[0] for ln in lines[1:]] == names
        assert all(len(ln.split()) > 2 for ln in lines[1:]), lines  # a description on every line
    models = {ln.split()[0]: ln.split()[1:3] for ln in listing("model", str(CONF)).splitlines()[1:]}
    assert models["resnet20"] == ["image", "0.28M"] and models["cnn1d"] == ["signal", "44,042"]
    assert models["mlp"][0] == "any"


def test_list_presets_and_bad_category(monkeypatch, capsys):
    from kdrun import cli

    monkeypatch.setattr(sys, "argv", ["kdrun", "--list", "presets"])
    cli.main()
    out = capsys.readouterr().out.splitlines()
    assert "cifar100/resnet56-resnet20/kd" in {ln.split()[0] for ln in out[1:]}
    with pytest.raises(KdrunError, match="did you mean schemes"):
        listing("schemse", str(CONF))
    assert set(CATEGORIES) == {"methods", "models", "datasets", "schemes", "presets"}


def test_printing_the_config_shows_the_headline_rule():
    from kdrun.cli import _printed_config_args

    assert _printed_config_args(["--cfg", "job", *HEADLINE]) == ["--cfg", "job", *HEADLINE, "dataset=cifar100",
                                                                 "trainer=cifar"]
    assert _printed_config_args(["--help", *HEADLINE]) == ["--help", *HEADLINE]  # help is the same for all
