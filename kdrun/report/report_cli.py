"""``kdrun-report PATH``: the table and plots of any run, sweep, or folder of them.

Reads only the files runs write (results.json, metrics.jsonl, .hydra/); prints a table with one
row per group of runs that differ only in their seed, and writes next to PATH:

    report.md  report.csv  plots/heatmap_T_alpha*.png  plots/curves.png  plots/size_vs_top1.png

Failed and unfinished runs stay in the table (their status column says so) and are listed with
their errors, so a partly failed sweep still reports everything it has.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from kdrun.errors import KdrunError
from kdrun.io import write_text_atomic
from kdrun.report.aggregate import Summary, format_value, summarize
from kdrun.report.jobs import COMPLETED, Job, find_jobs
from kdrun.report.study import best_line, is_study, rank
from kdrun.report.sweep_table import csv_sweep_table, markdown_sweep_table, rich_sweep_table
from kdrun.report.table import markdown_table, rich_table, table_rows, table_title

REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"
LEGEND = ("top-1 in %: last epoch, mean ± std over seeds; 'best': the best epoch's; "
          "Δ vs baseline: per seed, then averaged")


@dataclass
class Report:
    path: Path
    summary: Summary
    files: list[Path] = field(default_factory=list)

    @property
    def problems(self) -> list[Job]:
        return [j for j in self.summary.jobs if j.status != COMPLETED]


def build_report(path: str | Path, console: Console | None = None, plots: bool = True) -> Report:
    """Read every run under ``path``, print the table, write report.md/csv and the plots beside it."""
    from kdrun.logs import output

    path = Path(path)
    if not path.exists():
        raise KdrunError(f"PATH={path} does not exist; give a run or sweep directory (e.g. outputs/sweeps/<name>)")
    jobs = find_jobs(path)
    if not jobs:
        raise KdrunError(f"PATH={path} holds no runs (no results.json or .hydra/config.yaml below it)")
    report = Report(path, summarize(jobs))
    if is_study(path):  # a search's trials, best first
        rank(report.summary)
    console = console or output()
    _print(report, console)
    if plots:
        from kdrun.report.plots import write_plots

        report.files += write_plots(report.summary, path / PLOTS_DIR)
    write_text_atomic(path / REPORT_CSV, csv_sweep_table(report.summary), "the report")
    write_text_atomic(path / REPORT_MD, markdown_report(report), "the report")
    report.files = [path / REPORT_MD, path / REPORT_CSV, *report.files]
    return report


def _print(report: Report, console: Console) -> None:
    s = report.summary
    single = len(s.jobs) == 1
    if single and s.jobs[0].stages:
        console.print(rich_table(table_rows(s.jobs[0].results), title=table_title(s.jobs[0].results)))
    console.print(rich_sweep_table(s, title=None if single else f"kdrun sweep: {report.path.name} ({_counts(s)})"))
    console.print(LEGEND + f"; every stage's column: {report.path / REPORT_MD}", style="dim")
    if s.common:
        console.print("common settings: " + escape(_common(s)), style="dim")  # [a,b] is not rich markup
    if best_line(s):
        console.print(escape(best_line(s)), style="bold")
    for job in report.problems:
        console.print(escape(f"{job.status}: {_rel(job, report.path)}" + (f": {job.error}" if job.error else "")),
                      style="red" if job.status == "failed" else "yellow")


def markdown_report(report: Report) -> str:
    s = report.summary
    lines = [f"# kdrun report: {report.path.name or report.path}", "", _counts(s), ""]
    if s.common:
        lines += [f"Common settings: {_common(s, code=True)}", ""]
    if best_line(s):
        lines += [f"Trials ranked by the value each returned to the sweeper; {best_line(s)}.", ""]
    if len(s.jobs) == 1 and s.jobs[0].stages:
        lines += ["## Stages", "", markdown_table(table_rows(s.jobs[0].results))]
    lines += ["## Summary" if len(s.jobs) > 1 else "## Run", "", LEGEND + ".", "", markdown_sweep_table(s)]
    if report.problems:
        lines += ["## Failed and unfinished runs", ""]
        lines += [f"- `{_rel(j, report.path)}`: {j.status}" + (f": {j.error}" if j.error else "")
                  for j in report.problems]
        lines.append("")
    pngs = [f for f in report.files if f.suffix == ".png"]
    if pngs:
        lines += ["## Plots", ""]
        lines += [line for f in pngs for line in (f"![{f.stem}]({f.relative_to(report.path).as_posix()})", "")]
    return "\n".join(lines).rstrip() + "\n"


def _counts(s: Summary) -> str:
    n = len(s.jobs)
    parts = [f"{sum(j.status == st for j in s.jobs)} {st}" for st in ("completed", "failed", "unfinished")]
    return f"{n} run{'s' if n != 1 else ''}: " + ", ".join(p for p in parts if not p.startswith("0 "))


def _common(s: Summary, code: bool = False) -> str:
    q = "`" if code else ""
    return ", ".join(f"{q}{k}={format_value(v)}{q}" for k, v in s.common.items())


def _rel(job: Job, root: Path) -> str:
    return job.path.relative_to(root).as_posix() if job.path != root else "."


DESCRIPTION = "The table and plots of any kdrun run, sweep, or folder of them."
EPILOG = """\
Reads only the files runs write (results.json, metrics.jsonl, .hydra/).
Runs that differ only in their seed form one group (mean ± std over seeds).
Writes next to PATH:
  report.md    the tables (every stage's top-1, Δ vs baseline) and the plots
  report.csv   the same numbers, one row per group (mean, std, count)
  plots/       curves.png, size_vs_top1.png; heatmap_T_alpha*.png when T
               and alpha were swept
Failed and unfinished runs stay in the table, marked, and are listed with
their errors.

examples:
  kdrun-report outputs/runs/2026-12-01_10-32-21
  kdrun-report outputs/sweeps/my-sweep --no-plots
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kdrun-report", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a run directory, a sweep directory, or a folder holding several")
    parser.add_argument("--no-plots", action="store_true", help="only the tables")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.path, plots=not args.no_plots)
    except KdrunError as e:
        print(f"kdrun-report: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"report: {report.files[0]}  (csv: {report.files[1]})", file=sys.stderr)
    for f in report.files[2:]:
        print(f"plot: {f}", file=sys.stderr)


if __name__ == "__main__":
    main()
