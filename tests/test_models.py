"""Model registry tests: every registered architecture, plus the CIFAR zoo against the reference facts.

Parametrized over ``list_models()``, so a new architecture is covered the day it is
registered. The numbers in ``REFERENCE`` are copied from the published model-zoo table
(``reference/cifar100-benchmark.md``: RepDistiller / mdistiller, 100 classes, 3x32x32), not
from our own output.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import quick_sample
from kdrun.models import KDModel, create_model, list_models, model_spec

# name -> (parameters, head key, stage channels as listed in the table, pooled dim).
# The table lists the channels of feat 1..n-1 (VGG's row also includes feat 0); they are
# checked against the trailing entries of ``feature_info.stage_channels``.
_RESNET, _RESNET_X4 = (16, 32, 64), (64, 128, 256)
_VGG = (64, 128, 256, 512, 512)
REFERENCE: dict[str, tuple[int, str, tuple[int, ...], int]] = {
    "resnet8": (83_892, "fc", _RESNET, 64),
    "resnet14": (181_108, "fc", _RESNET, 64),
    "resnet20": (278_324, "fc", _RESNET, 64),
    "resnet32": (472_756, "fc", _RESNET, 64),
    "resnet44": (667_188, "fc", _RESNET, 64),
    "resnet56": (861_620, "fc", _RESNET, 64),
    "resnet110": (1_736_564, "fc", _RESNET, 64),
    "resnet8x4": (1_233_540, "fc", _RESNET_X4, 256),
    "resnet32x4": (7_433_860, "fc", _RESNET_X4, 256),
    "wrn_16_1": (180_916, "fc", (16, 32, 64), 64),
    "wrn_40_1": (569_780, "fc", (16, 32, 64), 64),
    "wrn_16_2": (703_284, "fc", (32, 64, 128), 128),
    "wrn_40_2": (2_255_156, "fc", (32, 64, 128), 128),
    "vgg8": (3_965_028, "classifier", _VGG, 512),
    "vgg11": (9_277_284, "classifier", _VGG, 512),
    "vgg13": (9_462_180, "classifier", _VGG, 512),
    "vgg16": (14_774_436, "classifier", _VGG, 512),
    "vgg19": (20_086_692, "classifier", _VGG, 512),
    "mobilenetv2": (812_836, "classifier.0", (), 1280),
    "shufflenetv1": (949_258, "linear", (240, 480, 960), 960),
    "shufflenetv2": (1_355_528, "linear", (116, 232, 464), 1024),
    "resnet50": (23_705_252, "linear", (256, 512, 1024, 2048), 2048),
}

# Spot checks of reference key names (present) and of shortcuts that must not exist (absent).
KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "resnet8": (("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer3.0.downsample.1.running_var", "fc.weight"), ("layer1.0.downsample.0.weight",)),
    "resnet8x4": (("layer1.0.downsample.0.weight", "layer3.0.bn2.weight"), ()),
    "resnet56": (("layer3.8.conv2.weight", "layer2.0.downsample.0.weight"), ("layer3.9.conv1.weight",)),
    "wrn_40_2": (("conv1.weight", "block1.layer.0.convShortcut.weight", "block3.layer.5.bn2.running_var",
                  "bn1.weight", "fc.bias"), ("block1.layer.1.convShortcut.weight",)),
    "wrn_40_1": (("block2.layer.0.convShortcut.weight",), ("block1.layer.0.convShortcut.weight",)),
    "vgg13": (("block0.0.weight", "block0.0.bias", "block0.1.running_mean", "block0.3.weight",
               "block4.4.weight", "classifier.weight"), ("block0.5.weight", "classifier.0.weight")),
    "vgg8": (("block0.0.weight", "block4.1.weight", "classifier.weight"), ("block0.3.weight",)),
    "mobilenetv2": (("conv1.0.weight", "blocks.0.0.conv.0.weight", "blocks.6.0.conv.7.running_var",
                     "conv2.0.weight", "classifier.0.weight"), ()),
    "shufflenetv1": (("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer3.3.bn3.weight",
                      "linear.weight"), ()),
    "shufflenetv2": (("layer1.0.conv5.weight", "layer1.3.bn3.weight", "conv2.weight", "bn2.weight",
                      "linear.weight"), ("layer1.4.conv1.weight",)),
    "resnet50": (("layer1.0.shortcut.0.weight", "layer4.2.conv3.weight", "linear.weight"),
                 ("layer1.1.shortcut.0.weight",)),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Batch-2 CPU forwards gain nothing from intra-op threads, and on a busy 2-core machine
    spinning worker threads made this file several times slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _inputs(name: str) -> list[tuple[tuple[int, ...], int]]:
    """(input shape without batch, num_classes) pairs that suit the model's input kind."""
    if model_spec(name).input_kind == "signal":
        return [((1, 40), 10)]
    if model_spec(name).input_kind == "tokens":  # (vocabulary size, sequence length): a tiny transformer
        return [((19, 12), 10)]
    if model_spec(name).input_kind == "next_tokens":  # a causal LM: its classes are the vocabulary
        return [((19, 12), 19)]
    return [((3, 32, 32), 100), ((1, 8, 8), 10)]


def _x(name: str, shape: tuple[int, ...], n: int = 2) -> torch.Tensor:
    """A batch of inputs: random values, or random token ids (none of them padding) for a transformer."""
    if model_spec(name).input_kind in ("tokens", "next_tokens"):
        return torch.randint(1, shape[0], (n, *shape[1:]))
    return torch.randn(n, *shape)


def _build(name: str, shape: tuple[int, ...], num_classes: int) -> KDModel:
    tiny = {"bert": {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64},
            "gpt2": {"layers": 2, "hidden": 32, "heads": 2}}.get(model_spec(name).family, {})
    return create_model(name, num_classes=num_classes, in_channels=shape[0], input_size=shape[1:], **tiny)


CASES = [(name, shape, num_classes) for name in list_models() for shape, num_classes in _inputs(name)]
CASE_IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape, _ in CASES]


@dataclass
class Case:
    name: str
    shape: tuple[int, ...]
    num_classes: int
    model: KDModel


# Module-scoped parametrized fixtures: pytest groups the tests that share a model, so each
# model is built once and only one of them is held in memory at a time.
@pytest.fixture(scope="module", params=quick_sample(CASES, every=3), ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> Case:
    name, shape, num_classes = request.param
    return Case(name, shape, num_classes, _build(name, shape, num_classes).eval())


@pytest.fixture(scope="module", params=sorted(REFERENCE))
def zoo(request: pytest.FixtureRequest) -> Case:
    """A zoo model as the reference table describes it: 100 classes, 3x32x32 input."""
    return Case(request.param, (3, 32, 32), 100, _build(request.param, (3, 32, 32), 100).eval())


def test_zoo_is_registered() -> None:
    assert set(REFERENCE) <= set(list_models())
    for name in REFERENCE:
        assert model_spec(name).input_kind == "image"


@pytest.mark.parametrize("name", list_models())
def test_each_architecture_file_names_a_builder_that_takes_its_options(name: str) -> None:
    """kdrun/models/arch/<name>.yaml is the one place an architecture is declared: its _target_ is a builder whose
    signature takes (num_classes, in_channels, input_size) and exactly the file's options, with a docstring
    whose first line is the file's description (what kdrun --list models shows)."""
    import inspect

    spec = model_spec(name)
    params = inspect.signature(spec.builder).parameters
    assert {"num_classes", "in_channels", "input_size"} <= set(params)
    required = {k for k, p in params.items() if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD}
    assert required - {"num_classes", "in_channels", "input_size"} <= set(spec.defaults), "an option without a default"
    assert set(spec.defaults) <= set(params), f"options the builder does not take: {set(spec.defaults) - set(params)}"
    assert spec.doc and (spec.builder.__doc__ or "").strip().splitlines()[0] == spec.doc


def test_a_new_architecture_is_its_file(tmp_path, monkeypatch) -> None:
    """No list to extend: a file in kdrun/models/arch makes a name that builds (here mlp's builder under another name)."""
    from kdrun.models import catalog, registry

    (tmp_path / "tiny_mlp.yaml").write_text("# A tiny MLP\n_target_: kdrun.models.mlp.mlp\nfamily: mlp\n"
                                            "input_kind: any\nhidden: [8]\ndropout: 0.0\n")
    monkeypatch.setattr(catalog, "ARCHS", {**catalog.ARCHS, **catalog.read_archs(tmp_path)})
    assert "tiny_mlp" in registry.list_models(input_kind="signal")
    model = registry.create_model("tiny_mlp", num_classes=3, in_channels=1, input_size=(40,))
    assert model(torch.zeros(2, 1, 40)).shape == (2, 3) and catalog.arch_info("tiny_mlp").doc == "A tiny MLP"


@torch.no_grad()
def test_output_shape_and_fast_path(case: Case) -> None:
    x = _x(case.name, case.shape)
    logits = case.model(x)
    next_tokens = model_spec(case.name).input_kind == "next_tokens"  # a causal LM: (B, V, L), one row per position
    assert logits.shape == ((2, case.num_classes, x.shape[1]) if next_tokens else (2, case.num_classes))
    torch.testing.assert_close(logits, case.model.forward_features(x).logits)


@torch.no_grad()
def test_feature_info_matches_real_shapes(case: Case) -> None:
    info = case.model.feature_info
    feats = case.model.forward_features(_x(case.name, case.shape), preact=True)
    assert info.num_classes == case.num_classes
    assert len(feats.stages) == info.num_stages
    for i, stage in enumerate(feats.stages):
        assert tuple(stage.shape[1:]) == info.stage_shape(i), f"stage {i}"
    assert [p.shape for p in feats.preact] == [s.shape for s in feats.stages]
    assert feats.pooled is not None and tuple(feats.pooled.shape) == (2, info.pooled_dim)
    assert case.model.forward_features(_x(case.name, case.shape)).preact == []


@pytest.mark.parametrize("name", quick_sample(list_models(), every=4))
def test_train_step_then_strict_checkpoint_roundtrip(name: str, tmp_path: Path) -> None:
    """Gradients reach every parameter through logits and features (no in-place op breaks autograd);
    the model, its BN statistics moved by that step, is saved as the published teachers are
    (``{'model': state_dict}``) and loaded strictly into a fresh model that then agrees with it."""
    shape, num_classes = _inputs(name)[-1]  # the smallest input: keys do not depend on it
    model = _build(name, shape, num_classes).train()
    feats = model.forward_features(_x(name, shape), preact=True)
    loss = feats.logits.sum() + sum(f.mean() for f in feats.stages + feats.preact) + feats.pooled.mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"

    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": model.state_dict()}, path)
    # no random init of weights that are loaded next (2 s of tv_resnet152's test); transformers hold non-persistent
    # buffers (position ids) that a state dict does not carry, so they are built for real
    with torch.device("meta") if model_spec(name).input_kind not in ("tokens", "next_tokens") else \
            contextlib.nullcontext():
        fresh = _build(name, shape, num_classes)
    fresh.load_state_dict(torch.load(path, weights_only=True)["model"], strict=True, assign=True)
    x = _x(name, shape)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


def test_reference_table(zoo: Case) -> None:
    params, head, channels, pooled = REFERENCE[zoo.name]
    assert zoo.model.num_parameters == params
    assert tuple(zoo.model.state_dict()[f"{head}.weight"].shape) == (100, pooled)
    assert zoo.model.feature_info.pooled_dim == pooled
    if channels:
        assert zoo.model.feature_info.stage_channels[-len(channels) :] == channels


def test_reference_key_names(zoo: Case) -> None:
    present, absent = KEYS.get(zoo.name, ((), ()))
    keys = set(zoo.model.state_dict())
    assert set(present) <= keys, sorted(set(present) - keys)
    assert not set(absent) & keys


def test_input_size_changes_no_parameter(zoo: Case) -> None:
    """Small inputs only change pooling decisions, which are parameter-free: same keys and shapes."""
    big = zoo.model.state_dict()
    with torch.device("meta"):  # only keys and shapes are compared: skip allocation and init
        small = _build(zoo.name, (3, 8, 8), 100).state_dict()
    assert list(small) == list(big)
    assert all(small[k].shape == big[k].shape for k in big)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (32, (32, 16, 8, 4, 4)),  # the reference skips the 4th pool at 32x32
        (64, (64, 32, 16, 8, 4)),  # and keeps it at 64x64
        (8, (8, 4, 2, 1, 1)),  # digits: pools stop at 1x1
    ],
)
def test_vgg_pooling_follows_input_size(size: int, expected: tuple[int, ...]) -> None:
    model = _build("vgg8", (1, size, size), 10)
    assert tuple(s[0] for s in model.feature_info.stage_sizes) == expected


@torch.no_grad()
def test_preact_is_pre_relu_for_resnet() -> None:
    model = _build("resnet8", (1, 8, 8), 10).eval()
    feats = model.forward_features(torch.randn(2, 1, 8, 8), preact=True)
    for stage, pre in zip(feats.stages[1:], feats.preact[1:]):
        torch.testing.assert_close(stage, torch.relu(pre))
    assert (torch.cat([p.flatten() for p in feats.preact[1:]]) < 0).any()


def test_image_models_reject_signals() -> None:
    with pytest.raises(ValueError, match="2-D images"):
        create_model("resnet8", num_classes=10, in_channels=1, input_size=(40,))


def test_cnn1d_norm_option_keeps_the_default_model() -> None:
    """student.norm=batch adds batch norm (conv-BN-ReLU, conv without bias, as in the CIFAR zoo); the default
    stays the BN-free model: same keys, parameter count and initial weights (cached teachers still load)."""
    build = lambda **kw: create_model("cnn1d", num_classes=10, in_channels=1, input_size=(40,), **kw)  # noqa: E731
    torch.manual_seed(0)
    default = build()
    torch.manual_seed(0)
    explicit = build(norm="none")
    keys = [f"convs.{i}.{p}" for i in range(3) for p in ("weight", "bias")] + ["fc.weight", "fc.bias"]
    assert list(default.state_dict()) == keys and default.num_parameters == 44042
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))
    bn = build(channels=[8, 8, 8], norm="batch")
    assert {k for k in bn.state_dict() if k.startswith("convs.")} == {f"convs.{i}.weight" for i in range(3)}
    assert "norms.2.running_var" in bn.state_dict() and bn.num_parameters == 1058
    x = torch.randn(4, 1, 40)
    bn.eval()
    features = bn.forward_features(x, preact=True)
    torch.testing.assert_close(features.logits, bn(x))
    assert (features.preact[0] < 0).any() and torch.equal(features.stages[0], features.preact[0].relu())
    with pytest.raises(ValueError, match="norm=layer is not valid; valid choices: none, batch"):
        build(norm="layer")


def test_cnn1d_depth_makes_a_deeper_model_with_the_same_widths_and_maps() -> None:
    """teacher.depth=3: three conv layers per stage (the strided one, then two that keep the length), as the
    CIFAR zoo's teachers are deeper versions of their students; depth 1 is the default model, unchanged."""
    build = lambda **kw: create_model("cnn1d", num_classes=10, in_channels=1, input_size=(40,), **kw)  # noqa: E731
    torch.manual_seed(0)
    default = build(channels=[8, 8, 8], norm="batch")
    torch.manual_seed(0)
    explicit = build(channels=[8, 8, 8], norm="batch", depth=1)
    assert list(default.state_dict()) == list(explicit.state_dict()) and default.deep is None
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))
    deep = build(channels=[8, 8, 8], norm="batch", depth=3).eval()
    assert deep.feature_info == default.feature_info  # same stage widths and map sizes: the features pair up
    # 2 more conv layers (8x8x3, no bias) and batch norms (2x8 weights and biases) in each of the 3 stages
    assert deep.num_parameters - default.num_parameters == 3 * 2 * (8 * 8 * 3 + 2 * 8)
    assert "deep.2.convs.1.weight" in deep.state_dict() and "deep.2.norms.1.running_var" in deep.state_dict()
    x = torch.randn(4, 1, 40)
    features = deep.forward_features(x, preact=True)
    torch.testing.assert_close(features.logits, deep(x))
    assert [tuple(s.shape[1:]) for s in features.stages] == [(8, 19), (8, 9), (8, 4)]
    assert all(torch.equal(s, p.relu()) for s, p in zip(features.stages, features.preact))
    parts, channels = deep.split_stages()  # the schemes that branch a model (ONE) see whole stages
    y = x
    for part in parts:
        y = part(y)
    torch.testing.assert_close(y, deep(x))
    assert channels == [8, 8]
    assert sum(p.numel() for part in parts for p in part.parameters()) == deep.num_parameters
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=f"depth={bad} is not valid"):
            build(depth=bad)
