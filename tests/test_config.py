"""Every option of every config group composes (the real configs, through Hydra's compose API)."""

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF, compose_config, quick_sample
from kdrun.config.checks import check_config
from kdrun.models import list_models
from kdrun.schemes.registry import STAGE_NAMES

FILE_GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


OPTIONS = [(g, o) for g in FILE_GROUPS for o in group_options(g)]
OPTIONS += [(g, m) for g in ("teacher", "student") for m in list_models()]
REQUIRED = {("dataset", "imagefolder"): ["dataset.root=/tmp/x"], ("dataset", "npz"): ["dataset.path=/tmp/x.npz"],
            ("dataset", "torchvision"): ["dataset.name=MNIST"], ("dataset", "hf"): ["dataset.name=/tmp/x"],
            ("dataset", "custom"): ["dataset._target_=kdrun.data.digits.load_digits"]}
GROUP_REQUIRES = {"assistant": ["scheme=assistant"]}  # a group that only the assistant scheme puts in the defaults


@pytest.mark.parametrize("group,option", quick_sample(OPTIONS, every=4, unpack=True), ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_with_debug_fast(group, option):
    overrides = [*GROUP_REQUIRES.get(group, []), f"{group}={option}", "debug=fast",
                 *REQUIRED.get((group, option), [])]
    if group == "debug":
        overrides = overrides[:1]
    cfg = compose_config(overrides)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if group not in ("experiment",):
        check_config(cfg, STAGE_NAMES)


def test_defaults_are_the_documented_ones():
    cfg = compose_config()
    assert (cfg.dataset._target_, cfg.teacher.arch, cfg.student.arch, cfg.method.name) == (
        "kdrun.data.mnist1d.load_mnist1d", "cnn1d", "mlp", "kd")
    assert cfg.distill.T == 4.0 and cfg.distill.alpha == 0.9 and cfg.distill.gamma is None
    assert cfg.device.type == "auto"


def test_debug_fast_composes_with_other_options():
    cfg = compose_config(["trainer=cifar", "debug=fast", "dataset=cifar100"])
    assert cfg.trainer.epochs == 1 and cfg.trainer.max_train_batches is not None
    cfg = compose_config(["debug=fast", "trainer=cifar"])  # order on the command line does not matter
    assert cfg.trainer.epochs == 1


def test_model_options_expose_architecture_kwargs():
    cfg = compose_config(["teacher=mlp", "teacher.hidden=[1200,1200]", "student=mlp", "student.hidden=[800,800]"])
    assert list(cfg.teacher.hidden) == [1200, 1200] and list(cfg.student.hidden) == [800, 800]


def test_every_group_file_has_a_comment():
    for path in CONF.rglob("*.yaml"):
        assert path.read_text().lstrip().startswith("#"), f"{path} should open with a comment saying what it is"


@pytest.mark.parametrize("student, lr", [("mobilenetv2", 0.01), ("shufflenetv1", 0.01), ("shufflenetv2", 0.01),
                                         ("resnet20", 0.05), ("vgg8", 0.05)])
def test_cifar_recipe_takes_each_architectures_own_lr(student, lr):
    cfg = compose_config(["trainer=cifar", "dataset=cifar100", "teacher=vgg13", f"student={student}"])
    assert cfg.trainer.lr == lr and cfg.teacher.lr == 0.05  # RepDistiller: the teacher keeps 0.05
    assert compose_config(["trainer=cifar", "teacher=mobilenetv2", "student=resnet8"]).teacher.lr == 0.01
    given = compose_config(["trainer=cifar", f"student={student}", "trainer.lr=0.2", "teacher.lr=0.3"])
    assert (given.trainer.lr, given.teacher.lr) == (0.2, 0.3)  # the command line wins
    assert compose_config([f"student={student}"]).trainer.lr == 0.05  # other trainers: trainer.lr for all


def test_recipe_lr_lives_in_the_registry_and_agrees_with_the_published_table():
    from kdrun.benchmarks.published import load_table
    from kdrun.models.registry import list_models, model_spec

    table = load_table("cifar100")
    lowered = sorted(a for a in list_models() if model_spec(a).recipe_lr.get(table.trainer) == table.low_lr)
    assert lowered == sorted(table.low_lr_archs)



def test_objects_are_built_with_one_line_errors():
    """kdrun/objects.py: kdrun's own errors come through unwrapped; other failures name the config entry."""
    from hydra.errors import InstantiationException

    from kdrun.errors import KdrunError
    from kdrun.objects import from_config

    assert from_config({"_target_": "builtins.int", "_args_": ["7"]}) == 7
    with pytest.raises(KdrunError, match=r"^teacher.arch=nope") as e:  # the registry's own one-line error
        from_config({"_target_": "kdrun.models.registry.model_spec", "name": "nope", "key": "teacher.arch"}, "x")
    assert "cannot be built" not in str(e.value)
    with pytest.raises(KdrunError, match=r"^scheme=nope cannot be built: .*; hint$") as e:
        from_config({"_target_": "no.such.module.Scheme"}, "scheme=nope", "hint")
    assert "\n" not in str(e.value)
    with pytest.raises(InstantiationException):
        from_config({"_target_": "no.such.module.Scheme"})


def test_type_defaults_are_composed_once_per_set_of_options(monkeypatch):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from kdrun.config import preflight
    from kdrun.config.store import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    composed = []
    real = preflight.compose_checked
    monkeypatch.setattr(preflight, "compose_checked", lambda o: composed.append(list(o)) or real(o))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="kdrun"):
        first = ["method=kd", "distill.T=1"]
        job = preflight.compose_checked(first)
        defaults = preflight.Defaults({"method", "teacher"}, first, job)
        a = defaults.of(first)
        assert defaults.of(["method=kd", "distill.T=4"]) is a  # a swept value: the same options' defaults
        assert a.distill.T == 4 and job.distill.T == 1  # the options' file value, not the command line's
        assert defaults.of(["method=rkd", "distill.T=4"]).method.name == "rkd"
        only_options = ["method=kd", "teacher=mlp"]
        job = preflight.compose_checked(only_options)
        assert preflight.Defaults({"method", "teacher"}, only_options, job).of(only_options) is job
    GlobalHydra.instance().clear()
    assert composed == [first, ["method=kd"], ["method=rkd"], only_options]


@pytest.mark.parametrize("group", ["scheme", "device"])
def test_defaults_list_comment_names_every_option(group):
    """conf/config.yaml's comment on a group with a short list of options names all of them."""
    line = next(x for x in (CONF / "config.yaml").read_text().splitlines() if x.strip().startswith(f"- {group}:"))
    named = set(re.findall(r"\w+", line.split("#", 1)[1]))
    options = {p.stem for p in (CONF / group).glob("*.yaml")}
    assert options <= named, f"conf/config.yaml's {group} comment misses {sorted(options - named)}"


def test_the_config_schemas_declare_types_only():
    """No default value in kdrun/config/schema.py to drift from the YAML (trainer.milestones had): the config
    files give every value."""
    import dataclasses

    from kdrun.config.schema import SCHEMAS, TopSchema

    for schema in (TopSchema, *SCHEMAS.values()):
        for field in dataclasses.fields(schema):
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, field
