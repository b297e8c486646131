"""What a scheme is: which stages it can run, which teacher -> student pairs it distils, which row it is about.

A scheme is one file here and one YAML in ``conf/scheme/`` whose ``scheme._target_`` names its class;
the YAML's ``scheme.name`` is the file's name, and the class's. The class is built from the YAML's
other keys (its options, e.g. ``generations``) and declares:

* ``stage_names``: the stages it can run, and ``requires``: which stages a stage uses the models of;
* ``primary``: the row the run is about (a sweep job's return value, the report's comparison) and
  ``reference``: the row differences are taken against (the label-only baseline);
* :meth:`Scheme.pairs`: every teacher -> student pair the configured stages distil with the run's
  method, so the method is built on each of them before anything trains;
* :meth:`Scheme.stages`: the stages themselves, yielded in run order.

This module and the scheme files import no torch at the top: preflight reads the declarations
before anything heavy loads; the stages' builders import what they need when they run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from omegaconf import DictConfig

from kdrun.errors import choice_error
from kdrun.schemes.pair import Pair

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext


def needed(wanted: Iterable[str], requires: Mapping[str, Iterable[str]]) -> set[str]:
    """``wanted`` closed under ``requires`` (stage -> the stages whose models it uses)."""
    out: set[str] = set()
    todo = list(wanted)
    while todo:
        stage = todo.pop()
        if stage not in out:
            out.add(stage)
            todo.extend(requires.get(stage, ()))
    return out


class Scheme:
    """Base class of the schemes; subclasses set the class attributes and implement :meth:`stages`."""

    name: ClassVar[str]
    stage_names: ClassVar[tuple[str, ...]]
    requires: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    primary: ClassVar[str]
    reference: ClassVar[str] = "baseline"

    def check(self, cfg: DictConfig) -> None:
        """The options and the requested ``stages`` are valid (one-line errors; no torch)."""
        for stage in cfg.stages:
            if stage not in self.stage_names:
                raise choice_error("stages", stage, self.stage_names, f"(not a stage of scheme={self.name})")

    def wanted(self, cfg: DictConfig) -> set[str]:
        """The requested stages and the stages they use."""
        return needed(cfg.stages, self.requires)

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        """Every pair the wanted stages distil with the run's method (none by default)."""
        return []

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:  # pragma: no cover - interface
        raise NotImplementedError
