"""Which methods exist (their config files) and which teacher/student pairs each one serves.

Tests take their method lists from here instead of keeping them by hand, so a method is tested
the day its ``conf/method/<name>.yaml`` lands. Serving is decided the way a run decides it: the
offline scheme's ``check_pairs`` on the composed config, as the pipeline calls it (kdrun/schemes/context.py).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from conftest import CONF, compose_config

from kdrun.errors import KdrunError

METHODS = tuple(sorted(p.stem for p in (CONF / "method").glob("*.yaml")))


def method_input_kinds(name: str) -> tuple[str, ...]:
    """The input kinds a method serves, from the class its config file names (``Method.input_kinds``)."""
    import importlib

    import yaml

    target = yaml.safe_load((CONF / "method" / f"{name}.yaml").read_text())["method"]["_target_"]
    module, _, cls = target.rpartition(".")
    return tuple(getattr(importlib.import_module(module), cls).input_kinds)


# The methods for image and signal models (the vision literature's), as the pairs below and CIFAR's exercise them.
VISION_METHODS = tuple(n for n in METHODS if {"image", "signal"} <= set(method_input_kinds(n)))

# MNIST-1D-shaped pairs (1 x 40 signals): a narrower CNN student (every regressor and connector is
# built), a CNN student of equal widths (FSP's requirement), an MLP student (vector features only).
TEACHER = ("teacher=cnn1d", "teacher.channels=[16,16,16]")
NARROW = (*TEACHER, "student=cnn1d", "student.channels=[8,12,16]")
EQUAL = (*TEACHER, "student=cnn1d", "student.channels=[16,16,16]")
VECTOR = (*TEACHER, "student=mlp", "student.hidden=[32]")
# Transformers on token ids (kdrun/models/text.py): a 2-layer teacher and a 1-layer student, hidden 32, 2 heads.
BERT = ("layers=2", "hidden=32", "heads=2", "intermediate=64", "max_positions=16", "dropout=0.0")
TEXT = ("teacher=bert", *(f"teacher.{o}" for o in BERT), "student=bert", *(f"student.{o}" for o in BERT[1:]),
        "student.layers=1", "trainer=text")
# Causal LMs on next-token ids (kdrun/models/causal_lm.py): a 2-layer GPT-2 teacher, a 1-layer student.
GPT2 = ("layers=2", "hidden=32", "heads=2", "max_positions=16", "dropout=0.0")
CAUSAL = ("teacher=gpt2", *(f"teacher.{o}" for o in GPT2), "student=gpt2", *(f"student.{o}" for o in GPT2[1:]),
          "student.layers=1", "trainer=text")


@lru_cache(maxsize=1)
def signal_data():
    """MNIST-1D's shape (1 x 40, 10 classes), 64 random samples: in memory, nothing generated on disk."""
    from kdrun.data.base import DataBundle, DataInfo, TensorData

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 40, generator=g), torch.arange(64) % 10
    return DataBundle(DataInfo("mnist1d", "signal", 1, (40,), 10, 64, 64), TensorData(x, y), TensorData(x, y), y)


@lru_cache(maxsize=1)
def text_data():
    """ListOps' shape (19 token ids, up to 12 positions, 10 classes), 64 random sequences with padding."""
    from kdrun.data.base import DataBundle, DataInfo
    from kdrun.data.text import TextData

    g = torch.Generator().manual_seed(0)
    x = torch.randint(4, 19, (64, 12), generator=g)
    lengths = torch.randint(4, 13, (64,), generator=g)
    x[torch.arange(12)[None, :] >= lengths[:, None]] = 0  # padding after each sequence's length
    x[:, 0] = 2  # [CLS]
    y = torch.arange(64) % 10
    info = DataInfo("listops", "tokens", 19, (12,), 10, 64, 64, pad_id=0, tokenizer="corpus:listops")
    return DataBundle(info, TextData(x, y, 0), TextData(x, y, 0), y)


@lru_cache(maxsize=1)
def causal_data():
    """Next-token ids of ListOps' vocabulary (19 ids, 12 positions), 64 random sequences with padding."""
    from kdrun.data.base import DataBundle, DataInfo, TensorData
    from kdrun.data.causal import next_token_targets

    x = text_data().train.x.clone()
    y = next_token_targets(x, 0)
    info = DataInfo("listops_lm", "next_tokens", 19, (12,), 19, 64, 64, pad_id=0, tokenizer="corpus:listops_lm")
    return DataBundle(info, TensorData(x, y), TensorData(x, y), y)


def data_for(pair: tuple[str, ...]):
    return text_data() if pair == TEXT else causal_data() if pair == CAUSAL else signal_data()


@lru_cache(maxsize=None)
def composed(overrides: tuple[str, ...]):
    """``compose_config``, once per command line (composing is the slow part of building a tiny pair)."""
    return compose_config(list(overrides))


def scheme_context(name: str, pair: tuple[str, ...], extra: list[str] | tuple = ()):
    from kdrun.schemes.context import SchemeContext

    return SchemeContext(composed((f"method={name}", "seed=0", *pair, *extra)), data_for(pair))


def refusal(name: str, pair: tuple[str, ...]) -> str | None:
    """None if ``method=name`` serves the pair, else its one-line refusal."""
    from kdrun.schemes.registry import scheme_from_config

    ctx = scheme_context(name, pair)
    try:
        ctx.check_pairs(scheme_from_config(ctx.cfg).pairs(ctx.cfg), "offline")
    except KdrunError as e:
        return str(e)
    return None


@lru_cache(maxsize=None)
def serving(pair: tuple[str, ...]) -> tuple[str, ...]:
    """The methods that accept ``pair``."""
    return tuple(name for name in METHODS if refusal(name, pair) is None)


def first_pair(name: str) -> tuple[str, ...]:
    """The first of NARROW, EQUAL, TEXT, CAUSAL that the method serves (fails the test if none)."""
    import pytest

    refusals = []
    for pair in (NARROW, EQUAL, TEXT, CAUSAL):
        reason = refusal(name, pair)
        if reason is None:
            return pair
        refusals.append(reason)
    pytest.fail(f"method={name} serves none of the test pairs: {refusals}")


def offline_stages(name: str, extra: list[str] | tuple = ()):
    """(teacher, student, stages) as the offline scheme distils ``name`` on its first pair: the init
    stage (if the method has one), then the distilled stage."""
    ctx = scheme_context(name, first_pair(name), extra)
    # another seed than the student's: like a trained teacher, it differs from a same-shaped student
    teacher, student = ctx.model("teacher", seed_offset=1), ctx.model("student")
    return teacher, student, list(ctx.distill_stages("distilled", "distilled", student, teacher))


def has_init_stage(name: str) -> bool:
    """Whether the offline scheme gives ``method=name`` (as configured) an init stage before distilling."""
    ctx = scheme_context(name, first_pair(name))
    return ctx.method(ctx.model("student"), ctx.model("teacher")).init_epochs > 0


def map_methods() -> tuple[str, ...]:
    """Methods on feature maps that serve a narrower student: they refuse the MLP's vector features."""
    vector = serving(VECTOR)
    return tuple(name for name in serving(NARROW) if name not in vector)
