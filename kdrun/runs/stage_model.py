"""A trained row of a finished run as a ready model, from the files the run wrote.

The float rows are rebuilt from the run's config (``.hydra/config.yaml``: the architecture and its options,
the dataset's input shape and class count) and load the weights the row's top-1 was measured with (its
``checkpoint`` in results.json: the last epoch, or the shared cache entry it reused). The int8 row is the
exported program itself (``int8.pt2``, ``torch.export.load``, wrapped so that ``.eval()`` works). Every model is returned on the CPU, in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kdrun.errors import KdrunError
from kdrun.report.files import RESULTS_FILE
from kdrun.report.run_files import read_results

# which config node holds the architecture of a row, by the row's role (every other role is the student's)
MODEL_NODE = {"teacher": "teacher", "assistant": "assistant"}


def run_results(run_dir: Path) -> dict[str, Any]:
    """The run's results.json, read through the one validated shape (kdrun/report/run_files.py)."""
    results = read_results(run_dir)  # a file of another shape: InvalidRunFile, one line naming it
    if results is None:
        raise KdrunError(f"run_dir={run_dir} holds no kdrun run ({RESULTS_FILE} not found); give a run folder "
                         f"such as outputs/runs/<date>_<time>")
    return results


def run_config(run_dir: Path) -> DictConfig:
    """The composed config the run used (Hydra's copy, interpolations kept)."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise KdrunError(f"run_dir={run_dir} has no .hydra/config.yaml: not a kdrun run folder")
    return OmegaConf.load(path)


def table_stages(results: dict[str, Any]) -> list[str]:
    return [name for name, r in results["stages"].items() if isinstance(r, dict) and r.get("in_table", True)]


def load_stage_model(run_dir: str | Path, stage: str = "distilled") -> Any:
    """The model of ``stage`` (a row of the run's table) as an ``nn.Module`` on the CPU in eval mode."""
    run_dir = Path(run_dir)
    results = run_results(run_dir)
    stages = table_stages(results)
    if stage not in stages:
        raise KdrunError(f"stage={stage} is not a row of {run_dir}; rows: {', '.join(stages) or 'none yet'}")
    record = results["stages"][stage]
    if record.get("precision") == "int8" and record.get("artifact"):
        return _int8_program(Path(record["artifact"]), stage)
    checkpoint = record.get("checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        raise KdrunError(f"stage={stage} of {run_dir} has no checkpoint on disk ({checkpoint or 'none recorded'})")
    model = _build(run_config(run_dir), record, stage)
    from kdrun.engine.checkpoint import load_weights

    load_weights(model, checkpoint, record["arch"], f"{stage} checkpoint")
    return model.eval()


def _build(cfg: DictConfig, record: dict[str, Any], stage: str) -> Any:
    from kdrun.tasks.build import build_data, build_model
    from kdrun.data.static_info import static_info

    key = MODEL_NODE.get(record.get("role", ""), "student")
    node = cfg.get(key)
    if node is None or node.get("arch") != record.get("arch"):
        raise KdrunError(f"stage={stage} is a {record.get('arch')} model that the run's config does not describe "
                         f"({key}.arch={node.get('arch') if node is not None else None}); it cannot be rebuilt here")
    info = static_info(OmegaConf.to_container(cfg.dataset, resolve=True))
    if info is None:  # a dataset kdrun can describe only by reading it (a user's builder)
        info = build_data(cfg).info
    return build_model(node, info, key)


def _int8_program(path: Path, stage: str) -> Any:
    import torch

    from kdrun.quant.exported import ExportedModel

    if not path.is_file():
        raise KdrunError(f"stage={stage}: its int8 program {path} is not on disk")
    # the program's module, in a wrapper whose eval()/train() work (an exported module refuses eval())
    return ExportedModel(torch.export.load(str(path)).module()).train(False)
