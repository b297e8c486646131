"""What a run shows in TensorBoard's HParams tab: its settings and its final numbers.

The settings are a fixed set of the usual suspects plus every key the run's command line
overrode (read from its .hydra/overrides.yaml), so whatever a sweep varies is always there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kdrun.report.jobs import per_epoch_set, primary_stage, reference_stage, reported_top1

USUAL = ("teacher.arch", "student.arch", "method.name", "distill.T", "distill.alpha", "distill.gamma",
         "distill.beta", "seed", "trainer.epochs", "trainer.lr", "trainer.batch_size")


def run_hparams(cfg: DictConfig, results: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    values: dict[str, Any] = {"dataset": results.get("dataset"), "scheme": results.get("scheme")}
    for key in USUAL:
        values[key] = OmegaConf.select(cfg, key)
    for line in _overrides(run_dir):
        key, _, text = line.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra") or key == "name" or key in values:
            continue
        node = OmegaConf.select(cfg, key)
        values[key] = text if isinstance(node, DictConfig) or node is None else node
    return {k: _plain(v) for k, v in values.items()}


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``final/<stage>/top1_last`` and ``_best`` per stage (on the set evaluated every epoch, named in the key when
    it is the validation split), ``final/<stage>/top1_test`` (the kept model's), and the primary stage's gain
    over the baseline in test top-1."""
    stages = {k: v for k, v in results.get("stages", {}).items() if v.get("in_table", True)}
    out: dict[str, float] = {}
    tag = "val_" if per_epoch_set(results) == "val" else ""
    for name, s in stages.items():
        out[f"final/{name}/top1_{tag}last"] = float(s["last_top1"])
        out[f"final/{name}/top1_{tag}best"] = float(s["best_top1"])
        out[f"final/{name}/top1_test"] = float(reported_top1(s))
    primary, reference = primary_stage(list(stages), results.get("primary_stage")), reference_stage(results)
    if primary not in (None, reference) and reference in stages:
        out["final/delta_vs_baseline"] = float(reported_top1(stages[primary]) - reported_top1(stages[reference]))
    return out


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.to_container(OmegaConf.load(path))] if path.is_file() else []


def _plain(value: Any) -> Any:
    """TensorBoard takes bool, int, float and str only."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "null"
    return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
