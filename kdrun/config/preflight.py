"""Check a command line before Hydra creates a run directory.

Composes the config exactly as the app will, converts Hydra's multi-line composition errors
into kdrun's one-line form, runs :func:`check_config`, and refuses to reuse a run directory
that holds a run with a different config (so nothing existing is overwritten).
"""

from __future__ import annotations

import difflib
import os
import sys
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kdrun.config.checked import record
from kdrun.config.checks import check_config
from kdrun.config.hydra_flags import config_search, flag_value
from kdrun.config.keys import added_key_target, check_known_keys, unknown_key_message
from kdrun.config.override_values import quote_hint
from kdrun.config.schema import check_types
from kdrun.errors import KdrunError, choice_error, did_you_mean
from kdrun.io import one_line
from kdrun.schemes.registry import STAGE_NAMES, check_scheme
from kdrun.config.sweeps import (check_sweep_dir, config_differences, enumerable, ignored_sweep_warning, inside,
                                 is_multirun, swept_keys)

# Hydra flags after which there is nothing to run (help, printing config) or that change where configs come from.
# (--config-dir is checked: preflight adds the folder as Hydra does; --experimental-rerun, --config-path and
# --config-name are refused, kdrun/config/hydra_flags.py.)
PASS_THROUGH = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-p", "--package", "--info", "-i",
                "--shell-completion", "-sc")


def passes_through(args: list[str]) -> bool:
    """True for Hydra flags after which nothing runs (help, printing the config)."""
    return any(a.split("=")[0] in PASS_THROUGH for a in args)


# (the first job's config with its hydra node, the job configs whose pairs to check, the parsed overrides)
PairCheck = Callable[[DictConfig, list[DictConfig], list], None]


def check_pairs_here(cfg: DictConfig, jobs: list[DictConfig], overrides: list = ()) -> None:
    """Architecture/dataset/method compatibility of these jobs' pairs, on the dataset's static facts, in
    this process: before any data work and before Hydra creates a run folder. Imports torch, so it runs
    after every torch-free check (a parallel sweep runs the same check in its workers instead)."""
    from kdrun.config.resources import check_resources
    from kdrun.engine.speed import parallel_jobs
    from kdrun.schemes.registry import check_before_data

    launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    for job_cfg in jobs:
        check_before_data(job_cfg)
        check_resources(job_cfg, parallel_jobs(), launcher)  # processes and memory, against this machine


def preflight(config_dir: str, args: list[str], pair_check: PairCheck = check_pairs_here,
              parsed: list | None = None) -> DictConfig | None:
    """Check the command; return the composed config of its (first) job, hydra node included,
    or None for flags after which nothing runs (help, printing the config). ``parsed``: the
    command's overrides as parsed already (kdrun.cli parses them once).

    The architecture/method pair checks import torch, so they run last, through ``pair_check``
    (given the composed config, the job configs to check and the overrides): a parallel sweep hands them
    to its worker processes (kdrun/config/sweep_workers.py) so that the sweep's own process never imports
    torch. Every job config checked here is recorded (kdrun/config/checked.py): the run does not check it
    again."""
    if passes_through(args):
        return None
    multirun = is_multirun(args)
    parsed = parse_overrides([a for a in args if not a.startswith("-")]) if parsed is None else parsed
    GlobalHydra.instance().clear()
    try:
        with config_search(config_dir, flag_value(args, "--config-dir"), _searchpath(parsed)):
            groups = _check_group_choices(parsed)
            first = [_first_value(o) for o in parsed]
            cfg = compose_checked(first)
            job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            defaults = Defaults(groups, first, job_cfg)
            check_job(job_cfg, defaults.of(first), groups)
            checked, pair_jobs = [job_cfg], [job_cfg]
            master = None
            if multirun:
                swept, swept_pairs = _check_every_swept_value(parsed, first, defaults)
                checked += swept
                pair_jobs += swept_pairs
                _check_sweeper_params(cfg, first, defaults)
                # a sweep's own config (Hydra's multirun.yaml) is composed without the swept values
                master = compose_checked([o.input_line for o in parsed if not o.is_sweep_override()])
    finally:
        GlobalHydra.instance().clear()
    if multirun:
        check_sweep_dir(Path(master.hydra.sweep.dir), master, swept_keys(parsed))
        check_writable(Path(master.hydra.sweep.dir), "hydra.sweep.dir")
    else:
        check_run_dir(Path(cfg.hydra.run.dir), job_cfg)
        check_writable(Path(cfg.hydra.run.dir), "hydra.run.dir")
    warning = ignored_sweep_warning(checked, swept_keys(parsed)) if multirun else None
    if warning:  # a sweep that runs, but some of whose runs would be the same
        print(f"kdrun: warning: {warning}", file=sys.stderr)
    record(checked)  # before the pair checks start a parallel sweep's workers: they inherit the record
    pair_check(cfg, pair_jobs, parsed)
    return cfg


def _searchpath(parsed: list) -> list[str] | None:
    """The folders of a ``hydra.searchpath=[...]`` override (a list of strings), or None."""
    value = next((o.value() for o in parsed if o.get_key_element() == "hydra.searchpath"), None)
    return [str(v) for v in value] if isinstance(value, list) else None


def check_writable(folder: Path, key: str) -> None:
    """The folder (or the nearest one that exists above it) accepts writes: a read-only or foreign
    output folder is one line now, not Hydra's tracebacks when it creates the run folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():  # a file where the folder (or one above it) would be
        what = "is a file, not a folder" if existing == folder else f"cannot be made: {existing} is a file"
        raise KdrunError(f"{key}={folder} {what}; choose another {key} (or paths.outputs)")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only filesystem" if _read_only_fs(existing) else "permission denied"
        raise KdrunError(f"{key}={folder}: cannot write in {existing} ({reason}); choose a writable "
                         f"paths.outputs or {key}")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _check_every_swept_value(parsed: list, first: list[str], defaults: Defaults
                             ) -> tuple[list[DictConfig], list[DictConfig]]:  # fmt: skip
    """Each value of each swept key, in the first job's config: a bad value in the middle of a long
    sweep is reported now, not when its job starts hours later. Returns the configs checked, and those
    of them whose model pairs need checking (a swept teacher, student, method, ...)."""
    checked, pair_jobs = [], []
    for i, o in enumerate(parsed):
        if not enumerable(o):  # interval(): the sweeper samples it; each trial's job checks its value
            continue
        for value in list(o.sweep_string_iterator())[1:]:
            overrides = [*first[:i], f"{o.get_key_element()}={value}", *first[i + 1:]]
            cfg = compose_checked(overrides)
            job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            check_job(job_cfg, defaults.of(overrides), defaults.groups)
            checked.append(job_cfg)
            key = o.key_or_group.lstrip("+~")
            if key.split(".")[0] in PAIR_KEYS or key in RESOURCE_KEYS:
                pair_jobs.append(job_cfg)
    return checked, pair_jobs


def _check_sweeper_params(cfg: DictConfig, first: list[str], defaults: Defaults) -> None:
    """A search sweeper's space given in config (``hydra.sweeper.params``, conf/hparams_search/): each key
    exists and a value inside each range makes a valid job. The values a trial samples are checked when
    its job starts (kdrun/runs/pipeline.py)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if not isinstance(params, DictConfig) or not params:
        return
    given = {o.split("=", 1)[0].lstrip("+~") for o in first}
    lines = [f"{k}={v}" for k, v in params.items() if str(k) not in given]
    try:
        space = OverridesParser.create().parse_overrides(lines)
    except HydraException as e:
        raise KdrunError(f"hydra.sweeper.params: cannot parse {one_line(e, limit=None, lines=2)}") from None
    overrides = [*first, *(_first_value(o) for o in space)]
    job = compose_checked(overrides)
    check_job(OmegaConf.masked_copy(job, [k for k in job if k != "hydra"]), defaults.of(overrides), defaults.groups)


def check_job(job_cfg: DictConfig, defaults: DictConfig, groups: Iterable[str] = ()) -> None:
    """Keys first (config/keys.py: each one something reads), types (config/schema.py), then values and
    combinations (config/checks.py), then the scheme's options and stages. ``groups``: the config groups, for
    the did-you-mean of a key."""
    try:
        given = OmegaConf.to_container(job_cfg, resolve=True)
        default = OmegaConf.to_container(defaults, resolve=True)
    except OmegaConfBaseException as e:
        raise KdrunError(one_line(e, limit=None, lines=2)) from None
    check_known_keys(given, default, groups)
    check_types(given, default)
    check_config(job_cfg, STAGE_NAMES)
    check_scheme(job_cfg)


class Defaults:
    """The config the chosen options' files give, without the command line's value overrides: where the
    types of open-ended groups (a method's options, ...) come from. Composed once per set of options: a
    command of group choices only is its own default (``kdrun method=rkd``), and the values of a swept key
    (``distill.T=1,2,4,8``) share their options' defaults."""

    def __init__(self, groups: set[str], first: list[str], first_job: DictConfig) -> None:
        self.groups = groups
        self.composed: dict[tuple[str, ...], DictConfig] = {}
        keep = self._options(first)
        if len(keep) == len(first):
            self.composed[keep] = first_job

    def _options(self, overrides: list[str]) -> tuple[str, ...]:
        # teacher=resnet8, +experiment=..., teacher@assistant=resnet8: an option of a group
        return tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~").split("@")[0] in self.groups)

    def of(self, overrides: list[str]) -> DictConfig:
        keep = self._options(overrides)
        if keep not in self.composed:
            cfg = compose_checked(list(keep))
            self.composed[keep] = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        return self.composed[keep]


# Keys whose swept values change what a job takes from the machine (kdrun/config/resources.py).
RESOURCE_KEYS = ("distill.transfer_size", "distill.transfer_set", "device", "device.nproc", "device.type")
# Top-level keys whose swept values change which models a job builds or how they pair up.
PAIR_KEYS = ("teacher", "student", "assistant", "method", "dataset", "scheme", "experiment")


def parse_overrides(overrides: list[str]) -> list:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        hint = quote_hint(overrides)  # ~ or a non-ASCII letter outside quotes
        raise KdrunError(f"cannot parse the command line: {hint or one_line(e, limit=None, lines=2)}") from None


def _first_value(o) -> str:
    """The override with a sweep (a,b,c) replaced by its first value: the config of the first job
    (``interval(a,b)``: a value inside it, see kdrun/config/sweeps.py)."""
    if o.is_sweep_override() and not enumerable(o):
        return f"{o.get_key_element()}={inside(o)}"
    if o.is_sweep_override():
        values = list(o.sweep_string_iterator())
        return f"{o.get_key_element()}={values[0]}" if values else o.input_line
    return o.input_line


def _check_group_choices(parsed: list) -> set[str]:
    """Every group option on the command line exists; returns the names of the config groups."""
    loader = GlobalHydra.instance().config_loader()
    groups = set(loader.list_groups("")) | {f"hydra/{g}" for g in loader.list_groups("hydra")}
    for o in parsed:
        key = o.key_or_group
        if key not in groups or o.is_delete():
            continue
        options = group_options(loader, key)
        values = list(o.sweep_string_iterator()) if enumerable(o) else [o.value()]
        values = [v for value in values for v in (value if isinstance(value, list) else [value])]  # logger=[a,b]
        for value in values:
            if value is not None and str(value) not in options:
                raise _unknown_option(key, str(value), options)
    return groups


def group_options(loader, group: str) -> list[str]:
    """A group's options, nested ones included as paths (``experiment=cifar100/resnet56-resnet20/kd``)."""
    options = list(loader.get_group_options(group))
    for sub in loader.list_groups(group):
        options += [f"{sub}/{option}" for option in group_options(loader, f"{group}/{sub}")]
    return options


# Launchers that Hydra plugins provide, and how to install each (pyproject.toml's ``launchers`` extra).
EXTRA = 'pip install -e ".[launchers]" (from a checkout) or pip install "kdrun[launchers]"'
PLUGIN_LAUNCHERS = {"joblib": EXTRA, "submitit_local": EXTRA, "submitit_slurm": EXTRA,
                    "ray": "pip install hydra-ray-launcher", "rq": "pip install hydra-rq-launcher"}


def _unknown_option(key: str, value: str, options: list[str]) -> KdrunError:
    if key == "hydra/launcher" and value in PLUGIN_LAUNCHERS:
        return KdrunError(f"hydra/launcher={value} needs a Hydra launcher plugin that is not installed; install "
                          f"it with {PLUGIN_LAUNCHERS[value]}; launchers here: {', '.join(sorted(options))}")
    if len(options) <= 40:
        return choice_error(key, value, options, f"(no such {key})")
    # hundreds of presets: name the closest ones and where the full list is
    close = difflib.get_close_matches(value, options, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}; " if close else ""
    return KdrunError(f"{key}={value} is not valid (no such {key}); {did_you_mean(value, options)}{hint}"
                      f"all {len(options)} choices: kdrun --list presets")


def compose_checked(overrides: list[str]) -> DictConfig:
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as e:
        raise KdrunError(one_line(e, limit=None, lines=2)) from None
    except yaml.YAMLError as e:  # a config file that is not plain YAML (a !!python tag, a syntax error)
        raise KdrunError(yaml_problem(e)) from None
    except ValueError as e:  # Hydra's check of a group override's value (``logger=null``): one line too
        raise KdrunError(one_line(e, limit=None, lines=2)) from None
    except (HydraException, OmegaConfBaseException) as e:
        unknown = re.search(r"Could not override '([^']+)'", str(e))
        message = _unknown_key(unknown.group(1), overrides) if unknown else one_line(e, limit=None, lines=2)
        raise KdrunError(message) from None


def yaml_problem(e: yaml.YAMLError) -> str:
    """One line naming the config file, the line and what YAML could not read there."""
    mark = getattr(e, "problem_mark", None)
    where = f"config file {mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
    problem = getattr(e, "problem", None) or one_line(e)
    if "python/" in problem:  # !!python/object/apply:... would build Python objects: Hydra's loader refuses it
        return (f"{where}: {problem}; configs are plain YAML, nothing in them runs code: write the value as "
                f"text, or use _target_ for an object kdrun builds")
    return f"{where}: {problem} (not valid YAML); fix that line"


def _unknown_key(key: str, overrides: list[str]) -> str:
    """``distill.alhpa=0.5``: name the key, the closest existing one, and the keys beside it; the ``+`` form
    only where a key may be added (below a ``_target_`` that takes it: kdrun/config/keys.py)."""
    rest = [o for o in overrides if o.split("=")[0] != key]
    value = next((o.split("=", 1)[1] for o in overrides if o.split("=")[0] == key and "=" in o), None)
    try:
        tree = OmegaConf.to_container(compose(config_name="config", overrides=rest, return_hydra_config=True))
        groups = GlobalHydra.instance().config_loader().list_groups("")
    except (HydraException, OmegaConfBaseException):
        tree, groups = {}, []
    target = added_key_target(tree, key)
    if target is not None:
        return f"{key} is not in the config; to pass it to {target}, write +{key}={value if value is not None else '...'}"
    return unknown_key_message(key, value, tree, groups)


def check_run_dir(run_dir: Path, job_cfg: DictConfig) -> None:
    """A run directory may be reused only by the same config (that is how a run resumes)."""
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    new = OmegaConf.to_container(job_cfg, resolve=False)
    diff = sorted(config_differences(old, new))
    if diff:
        raise KdrunError(f"hydra.run.dir={run_dir} holds a run with a different config (differs in: "
                         f"{', '.join(diff[:5])}); resume it with the same options or choose a new hydra.run.dir")
