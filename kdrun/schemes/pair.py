"""A teacher -> student pair a scheme distils: what the pre-flight check builds the method on, and what the
stages train. Its own module so that the scheme declarations (base.py) and the context that builds the
pairs (context.py) both import it, and not each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    """A teacher -> student pair distilled with the run's method, as the config keys of the two model
    nodes (``teacher``, ``student``, ``assistant``, ``scheme.teachers[0]``, ...)."""

    teacher: str
    student: str
    stage: str  # the stage that distils it (named in error messages)
    logits_only: bool = False  # the teacher gives only logits (an ensemble): the method may not need features
