"""Check a command line before Hydra creates a run directory.

Composes the config exactly as the app will, converts Hydra's multi-line composition errors
into kdrun's one-line form, runs :func:`check_config`, and refuses to reuse a run directory
that holds a run with a different config (so nothing existing is overwritten).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kdrun.config_checks import check_config
from kdrun.errors import KdrunError, choice_error
from kdrun.schemes.registry import STAGE_NAMES

# Hydra flags after which there is nothing to run (help, printing config) or that change where configs come from.
PASS_THROUGH = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-p", "--package", "--info", "-i",
                "--shell-completion", "-sc", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                "--experimental-rerun")


def preflight(config_dir: str, args: list[str]) -> Path | None:
    """Check the command line; return the run directory if this run will create it (single runs)."""
    if any(a.split("=")[0] in PASS_THROUGH for a in args):
        return None
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    parsed = _parse(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3", job_name="kdrun"):
            _check_group_choices(parsed)
            first = [_first_value(o) for o in parsed]
            cfg = _compose(first)
    finally:
        GlobalHydra.instance().clear()
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_config(job_cfg, STAGE_NAMES)
    if multirun:
        return None
    run_dir = Path(cfg.hydra.run.dir)
    check_run_dir(run_dir, job_cfg)
    return None if run_dir.exists() else run_dir.resolve()


def _parse(overrides: list[str]) -> list:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise KdrunError(f"cannot parse the command line: {_one_line(e)}") from None


def _first_value(o) -> str:
    """The override with a sweep (a,b,c) replaced by its first value: the config of the first job."""
    if o.is_sweep_override():
        values = list(o.sweep_string_iterator())
        return f"{o.get_key_element()}={values[0]}" if values else o.input_line
    return o.input_line


def _check_group_choices(parsed: list) -> None:
    loader = GlobalHydra.instance().config_loader()
    groups = set(loader.list_groups("")) | {f"hydra/{g}" for g in loader.list_groups("hydra")}
    for o in parsed:
        key = o.key_or_group
        if key not in groups or o.is_delete():
            continue
        options = loader.get_group_options(key)
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        for value in values:
            if value is not None and str(value) not in options:
                raise choice_error(key, value, options, f"(no such {key})")


def _compose(overrides: list[str]) -> DictConfig:
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as e:
        raise KdrunError(_one_line(e)) from None
    except (HydraException, OmegaConfBaseException) as e:
        raise KdrunError(_one_line(e)) from None


def _one_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines else type(e).__name__
    return text.replace("\t", " ")


def check_run_dir(run_dir: Path, job_cfg: DictConfig) -> None:
    """A run directory may be reused only by the same config (that is how a run resumes)."""
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    new = OmegaConf.to_container(job_cfg, resolve=False)
    diff = sorted(_differences(old, new))
    if diff:
        raise KdrunError(f"hydra.run.dir={run_dir} holds a run with a different config (differs in: "
                         f"{', '.join(diff[:5])}); resume it with the same options or choose a new hydra.run.dir")


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
