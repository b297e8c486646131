"""kdrun-report on run folders written the way runs write them: grouping, statistics, status, files."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from rich.console import Console

from kdrun.report.aggregate import summarize
from kdrun.report.jobs import find_jobs
from kdrun.report.plots import MARKERS, _size_points, curves, figure_title, size_figure, size_plot
from kdrun.report.report_cli import build_report, main

STAGE_PARAMS = {"teacher": 2410, "baseline": 1210, "distilled": 1210}


def write_job(path: Path, overrides: list[str], distill: dict, seed: int, top1: dict[str, float] | None,
              status: str = "completed", error: str | None = None, method: str = "kd", lr: float = 0.05) -> None:
    """A job folder with the files a kdrun job writes (.hydra/*.yaml, results.json, metrics.jsonl)."""
    hydra_dir = path / ".hydra"
    hydra_dir.mkdir(parents=True)
    config = {"seed": seed, "name": "sweep", "paths": {"outputs": "outputs"}, "distill": distill,
              "method": {"name": method, "_target_": f"kdrun.methods.{method}.X"}, "trainer": {"lr": lr}}
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {"method": method}}}}))
    if top1 is None:
        return
    stages = {s: {"role": s, "arch": "mlp", "method": "ce" if s != "distilled" else method, "in_table": True,
                  "last_top1": v, "best_top1": v + 1.0, "best_epoch": 2, "epochs": 2, "params": STAGE_PARAMS[s],
                  "size_bytes": 4 * STAGE_PARAMS[s] + 800}
              for s, v in top1.items()}
    results = {"status": status, "seed": seed, "stages": stages, "dataset": "digits", "method": method, **({"error": error} if error else {})}
    (path / "results.json").write_text(json.dumps(results))
    lines = [json.dumps({"stage": s, "epoch": e, "val_top1": v - 2 + e, "val_loss": 1.0, "lr": 0.1})
             for s, v in top1.items() for e in (1, 2)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def top1_of(T: float, alpha: float, seed: int) -> dict[str, float]:
    return {"teacher": 90.0, "baseline": 60.0 + seed, "distilled": 60.0 + 10 * alpha + T + 2 * seed}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A 2 x 2 x 2-seed sweep with the folder layout of `kdrun -m distill.T=1,4 distill.alpha=0.1,0.9 seed=0,1`."""
    for T in (1, 4):
        for alpha in (0.1, 0.9):
            for seed in (0, 1):
                overrides = [f"distill.T={T}", f"distill.alpha={alpha}", f"seed={seed}", "dataset=digits", "name=s"]
                write_job(tmp_path / f"distill.T={T},distill.alpha={alpha},seed={seed}", overrides,
                          {"T": T, "alpha": alpha}, seed, top1_of(T, alpha, seed))
    return tmp_path


def test_groups_by_what_differs_and_averages_seeds(sweep: Path):
    summary = summarize(find_jobs(sweep))
    assert summary.keys == ["distill.T", "distill.alpha"]
    assert summary.common == {"dataset": "digits"}
    assert [tuple(g.settings.values()) for g in summary.groups] == [(1, 0.1), (1, 0.9), (4, 0.1), (4, 0.9)]
    g = summary.groups[3]  # T=4, alpha=0.9
    values = [top1_of(4, 0.9, s)["distilled"] for s in (0, 1)]
    assert g.stages["distilled"].mean == pytest.approx(statistics.fmean(values))
    assert g.stages["distilled"].std == pytest.approx(statistics.stdev(values))
    assert g.best.mean == pytest.approx(statistics.fmean(values) + 1.0)
    deltas = [top1_of(4, 0.9, s)["distilled"] - top1_of(4, 0.9, s)["baseline"] for s in (0, 1)]
    assert g.delta.mean == pytest.approx(statistics.fmean(deltas))
    assert g.delta.std == pytest.approx(statistics.stdev(deltas))
    assert g.status == "2 done" and summary.primary == "distilled"


def test_report_files_table_and_heat_map(sweep: Path):
    console = Console(file=io.StringIO(), width=200)
    report = build_report(sweep, console=console)
    printed = console.file.getvalue()
    assert "8 runs: 8 completed" in printed and "common settings: dataset=digits" in printed
    assert "74.00 ± 1.41" in printed  # T=4, alpha=0.9: distilled 73 (seed 0) and 75 (seed 1)
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["distill.T"], r["distill.alpha"], r["runs"]) for r in rows] == [
        ("1", "0.1", "2"), ("1", "0.9", "2"), ("4", "0.1", "2"), ("4", "0.9", "2")]
    assert float(rows[0]["distilled_top1_mean"]) == pytest.approx(63.0) and rows[0]["distilled_top1_n"] == "2"
    image = matplotlib.image.imread(sweep / "plots" / "heatmap_T_alpha.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    names = sorted(p.name for p in report.files)
    assert names == ["curves.png", "heatmap_T_alpha.png", "report.csv", "report.md", "size_vs_top1.png"]
    md = (sweep / "report.md").read_text()
    assert "| distill.T | distill.alpha | runs | teacher top-1 |" in md and "![curves](plots/curves.png)" in md


def test_failed_and_unfinished_runs_are_shown(sweep: Path):
    setting = ["distill.T=8", "distill.alpha=0.1", "dataset=digits"]
    write_job(sweep / "distill.T=8,distill.alpha=0.1,seed=0", [*setting, "seed=0"], {"T": 8, "alpha": 0.1}, 0,
              {"teacher": 90.0, "baseline": 60.0}, status="failed", error="CUDA out of memory")
    write_job(sweep / "distill.T=8,distill.alpha=0.1,seed=1", [*setting, "seed=1"], {"T": 8, "alpha": 0.1}, 1,
              None)  # started by Hydra, no results yet
    console = Console(file=io.StringIO(), width=200)
    report = build_report(sweep, console=console, plots=False)
    group = report.summary.groups[-1]
    assert group.settings == {"distill.T": 8, "distill.alpha": 0.1}
    assert group.status == "1 failed, 1 unfinished"
    assert group.stages["teacher"].mean == 90.0 and group.stages["distilled"].mean is None
    printed = console.file.getvalue()
    assert "failed: distill.T=8,distill.alpha=0.1,seed=0: CUDA out of memory" in printed
    assert "unfinished: distill.T=8,distill.alpha=0.1,seed=1" in printed
    md = (sweep / "report.md").read_text()
    assert "## Failed and unfinished runs" in md and "CUDA out of memory" in md


def test_settings_compare_by_value_and_config_edits_split_groups(tmp_path: Path):
    write_job(tmp_path / "a", ["distill.T=4", "seed=0"], {"T": 4.0, "alpha": 0.9}, 0, top1_of(4, 0.9, 0))
    write_job(tmp_path / "b", ["distill.T=4.0", "seed=1"], {"T": 4.0, "alpha": 0.9}, 1, top1_of(4, 0.9, 1))
    summary = summarize(find_jobs(tmp_path))
    assert summary.keys == [] and len(summary.groups) == 1 and summary.groups[0].stages["teacher"].n == 2
    write_job(tmp_path / "c", ["distill.T=4", "seed=2"], {"T": 4.0, "alpha": 0.9}, 2, top1_of(4, 0.9, 2), lr=0.1)
    summary = summarize(find_jobs(tmp_path))
    assert summary.keys == ["trainer.lr"]
    assert [(g.settings["trainer.lr"], len(g.jobs)) for g in summary.groups] == [(0.05, 2), (0.1, 1)]


def test_one_heat_map_per_value_of_the_other_swept_settings(tmp_path: Path):
    for method in ("kd", "rkd"):
        for T in (1, 4):
            write_job(tmp_path / f"method={method},distill.T={T}", [f"method={method}", f"distill.T={T}"],
                      {"T": T, "alpha": 0.9}, 0, top1_of(T, 0.9, 0), method=method)
    report = build_report(tmp_path, console=Console(file=io.StringIO()))
    assert report.summary.keys == ["method", "distill.T"]
    maps = sorted(p.name for p in report.files if p.name.startswith("heatmap"))
    assert maps == ["heatmap_T_alpha_method=kd.png", "heatmap_T_alpha_method=rkd.png"]


def test_single_run_report_shows_its_stages(tmp_path: Path):
    run = tmp_path / "runs" / "r1"
    write_job(run, [], {"T": 4, "alpha": 0.9}, 0, top1_of(4, 0.9, 0))
    console = Console(file=io.StringIO(), width=200)
    report = build_report(run, console=console)
    printed = console.file.getvalue()
    assert "model" in printed and "distilled" in printed  # the run's own (compact) comparison table
    assert "size vs teacher" in (run / "report.md").read_text()  # every column in the Markdown report
    assert (run / "report.md").is_file() and (run / "plots" / "curves.png").is_file()
    assert [g.settings for g in report.summary.groups] == [{}]


def test_command_line_errors_are_one_line(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kdrun-report: error: PATH=") and "does not exist" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "holds no kdrun run" in capsys.readouterr().err


def test_list_settings_print_as_typed(tmp_path: Path):
    for seed in (0, 1):  # a list value is not rich markup: "[teacher,distilled]" must survive printing
        write_job(tmp_path / f"seed={seed}", [f"seed={seed}", "stages=[teacher,distilled]"], {"T": 4}, seed,
                  top1_of(4, 0.9, seed))
        config_path = tmp_path / f"seed={seed}" / ".hydra" / "config.yaml"
        config_path.write_text(config_path.read_text() + "stages: [teacher, distilled]\n")
    console = Console(file=io.StringIO(), width=200)
    build_report(tmp_path, console=console, plots=False)
    assert "stages=[teacher,distilled]" in console.file.getvalue()


def test_figures_name_dataset_pair_and_method(sweep: Path, tmp_path: Path):
    assert figure_title(summarize(find_jobs(sweep))) == "digits, mlp → mlp, method=kd"
    write_job(tmp_path / "a", ["method=kd"], {"T": 4}, 0, top1_of(4, 0.9, 0), method="kd")
    write_job(tmp_path / "b", ["method=rkd"], {"T": 4}, 0, top1_of(4, 0.9, 0), method="rkd")
    assert figure_title(summarize(find_jobs(tmp_path))) == "digits, mlp → mlp, method=kd | method=rkd"


def test_points_sit_at_their_true_size_and_coincident_ones_stay_visible(sweep: Path):
    summary = summarize(find_jobs(sweep))
    points = _size_points(summary)
    fig = size_figure(summary, points)
    ax = fig.axes[0]
    drawn = [(line.get_xdata()[0], line.get_ydata()[0], line.get_markerfacecolor())
             for line in ax.lines if line.get_marker() in MARKERS]  # not the error bars' caps
    assert sorted((x, y) for x, y, _ in drawn) == sorted((p[0], p[1]) for p in points)  # nothing moved
    hollow = [d for d in drawn if d[2] == "none"]
    assert hollow and all(any(o[0] == h[0] and abs(o[1] - h[1]) < 1 and o[2] != "none" for o in drawn)
                          for h in hollow)
    from matplotlib.legend import Legend

    legends = [a for a in [*ax.artists, ax.get_legend()] if isinstance(a, Legend)]
    assert "hollow: on another point" in [t.get_text() for leg in legends for t in leg.get_texts()]


def test_one_size_everywhere_draws_no_size_plot(tmp_path: Path):
    write_job(tmp_path / "a", ["seed=0"], {"T": 4}, 0, {"baseline": 60.0, "distilled": 70.0})
    assert size_plot(summarize(find_jobs(tmp_path)), tmp_path / "size.png") is None


def test_sweep_curves_are_coloured_by_run_labelled_by_what_varies_with_legends_inside(sweep: Path, tmp_path: Path):
    summary = summarize(find_jobs(sweep))
    path = curves(summary, tmp_path / "curves.png")
    assert path.is_file() and path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    import matplotlib.image as mpimg  # noqa: F401 - the PNG is a real image
    assert mpimg.imread(path).ndim == 3


def test_help_is_plain_text_that_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and "report.md" in text and "examples:" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_stage_training_several_models_plots_a_point_per_model(tmp_path: Path):
    run = tmp_path / "run"
    write_job(run, [], {"T": 1}, 0, {"baseline": 60.0})
    results = json.loads((run / "results.json").read_text())
    results["stages"]["mutual"] = {"role": "mutual", "arch": "mlp", "method": "dml", "in_table": True,
                                   "last_top1": 61.0, "best_top1": 61.0, "params": 1210, "peers": {"p1": "mlp", "p2": "cnn1d"},
                                   "models": {"p1": {"last_top1": 61.0, "size_bytes": 5640},
                                              "p2": {"last_top1": 58.0, "size_bytes": 9000}}}
    (run / "results.json").write_text(json.dumps(results))
    points = _size_points(summarize(find_jobs(run)))
    assert sorted((p[0], p[1], p[3], p[5]) for p in points) == [
        (5640, 60.0, "baseline", "mlp"), (5640, 61.0, "mutual", "mlp"), (9000, 58.0, "mutual", "cnn1d")]


def test_printed_paths_and_bracketed_settings_are_not_taken_for_markup(tmp_path: Path):
    """Rich reads "[...]" as markup: a sweep folder or swept value holding brackets must print as it is, so a
    printed path exists as printed and the title is not garbled."""
    root = tmp_path / "sweep[teacher,baseline]"
    for stages in ("[teacher,baseline]", "[teacher,distilled]"):
        write_job(root / f"stages={stages}", [f"stages={stages}", "name=s"], {"T": 4, "alpha": 0.9}, 0,
                  top1_of(4, 0.9, 0))
    out = io.StringIO()
    build_report(root, console=Console(file=out, width=200), plots=False)
    printed = out.getvalue()
    assert "[teacher,baseline]" in printed and "[teacher,distilled]" in printed
    assert f"kdrun sweep: {root.name}" in printed
    path = printed.split("every stage's column: ")[1].split()[0]
    assert Path(path).is_file(), path
