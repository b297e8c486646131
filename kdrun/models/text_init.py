"""DistilBERT's student initialisation: the student starts from the teacher's weights, one layer out of two.

As the reference's ``scripts/extract_distilbert.py`` (huggingface/transformers-research-projects,
``distillation/``) does: the word and position embeddings and the embedding LayerNorm are copied (the
token-type embeddings are not), teacher layer ``layers[i]`` becomes student layer i (attention q/k/v and
output, both LayerNorms, both feed-forward linears: the whole layer), and the prediction head is copied
(there the MLM head; here the pooler and the classifier, when their shapes match). The reference maps
12 -> 6 layers with [0, 2, 4, 7, 9, 11]; ``every_other`` takes [0, 2, 4, ...].

``student.init_from_teacher``: null (off), ``every_other``, or a list of teacher layer indices (0-based).
"""

from __future__ import annotations

import torch
from torch import nn

from kdrun.errors import KdrunError

COPIED_EMBEDDINGS = ("word_embeddings", "position_embeddings", "LayerNorm")


def teacher_layers(spec: str | list[int], teacher_count: int, student_count: int) -> list[int]:
    """The teacher layer each student layer starts from; one line when the spec does not fit the pair."""
    if spec == "every_other":
        layers = [2 * i for i in range(student_count)]
    elif isinstance(spec, (list, tuple)) and all(isinstance(i, int) for i in spec):
        layers = list(spec)
    else:
        raise KdrunError(f"student.init_from_teacher={spec} is not valid; valid: null, every_other, or a list of "
                         f"teacher layer indices, e.g. [0,2,4,7,9,11] (DistilBERT's 12 -> 6)")
    if len(layers) != student_count or not all(0 <= i < teacher_count for i in layers):
        raise KdrunError(f"student.init_from_teacher={spec} gives teacher layers {layers} for a student of "
                         f"{student_count} layers from a teacher of {teacher_count} (indices 0..{teacher_count - 1}); "
                         f"give {student_count} indices, or student.layers <= {(teacher_count + 1) // 2} for every_other")
    return layers


def _copy(dst: nn.Module, src: nn.Module, what: str, load: bool = True) -> None:
    ours, theirs = dst.state_dict(), src.state_dict()
    bad = [k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape]
    if bad:
        raise KdrunError(f"student.init_from_teacher: the student's {what} differs in shape from the teacher's "
                         f"({bad[0]}); the student needs the teacher's hidden, heads and intermediate sizes")
    if load:
        dst.load_state_dict(theirs)


def _pairs(student: nn.Module, teacher: nn.Module, spec: str | list[int]) -> list[tuple[nn.Module, nn.Module, str]]:
    """(student part, teacher part, name) of everything copied."""
    if not (hasattr(student, "hf") and hasattr(teacher, "hf")):
        raise KdrunError("student.init_from_teacher needs a transformer teacher and student (teacher=bert student=bert)")
    s_base, t_base = student.hf.base_model, teacher.hf.base_model
    layers = teacher_layers(spec, len(t_base.encoder.layer), len(s_base.encoder.layer))
    parts = [(getattr(s_base.embeddings, n), getattr(t_base.embeddings, n), f"embeddings.{n}") for n in COPIED_EMBEDDINGS]
    parts += [(s_base.encoder.layer[i], t_base.encoder.layer[j], f"layer {i}") for i, j in enumerate(layers)]
    heads = [(getattr(s_base, "pooler", None), getattr(t_base, "pooler", None), "pooler"),
             (getattr(student.hf, "classifier", None), getattr(teacher.hf, "classifier", None), "classifier")]
    return parts + [(s, t, n) for s, t, n in heads if s is not None and t is not None]


def check_init(student: nn.Module, teacher: nn.Module, spec: str | list[int]) -> None:
    """Whether ``init_from_teacher`` can copy (shapes only: works on the meta device, before any training)."""
    for dst, src, what in _pairs(student, teacher, spec):
        _copy(dst, src, what, load=False)


@torch.no_grad()
def init_from_teacher(student: nn.Module, teacher: nn.Module, spec: str | list[int]) -> list[int]:
    """Copy the teacher's embeddings, the chosen layers and the head into ``student``; returns the layers."""
    for dst, src, what in _pairs(student, teacher, spec):
        _copy(dst, src, what)
    return teacher_layers(spec, len(teacher.hf.base_model.encoder.layer), len(student.hf.base_model.encoder.layer))
