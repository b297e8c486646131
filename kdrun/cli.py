"""The ``kdrun`` command: a Hydra app, with a pre-flight check that turns config mistakes into one line.

``main`` first composes the config the way Hydra will and checks it (unknown options, bad
values, a run directory that holds a different run); only then does Hydra create the run
directory and call :func:`hydra_app`. So bad input never creates or overwrites anything.
"""

from __future__ import annotations

import logging
import shutil
import sys
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from kdrun.config_store import register_configs
from kdrun.errors import KdrunError
from kdrun.preflight import preflight
from kdrun.report.run_status import mark_failed

log = logging.getLogger("kdrun")
_new_run_dir: Path | None = None  # set by main(): the run directory this invocation creates, if any


def config_dir() -> str:
    """``conf/`` of a source checkout, or the copy shipped inside the installed wheel (``kdrun/conf``)."""
    shipped = resources.files("kdrun") / "conf"
    if shipped.is_dir() and (shipped / "config.yaml").is_file():
        return str(shipped)
    return str(Path(__file__).resolve().parent.parent / "conf")


CONFIG_DIR = config_dir()
register_configs()


def fail(message: str) -> None:
    print(f"kdrun: error: {message}", file=sys.stderr)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_app(cfg: DictConfig) -> float | None:
    from kdrun.pipeline import run

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        results = run(cfg, run_dir)
    except KdrunError as e:
        fail(str(e))
        if hc.mode == RunMode.MULTIRUN:
            mark_failed(run_dir, str(e))  # a sweep reports failed jobs beside the others
            return None
        discard_if_nothing_ran(run_dir, str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        fail(f"interrupted; to resume, run the same command with hydra.run.dir={run_dir}")
        sys.exit(130)
    except Exception as e:
        mark_failed(run_dir, f"{type(e).__name__}: {e}")
        raise
    distilled = results["stages"].get("distilled", {})
    return distilled.get("last_top1")


def discard_if_nothing_ran(run_dir: Path, error: str) -> None:
    """A single run that failed during setup (missing data, bad checkpoint) leaves no half-made directory."""
    if _new_run_dir is not None and run_dir.resolve() == _new_run_dir and not (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        mark_failed(run_dir, error)


def main() -> None:
    global _new_run_dir
    try:
        _new_run_dir = preflight(CONFIG_DIR, sys.argv[1:])
        if _new_run_dir is not None and not any(a.startswith("hydra.run.dir=") for a in sys.argv[1:]):
            # pin the timestamped directory checked above (Hydra would re-evaluate ${now:} a moment later)
            sys.argv.append(f"hydra.run.dir={_new_run_dir}")
    except KdrunError as e:
        fail(str(e))
        sys.exit(2)
    hydra_app()


if __name__ == "__main__":
    main()
