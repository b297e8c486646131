"""Feature-based methods (FitNet, AT, NST, FSP, FT, AB, VID): invariants, method-specific training
rules, pair checks and the init-stage wiring. Golden values, gradient flow and refusals of vector
features are checked for every method in test_methods.py. All in-process and fast; the CLI runs are in
test_methods_feature_cli.py.
"""

from __future__ import annotations

import pytest
import torch

from conftest import compose_config, quick_sample
from method_pairs import VISION_METHODS, composed

from kdrun.tasks.build import build_method
from kdrun.data.base import DataBundle, DataInfo, TensorData
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.ab import boundary_loss
from kdrun.methods.at import at_loss
from kdrun.methods.base import LossWeights, MethodContext
from kdrun.methods.feature_maps import ConvRegressor
from kdrun.methods.fitnet import FitNet, hint_loss
from kdrun.methods.fsp import FSP, fsp_loss
from kdrun.methods.ft import FT, ft_loss
from kdrun.methods.nst import nst_loss
from kdrun.methods.vid import vid_nll
from kdrun.models.features import FeatureInfo, Features
from kdrun.models.registry import create_model
from kdrun.tasks.distill import DistillTask, InitTask

IMAGES = DataInfo("fake", "image", 3, (8, 8), 4, 16, 8)
SIGNALS = DataInfo("fake1d", "signal", 1, (40,), 10, 32, 16)
P = Progress(1, 1)


def info(shapes: list[tuple[int, ...]]) -> FeatureInfo:
    return FeatureInfo(tuple(s[0] for s in shapes), tuple(tuple(s[1:]) for s in shapes), shapes[-1][0], 4)


def context(student: list[tuple], teacher: list[tuple], data: DataInfo = IMAGES, **kw) -> MethodContext:
    return MethodContext(info(student), info(teacher), data, torch.zeros(data.num_train, dtype=torch.long),
                         student_arch=kw.pop("student_arch", "s"), teacher_arch=kw.pop("teacher_arch", "t"), **kw)


def shapes_of(maps: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(m.shape[1:]) for m in maps]


def feats(maps: list[torch.Tensor], preact: bool = False) -> Features:
    logits = maps[0].new_zeros(len(maps[0]), 4)
    return Features(logits, stages=[] if preact else maps, preact=maps if preact else [])


def batch_of(n: int) -> Batch:
    return Batch(torch.zeros(n, 1), torch.zeros(n, dtype=torch.long))


# ------------------------------------------------------------------ invariants


def test_losses_vanish_for_identical_features():
    torch.manual_seed(0)
    x, y = torch.randn(3, 4, 5, 5), torch.randn(3, 6, 5, 5)
    assert hint_loss(x, x).item() == 0.0
    assert at_loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert at_loss(x, 3.0 * x).item() == pytest.approx(0.0, abs=1e-7)  # attention maps are scale-free
    assert nst_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert fsp_loss([x, y], [x.clone(), y.clone()]).item() == 0.0
    for form in ("map", "paper"):
        assert ft_loss(x, x.clone(), form).item() == pytest.approx(0.0, abs=1e-7)
    assert at_loss(x, y).item() > 0 and nst_loss(x, y).item() > 0 and ft_loss(x, y).item() > 0


def test_ab_vanishes_beyond_the_margin_on_the_teachers_side():
    torch.manual_seed(0)
    t = torch.randn(2, 3, 4, 4)
    assert boundary_loss(1.5 * torch.sign(t), t, margin=1.0).item() == 0.0
    assert boundary_loss(0.5 * torch.sign(t), t, margin=1.0).item() > 0  # right side, inside the margin
    assert boundary_loss(-torch.sign(t), t, margin=1.0).item() > 0


def test_vid_is_minimal_at_the_teacher_features():
    torch.manual_seed(0)
    t, var = torch.randn(2, 3, 4, 4), torch.tensor([0.5, 1.0, 5.0])
    mean = t.clone().requires_grad_(True)
    loss = vid_nll(mean, t, var)
    assert loss.item() == pytest.approx(0.5 * var.log().mean().item(), rel=1e-6)
    loss.backward()
    assert mean.grad.abs().max().item() == 0.0
    assert vid_nll(t + 0.1 * torch.randn_like(t), t, var).item() > loss.item()


def test_fitnet_vanishes_when_the_regressed_student_equals_the_teacher():
    torch.manual_seed(0)
    s = [torch.randn(4, 2, 4, 4) for _ in range(3)]
    method = FitNet(context(shapes_of(s), [(3, 4, 4)] * 3)).eval()
    t = [method.regressor(s[2]).detach()] * 3
    assert method(feats(s), feats(t), batch_of(4), P)["hint"].item() == 0.0


@pytest.mark.parametrize("s_size,t_size,layer", [((8, 8), (4, 4), torch.nn.Conv2d),
                                                 ((4, 4), (8, 8), torch.nn.ConvTranspose2d),
                                                 ((7, 7), (4, 4), torch.nn.Conv2d), ((19,), (9,), torch.nn.Conv1d)])
def test_regressor_maps_student_shape_onto_teacher_shape(s_size, t_size, layer):
    reg = ConvRegressor((3, *s_size), (5, *t_size))
    assert isinstance(reg.conv, layer)
    assert reg(torch.randn(2, 3, *s_size)).shape == (2, 5, *t_size)


# ------------------------------------------------------------------ gradients, checkpoints, train modes

def cnn_pair(name: str):
    """cnn1d teacher and a narrower cnn1d student (equal widths for FSP), ``method=name`` built from its config."""
    torch.manual_seed(0)
    student_channels = [16, 16, 16] if name == "fsp" else [8, 12, 16]
    student = create_model("cnn1d", num_classes=10, in_channels=1, input_size=(40,), channels=student_channels)
    teacher = create_model("cnn1d", num_classes=10, in_channels=1, input_size=(40,), channels=[16, 16, 16])
    ctx = MethodContext(student.feature_info, teacher.feature_info, SIGNALS, torch.zeros(32, dtype=torch.long),
                        "cnn1d", "cnn1d", LossWeights(alpha=0.0, gamma=1.0, beta=1.0))
    return student, teacher, build_method(compose_config([f"method={name}"]), ctx)


def signal_batch() -> Batch:
    return Batch(torch.randn(6, 1, 40), torch.arange(6) % 10)


def test_ft_init_stage_trains_the_paraphraser_and_leaves_the_student_alone():
    """As the reference does (test_methods.py checks every init stage's gradients and classifier)."""
    student, teacher, method = cnn_pair("ft")
    task = InitTask(student, teacher, method)
    task.train()
    assert not student.training
    task(signal_batch(), P).loss.backward()
    trained = {id(p) for p in task.trainable_parameters()}
    assert trained == {id(p) for p in method.paraphraser.parameters()}
    assert all(p.grad is None for p in student.parameters())


def test_ft_paraphraser_is_frozen_in_the_main_stage():
    student, teacher, method = cnn_pair("ft")
    task = DistillTask(student, teacher, method, LossWeights(alpha=0.0, gamma=1.0, beta=200.0))
    task(signal_batch(), P).loss.backward()
    assert all(p.grad is None for p in method.paraphraser.parameters())
    trained = {id(p) for p in task.trainable_parameters()}
    assert not any(id(p) in trained for p in method.paraphraser.parameters())


@pytest.mark.parametrize("name", ["ab", "fsp"])
def test_ab_and_fsp_main_epochs_are_cross_entropy_only(name):
    student, teacher, method = cnn_pair(name)
    task = DistillTask(student, teacher, method, LossWeights(alpha=0.0, gamma=1.0, beta=50.0))
    assert set(task(signal_batch(), P).terms) == {"ce"}
    assert list(method.main_parameters()) == []


# ------------------------------------------------------------------ pair checks and options


def test_fsp_rejects_unequal_channels_naming_working_students():
    s = [(16, 19), (16, 9), (16, 4)]
    with pytest.raises(KdrunError, match=r"method=fsp needs equal channel counts.*architectures with .*: cnn1d"):
        FSP(context(s, [(64, 19), (64, 9), (64, 4)], data=SIGNALS))
    FSP(context(s, s, data=SIGNALS))  # equal channels: fine, whatever the sizes


def test_fitnet_options_are_checked():
    s = [(4, 8, 8), (8, 4, 4), (16, 2, 2)]
    with pytest.raises(KdrunError, match="method.hint_layer=3 .* valid choices: 0, 1, 2"):
        FitNet(context(s, s), hint_layer=3)
    with pytest.raises(KdrunError, match="smaller than teacher"):
        FitNet(context([(4, 8, 8), (8, 4, 4), (16, 1, 1)], [(4, 8, 8), (8, 4, 4), (16, 4, 4)]))
    with pytest.raises(KdrunError, match="distill.alpha=0"):
        FitNet(context(s, s, weights=LossWeights(alpha=0.0, gamma=1.0, beta=100.0)), two_stage=True)


def test_fitnet_two_stage_is_hint_init_then_kd_only():
    s = [(4, 8, 8), (8, 4, 4), (16, 2, 2)]
    one = FitNet(context(s, s))
    two = FitNet(context(s, s, weights=LossWeights(alpha=0.9, beta=100.0)), two_stage=True, init_epochs=7)
    assert one.init_epochs == 0 and one.has_terms and list(one.main_parameters())
    assert two.init_epochs == 7 and not two.has_terms and list(two.main_parameters()) == []


def test_ft_init_lr_follows_the_reference_rule():
    s = [(4, 8, 8), (8, 4, 4), (16, 2, 2)]
    assert FT(context(s, s, student_arch="resnet20")).init_lr == 0.01
    assert FT(context(s, s, student_arch="vgg8")).init_lr is None  # = trainer.lr
    assert FT(context(s, s, student_arch="vgg8"), init_lr=0.02).init_lr == 0.02
    with pytest.raises(KdrunError, match="method.factor=svd is not valid"):
        FT(context(s, s), factor="svd")


# ------------------------------------------------------------------ stages of the offline scheme


def signal_data() -> DataBundle:
    x, y = torch.randn(32, 1, 40), torch.arange(32) % 10
    return DataBundle(SIGNALS, TensorData(x, y), TensorData(x[:16], y[:16]), y)


def scheme_stages(overrides: list[str]):
    from kdrun.schemes.context import SchemeContext
    from kdrun.schemes.offline import Offline

    cfg = compose_config(["teacher=cnn1d", "student=cnn1d", "student.channels=[16,16,16]",
                          "teacher.channels=[16,16,16]", "stages=[teacher,baseline,distilled]", *overrides])
    return cfg, Offline().stages(SchemeContext(cfg, signal_data()))


@pytest.mark.parametrize("name", VISION_METHODS)
def test_init_stage_precedes_the_distilled_stage_at_constant_lr(name):
    cfg, stages = scheme_stages([f"method={name}"])
    stages = list(stages)
    method = stages[-1].task.method
    if method.init_epochs == 0:
        assert [s.name for s in stages] == ["teacher", "baseline", "distilled"]
        return
    assert [s.name for s in stages] == ["teacher", "baseline", f"{name}_init", "distilled"]
    init = stages[2]
    assert init.epochs == method.init_epochs == cfg.method.init_epochs
    assert not init.in_table and init.optim.milestones == ()
    assert init.optim.lr == cfg.trainer.lr  # cnn1d student: no reference override
    assert isinstance(init.task, InitTask) and init.task.method is stages[3].task.method


def test_init_epochs_are_configurable_and_capped_by_debug_fast():
    _, stages = scheme_stages(["method=ab", "method.init_epochs=5"])
    assert [s.epochs for s in stages if s.name == "ab_init"] == [5]
    _, stages = scheme_stages(["method=ab", "debug=fast"])
    assert {s.name: s.epochs for s in stages} == {"teacher": 1, "baseline": 1, "ab_init": 1, "distilled": 1}


def test_incompatible_pair_fails_before_any_stage_trains():
    from kdrun.schemes.context import SchemeContext
    from kdrun.schemes.registry import scheme_from_config

    cfg, _ = scheme_stages(["method=fsp", "student.channels=[8,8,8]"])
    with pytest.raises(KdrunError, match="method=fsp"):
        SchemeContext(cfg, signal_data()).check_pairs(scheme_from_config(cfg).pairs(cfg), "offline")  # as the pipeline


# ------------------------------------------------------------------ the published CIFAR-100 pairs

SAME_FAMILY = [("wrn_40_2", "wrn_16_2"), ("wrn_40_2", "wrn_40_1"), ("resnet56", "resnet20"), ("resnet110", "resnet20"),
               ("resnet110", "resnet32"), ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8")]
CROSS_FAMILY = [("vgg13", "mobilenetv2"), ("resnet50", "mobilenetv2"), ("resnet50", "vgg8"),
                ("resnet32x4", "shufflenetv1"), ("resnet32x4", "shufflenetv2"), ("wrn_40_2", "shufflenetv1")]
CIFAR100 = DataInfo("cifar100", "image", 3, (32, 32), 100, 50000, 10000)


def cifar_context(teacher: str, student: str) -> MethodContext:
    with torch.device("meta"):  # shapes only
        infos = [create_model(n, num_classes=100, in_channels=3, input_size=(32, 32)).feature_info
                 for n in (student, teacher)]
    return MethodContext(*infos, CIFAR100, torch.arange(100), student, teacher,
                         LossWeights(alpha=0.0, gamma=1.0, beta=1.0))


@pytest.mark.parametrize("teacher,student", quick_sample(SAME_FAMILY + CROSS_FAMILY, every=2, unpack=True))
def test_every_method_serves_the_published_pairs_and_fsp_only_its_cells(teacher, student):
    """The reference tables have an FSP number exactly where channel counts agree (n/a for
    wrn_40_2 -> wrn_40_1 and every cross-family pair); every other method serves every pair."""
    ctx = cifar_context(teacher, student)
    fsp_published = (teacher, student) in SAME_FAMILY and (teacher, student) != ("wrn_40_2", "wrn_40_1")
    for name in VISION_METHODS:
        cfg = composed((f"method={name}",))
        with torch.device("meta"):  # FT's paraphraser for a 2048-channel teacher is large
            if name == "fsp" and not fsp_published:
                with pytest.raises(KdrunError, match="method=fsp needs equal channel counts"):
                    build_method(cfg, ctx)
            else:
                build_method(cfg, ctx)


@pytest.mark.parametrize("arch", ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2",
                                  "resnet50", "cnn1d", "mlp"])
def test_init_stages_never_train_the_classifier(arch):
    from kdrun.methods.pairing import classifier_head, feature_parameters

    with torch.device("meta"):
        size = (40,) if arch == "cnn1d" else (32, 32)
        model = create_model(arch, num_classes=100, in_channels=1 if arch == "cnn1d" else 3, input_size=size)
    head = classifier_head(model)
    assert head.out_features == 100
    params = feature_parameters(model)
    assert len(params) == len(list(model.parameters())) - len(list(head.parameters()))
