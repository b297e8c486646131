"""Sweep folders that a re-run finds again.

``kdrun -m distill.T=1,2 distill.alpha=0.1,0.9 seed=0,1`` writes every job into

    outputs/sweeps/distill.T=1,2__distill.alpha=0.1,0.9__seed=0,1/distill.T=1,distill.alpha=0.1,seed=0/

The sweep folder is named after the command's overrides (sorted, so their order does not
matter) and each job folder after the values it sweeps -- not after the clock or a job number --
so running the same command again maps every job to the folder it used before: completed jobs
are skipped, unfinished ones resume, and a grown sweep (another value of T) only adds jobs.
``name=...`` names the sweep folder instead (a fresh repeat, or something short); a full
``hydra.sweep.dir=...`` or ``hydra.sweep.subdir=...`` is left alone.

Both names are made to be copied into a shell and to stay one folder (:func:`folder_name`): a value
keeps only letters, digits and ``._-``; a list of plain words reads ``teacher+baseline``; a path keeps
its last two parts (``dataset.root=/data/set/v2`` -> ``dataset.root=set-v2``); a name stays under
:data:`FOLDER_NAME_MAX` characters. Whenever a value lost something on the way, the name ends in ``~``
and a hash of the full overrides, so two jobs never share a folder and none nests in another, whatever
the values hold (``/``, ``..``, brackets, quotes, very long values).

Before anything runs, :func:`check_sweep_dir` refuses a sweep folder whose earlier sweep had a
different configuration (apart from the swept keys), so changed config files never make a
re-run skip jobs whose results came from the old settings.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError

FOLDER_NAME_MAX = 80  # a sweep's or a job's folder name, hash included
HASH_MARK = "~"  # never in a name that kept every value whole: a shortened name cannot equal a whole one
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")  # a value that needs no quoting in a shell nor in a path
MULTIRUN_FLAGS = ("-m", "--multirun")
EXCLUDE_KEY = "hydra.job.config.override_dirname.exclude_keys"
# Keys that say where things go, not what is computed: never part of a sweep's identity.
BOOKKEEPING = ("name", "paths")


def quote(value: str) -> str:
    """A Hydra override value taken literally (commas, '=' and brackets included)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def enumerable(o) -> bool:
    """A sweep whose values kdrun can list (``a,b,c``, ``choice()``, ``range()``, tagged or not).
    ``interval()`` and other sweeper syntax are the sweeper's to sample: kdrun checks one value
    inside them before the sweep (:func:`inside`) and every trial's own value when its job starts."""
    return o.is_sweep_override() and (o.is_choice_sweep() or o.is_range_sweep())


def inside(o) -> str:
    """A value a sweeper may sample from ``o`` (an interval's middle; geometric for ``tag(log, ...)``),
    as a value to compose the first job's config with."""
    sweep = o.value()
    start, end = sweep.start, sweep.end
    mid = (start * end) ** 0.5 if "log" in sweep.tags and start > 0 and end > 0 else (start + end) / 2
    return str(int(round(mid))) if isinstance(start, int) and isinstance(end, int) else repr(float(mid))


def _is_hydra_key(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def sweep_arguments(args: list[str], parsed: list) -> list[str]:
    """``args`` plus the overrides that give a sweep its stable folders (unchanged without -m)."""
    if not is_multirun(args):
        return args
    keys = {o.key_or_group for o in parsed}
    task = [o for o in parsed if not _is_hydra_key(o.key_or_group) and o.key_or_group != "name"]
    extra = []
    if "name" not in keys and "hydra.sweep.dir" not in keys:
        extra.append(f"name={quote(default_sweep_name(task))}")
    if EXCLUDE_KEY not in keys and "hydra.sweep.subdir" not in keys:
        # job folders show only what varies; with nothing swept, every override names the job
        constant = [o.key_or_group for o in task if not o.is_sweep_override()]
        exclude = ["name", *constant] if any(o.is_sweep_override() for o in task) else ["name"]
        extra.append(f"{EXCLUDE_KEY}=[{','.join(quote(k) for k in exclude)}]")
    return args + extra + optuna_arguments(parsed)


def optuna_arguments(parsed: list) -> list[str]:
    """``hydra/sweeper=optuna`` on the command line: maximize (kdrun returns the primary stage's top-1; the
    plugin minimizes by default) and seed the default TPE sampler, so that running the same command again
    asks for the same trials, finds their folders and skips the finished ones (as a grid sweep does).
    What the command sets itself is left alone; conf/hparams_search/ files set both themselves."""
    keys = {o.key_or_group for o in parsed}
    if not any(o.key_or_group == "hydra/sweeper" and str(o.value()) == "optuna" for o in parsed):
        return []
    extra = [] if "hydra.sweeper.direction" in keys else ["hydra.sweeper.direction=maximize"]
    if not keys & {"hydra/sweeper/sampler", "hydra.sweeper.sampler.seed", "hydra.sweeper.sampler"}:
        extra.append("hydra.sweeper.sampler.seed=0")
    return extra


def default_sweep_name(overrides: list) -> str:
    """The command's overrides, swept ones first, each part sorted: readable, and the same for the same
    command in any order (:func:`folder_name`; constant overrides that do not fit are left to the hash)."""
    swept = sorted((o for o in overrides if o.is_sweep_override()), key=lambda o: o.input_line)
    fixed = sorted((o for o in overrides if not o.is_sweep_override()), key=lambda o: o.input_line)
    items = [(_key_text(o), _swept_text(o) if o.is_sweep_override() else _value_text(_typed(o))) for o in swept + fixed]
    return folder_name(items, "__", [o.input_line for o in swept + fixed]) or "multirun"


def job_dir_name(task_overrides, exclude_keys) -> str:
    """A sweep job's folder (``hydra.sweep.subdir``): the job's overrides but the excluded keys, sorted as
    Hydra's ``override_dirname`` sorts them, in :func:`folder_name`'s form; ``job`` when none is left."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in task_overrides])
    kept = sorted((o for o in parsed if o.key_or_group not in set(exclude_keys or ())), key=lambda o: o.input_line)
    items = [(_key_text(o), _value_text(_typed(o))) for o in kept]
    return folder_name(items, ",", [o.input_line for o in kept]) or "job"


Item = tuple[tuple[str, bool], tuple[str, bool]]  # (key, kept whole), (value, kept whole)


def folder_name(items: list[Item], sep: str, identity: list[str]) -> str:
    """``key=value`` items joined by ``sep``. If a value was shortened, or the items exceed
    :data:`FOLDER_NAME_MAX`, as many whole items as fit, then ``~`` and a hash of ``identity`` (the
    overrides as typed), which tells apart every two sets of overrides."""
    parts = [f"{key}={value}" for (key, _), (value, _) in items]
    text = sep.join(parts)
    if all(k[1] and v[1] for k, v in items) and len(text) <= FOLDER_NAME_MAX:
        return text
    room = FOLDER_NAME_MAX - len(HASH_MARK) - HASH_LEN
    kept = [p for i, p in enumerate(parts) if len(sep.join(parts[: i + 1])) <= room] or [parts[0][:room]]
    digest = hashlib.sha1("\n".join(identity).encode()).hexdigest()[:HASH_LEN]
    return f"{sep.join(kept)}{HASH_MARK}{digest}"


HASH_LEN = 8
VALUE_MAX = 32  # characters of one value in a name (a longer one is cut, and the name hashed)


def _key_text(o) -> tuple[str, bool]:
    key = o.key_or_group
    text = re.sub(r"[^A-Za-z0-9._-]+", ".", key)
    return text, text == key


def _typed(o):
    """An override's value as typed (``false``, not Python's ``False``); a list as a list."""
    value = o.value()
    return value if isinstance(value, list) else o.input_line.split("=", 1)[1]


def _swept_text(o) -> tuple[str, bool]:
    """A swept override's values (``1,2``), each in :func:`_value_text`'s form."""
    try:
        values = [_value_text(v) for v in o.sweep_string_iterator()]
    except Exception:  # noqa: BLE001 - interval() and other sweeper syntax: not a list of values
        return _value_text(o.input_line.split("=", 1)[1])
    return ",".join(v for v, _ in values), all(whole for _, whole in values)


def _value_text(value) -> tuple[str, bool]:
    """A value as a folder name shows it, and whether it was kept whole."""
    if isinstance(value, list) and value and all(_PLAIN.fullmatch(str(v)) for v in value):
        text = "+".join(str(v) for v in value)  # stages=[teacher,baseline] -> teacher+baseline
        return (text, True) if len(text) <= VALUE_MAX else (text[:VALUE_MAX], False)
    text = str(value) if not isinstance(value, (list, dict)) else str(value).replace(" ", "")
    if _PLAIN.fullmatch(text) and len(text) <= VALUE_MAX:
        return text, True
    if "/" in text:  # a path: its last two parts (/data/set/v2 -> set-v2)
        text = "-".join([p for p in text.split("/") if p not in ("", ".", "..")][-2:])
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return text[:VALUE_MAX], False


def jobs_at_once(launcher: DictConfig | None, overrides: list) -> int:
    """Jobs of a sweep that run at the same time: joblib's ``n_jobs`` (negative counts back from the
    cores, as joblib does), at most the number of jobs; 1 with any other launcher."""
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = launcher.get("n_jobs") or 1
    if n_jobs < 0:
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    jobs = math.prod(len(list(o.sweep_string_iterator())) for o in overrides if enumerable(o))
    return max(1, min(n_jobs, jobs))


def config_differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config containers."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += config_differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def swept_keys(overrides: list) -> set[str]:
    return {o.key_or_group for o in overrides if o.is_sweep_override()}


def check_sweep_dir(sweep_dir: Path, master: DictConfig, swept: set[str]) -> None:
    """Refuse to reuse a sweep folder whose earlier sweep differs in a key neither sweep varies."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.load(saved)
    old_overrides = OmegaConf.to_container(old.hydra.overrides.task) if "hydra" in old else []
    ignored = swept | swept_keys(OverridesParser.create().parse_overrides(old_overrides)) | set(BOOKKEEPING)
    old_job = OmegaConf.to_container(OmegaConf.masked_copy(old, [k for k in old if k != "hydra"]), resolve=False)
    new_job = OmegaConf.to_container(OmegaConf.masked_copy(master, [k for k in master if k != "hydra"]),
                                     resolve=False)
    diff = [k for k in sorted(config_differences(old_job, new_job))
            if not any(k == i or k.startswith(i + ".") or k.startswith(i + "/") for i in ignored)]
    if diff:
        raise KdrunError(f"hydra.sweep.dir={sweep_dir} holds a sweep with a different config (differs in: "
                         f"{', '.join(diff[:5])}); re-run it with the same options, or give this sweep another "
                         f"name=...")


def temperature_reader(job_cfg: DictConfig) -> str | None:
    """Where the job's distillation takes its temperature from, when that is not ``distill.T``: the scheme's
    or the method's own ``T`` (scheme=one, method=dkd), or ``""`` when nothing reads one -- ``distill.T``
    feeds only the KD term (and DML's mutual KL), weighted by ``distill.alpha``. None: ``distill.T`` is read."""
    if OmegaConf.select(job_cfg, "scheme.T") is not None:
        return "scheme.T"
    if job_cfg.distill.alpha > 0:
        return None
    return "method.T" if OmegaConf.select(job_cfg, "method.T") is not None else ""


def ignored_sweep_warning(job_cfgs: list[DictConfig], swept: set[str]) -> str | None:
    """One line when a sweep varies ``distill.T`` that its jobs' distillation does not read (five keys are
    named T): its distilled rows would all be the same run."""
    if "distill.T" not in swept:
        return None
    for cfg in job_cfgs:
        reader = temperature_reader(cfg)
        if reader is None:
            continue
        chosen = "scheme=" + str(cfg.scheme.name) if reader == "scheme.T" else "method=" + str(cfg.method.name)
        reads = f"{chosen} reads {reader}" if reader else "nothing reads it"
        instead = f"sweep {reader} instead" if reader else "give distill.alpha > 0 to use the KD term"
        return (f"distill.T is swept, but {reads} (distill.T is the KD term's, off at distill.alpha="
                f"{cfg.distill.alpha}): the distilled rows of these jobs will not differ; {instead}")
    return None
