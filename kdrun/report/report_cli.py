"""``kdrun-report PATH``: the table and plots of any run, sweep, or folder of them.

Reads only the files runs write (results.json, metrics.jsonl, .hydra/); prints a table with one
row per group of runs that differ only in their seed, and writes next to PATH:

    report.md  report.csv  plots/heatmap_T_alpha*.png  plots/curves.png  plots/size_vs_top1.png

Failed and unfinished runs stay in the table (their status column says so) and are listed with
their errors, so a partly failed sweep still reports everything it has. A run whose files are not of
the shape kdrun writes (kdrun/report/run_files.py) is listed as invalid, never counted, and makes the
command exit 1; a folder holding no kdrun run at all is one line (exit 2). Report files are written
only where none exist or kdrun wrote them (kdrun/report/out_folder.py); ``--out`` puts them elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from kdrun.errors import KdrunError
from kdrun.io import write_text_atomic
from kdrun.report.aggregate import Summary, format_value, summarize
from kdrun.report.files import PLOTS_DIR, REPORT_CSV, REPORT_MD
from kdrun.report.jobs import COMPLETED, INVALID, Job, Scan, scan
from kdrun.report.out_folder import claim_report_folder
from kdrun.report.study import best_line, is_study, rank
from kdrun.report.sweep_table import csv_sweep_table, markdown_sweep_table, rich_sweep_table
from kdrun.report.table import markdown_table, rich_table, table_rows, table_title

LEGEND = ("top-1 in %: last epoch, mean ± std over seeds; 'best': the best epoch's; "
          "Δ vs baseline: per seed, then averaged")


@dataclass
class Report:
    path: Path
    summary: Summary
    files: list[Path] = field(default_factory=list)
    invalid: list[Job] = field(default_factory=list)  # runs whose files are not of kdrun's shape: not counted
    out: Path | None = None  # where the report files go (PATH unless --out)

    @property
    def problems(self) -> list[Job]:
        return [j for j in self.summary.jobs if j.status != COMPLETED] + self.invalid


def build_report(path: str | Path, console: Console | None = None, plots: bool = True,
                 out: str | Path | None = None) -> Report:
    """Read every run under ``path``, print the table, write report.md/csv and the plots into ``out``
    (default: ``path``), over nothing but kdrun's own report files."""
    from kdrun.logs import output

    path = Path(path)
    if not path.exists():
        raise KdrunError(f"PATH={path} does not exist; give a run or sweep directory (e.g. outputs/sweeps/<name>)")
    found = scan(path)
    jobs = [j for j in found.jobs if j.status != INVALID]
    if not jobs:
        raise KdrunError(_no_runs(path, found))
    out = Path(out) if out is not None else path
    claim_report_folder(out, f"--out={out}" if out != path else f"PATH={path}")
    report = Report(path, summarize(jobs), invalid=[j for j in found.jobs if j.status == INVALID], out=out)
    if is_study(path):  # a search's trials, best first
        rank(report.summary)
    console = console or output()
    _print(report, console)
    if plots:
        from kdrun.report.plots import write_plots

        report.files += write_plots(report.summary, out / PLOTS_DIR)
    for job in jobs:  # read by the plots (or not at all): say once per file what was skipped
        if job.metrics_note:
            console.print(job.metrics_note, style="yellow", markup=False)
    write_text_atomic(out / REPORT_CSV, csv_sweep_table(report.summary), "the report")
    write_text_atomic(out / REPORT_MD, markdown_report(report), "the report")
    report.files = [out / REPORT_MD, out / REPORT_CSV, *report.files]
    return report


def _no_runs(path: Path, found: Scan) -> str:
    reasons = [j.error for j in found.jobs] or found.not_kdrun
    if not reasons:
        return f"PATH={path} holds no kdrun run (no results.json or .hydra/config.yaml below it)"
    more = f" (and {len(reasons) - 1} more like it)" if len(reasons) > 1 else ""
    which = "readable kdrun run" if found.jobs else "kdrun run"
    return f"PATH={path} holds no {which}: {reasons[0]}{more}"


def _print(report: Report, console: Console) -> None:
    s = report.summary
    single = len(s.jobs) == 1
    if single and s.jobs[0].stages:
        console.print(rich_table(table_rows(s.jobs[0].results), title=table_title(s.jobs[0].results)))
    title = None if single else f"kdrun sweep: {report.path.name} ({_counts(s, report.invalid)})"
    console.print(rich_sweep_table(s, title=title))  # a Text title: "[...]" in a folder name is not markup
    # markup=False: paths and settings such as [a,b] print as they are (a path a user can copy)
    console.print(LEGEND + f"; every stage's column: {report.out / REPORT_MD}", style="dim", markup=False)
    if s.common:
        console.print("common settings: " + _common(s), style="dim", markup=False)
    if best_line(s):
        console.print(best_line(s), style="bold", markup=False)
    for job in report.problems:
        console.print(f"{job.status}: {_rel(job, report.path)}" + (f": {job.error}" if job.error else ""),
                      style="red" if job.status in ("failed", INVALID) else "yellow", markup=False)


def markdown_report(report: Report) -> str:
    s = report.summary
    lines = [f"# kdrun report: {report.path.name or report.path}", "", _counts(s, report.invalid), ""]
    if s.common:
        lines += [f"Common settings: {_common(s, code=True)}", ""]
    if best_line(s):
        lines += [f"Trials ranked by the value each returned to the sweeper; {best_line(s)}.", ""]
    if len(s.jobs) == 1 and s.jobs[0].stages:
        lines += ["## Stages", "", markdown_table(table_rows(s.jobs[0].results))]
    lines += ["## Summary" if len(s.jobs) > 1 else "## Run", "", LEGEND + ".", "", markdown_sweep_table(s)]
    if report.problems:
        lines += ["## Failed, unfinished and invalid runs" if report.invalid else "## Failed and unfinished runs", ""]
        lines += [f"- `{_rel(j, report.path)}`: {j.status}" + (f": {j.error}" if j.error else "")
                  for j in report.problems]
        lines.append("")
    pngs = [f for f in report.files if f.suffix == ".png"]
    if pngs:
        lines += ["## Plots", ""]
        lines += [line for f in pngs for line in (f"![{f.stem}]({f.relative_to(report.out).as_posix()})", "")]
    return "\n".join(lines).rstrip() + "\n"


def _counts(s: Summary, invalid: list[Job] = ()) -> str:
    n = len(s.jobs) + len(invalid)
    parts = [f"{sum(j.status == st for j in s.jobs)} {st}" for st in ("completed", "failed", "unfinished")]
    parts.append(f"{len(invalid)} invalid")
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
Writes next to PATH (or into --out DIR), over nothing but kdrun's own
report files:
  report.md    the tables (every stage's top-1, Δ vs baseline) and the plots
  report.csv   the same numbers, one row per group (mean, std, count)
  plots/       curves.png, size_vs_top1.png; heatmap_T_alpha*.png when T
               and alpha were swept
Failed and unfinished runs stay in the table, marked, and are listed with
their errors. Runs whose files are not of kdrun's shape are listed as
invalid, not counted, and make the exit status 1.

examples:
  kdrun-report outputs/runs/2026-12-01_10-32-21
  kdrun-report outputs/sweeps/my-sweep --no-plots
  kdrun-report /read-only/runs --out my-report
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kdrun-report", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a run directory, a sweep directory, or a folder holding several")
    parser.add_argument("--no-plots", action="store_true", help="only the tables")
    parser.add_argument("--out", metavar="DIR", help="write report.md, report.csv and plots/ into DIR (default: PATH)")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.path, plots=not args.no_plots, out=args.out)
    except KdrunError as e:
        print(f"kdrun-report: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"report: {report.files[0]}  (csv: {report.files[1]})", file=sys.stderr)
    for f in report.files[2:]:
        print(f"plot: {f}", file=sys.stderr)
    if report.invalid:
        print(f"kdrun-report: error: {_invalid_line(report)}", file=sys.stderr)
        sys.exit(1)


def _invalid_line(report: Report) -> str:
    n = len(report.invalid)
    return (f"{n} run folder{'s' if n != 1 else ''} under {report.path} hold{'s' if n == 1 else ''} files not of "
            f"kdrun's shape (listed above as invalid); they are not in the table: re-run their command, or remove them")


if __name__ == "__main__":
    main()
