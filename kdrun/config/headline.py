"""The headline rule: image architectures without ``dataset=`` mean the CIFAR-100 benchmark cell.

``kdrun method=rkd teacher=resnet110 student=resnet20`` names a cell of the published CIFAR-100
tables, where this zoo comes from; the default dataset (MNIST-1D, 1-D signals) cannot feed these
models. So when the command line chooses no ``dataset=`` (and no ``experiment=`` preset, which
chooses its own) and every teacher and student it names (swept values included) is an image
architecture, kdrun adds ``dataset=cifar100`` and, unless ``trainer=`` is given, ``trainer=cifar``
(the reference 240-epoch recipe) to the overrides before Hydra composes them. The run's
``.hydra/overrides.yaml`` and composed config therefore show exactly what ran, and re-running the
same command (to resume) composes the same config. ``dataset.<key>=...`` overrides do not count
as choosing a dataset: they apply to CIFAR-100.
"""

from __future__ import annotations

import sys

from kdrun.models.catalog import ARCHS
from kdrun.config.sweeps import enumerable

BENCHMARK = ("dataset=cifar100", "trainer=cifar")
# transformers on token ids: the embedded text task, its recipe, and latency timed eagerly (Inductor takes minutes
# to compile a transformer on a CPU, and the int8 row runs on eager int8 kernels)
TEXT = ("dataset=listops", "trainer=text", "measure.compile=false")
CAUSAL = ("dataset=listops_lm", "trainer=text", "measure.compile=false")  # GPT-style causal LMs: next-token data


def _choices(parsed: list, group: str) -> list[str] | None:
    """The values the command gives config group ``group`` (a sweep's too), or None if it gives none."""
    for o in parsed:
        if o.key_or_group == group and not o.is_delete():
            return [str(v) for v in o.sweep_string_iterator()] if enumerable(o) else [str(o.value())]
    return None


def _given(parsed: list, override: str) -> bool:
    """Whether the command sets the key of ``override`` itself (``measure.compile=true``)."""
    return any(o.get_key_element() == override.split("=")[0] for o in parsed)


def _kind(arch: str) -> str | None:
    info = ARCHS.get(arch)  # an unknown name has none: the config checks report it with the valid choices
    return info.input_kind if info is not None else None


def _is_image(arch: str) -> bool:
    return _kind(arch) == "image"


def benchmark_overrides(parsed: list) -> list[str]:
    """The overrides the headline rule adds to a command (empty when it does not apply). Transformers
    (token models) get the embedded text task when no dataset is chosen and the text recipe when no trainer is."""
    if _choices(parsed, "experiment") is not None:
        return []
    teachers, students = _choices(parsed, "teacher"), _choices(parsed, "student")
    if teachers is None or students is None:
        return []
    kinds = {_kind(a) for a in teachers + students}
    if kinds in ({"tokens"}, {"next_tokens"}):
        added = TEXT if kinds == {"tokens"} else CAUSAL
        added = added if _choices(parsed, "dataset") is None else added[1:]
        return [o for o in added if _choices(parsed, o.split("=")[0]) is None and not _given(parsed, o)]
    if _choices(parsed, "dataset") is not None or kinds != {"image"}:
        return []
    return [o for o in BENCHMARK if _choices(parsed, o.split("=")[0]) is None]


def apply_benchmark_default(args: list[str], parsed: list) -> list[str]:
    """``args`` with the headline rule's overrides added, saying so on stderr (the run's first lines)."""
    added = benchmark_overrides(parsed)
    if not added:
        return args
    models = f"teacher={_choices(parsed, 'teacher')[0]} and student={_choices(parsed, 'student')[0]}"
    if "trainer=text" in added:
        print(f"kdrun: {models} are transformers: adding {' '.join(added)} (the text recipe: AdamW, linear "
              "warm-up and decay)", file=sys.stderr)
        return [*args, *added]
    print(f"kdrun: no dataset= given and {models} are image architectures: running the CIFAR-100 benchmark "
          f"setting ({' '.join(added)}{', the reference 240-epoch recipe' if 'trainer=cifar' in added else ''}); "
          f"give dataset=... to choose another (dataset=digits: embedded, no download)", file=sys.stderr)
    return [*args, *added]
