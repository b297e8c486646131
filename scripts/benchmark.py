"""Reproduce the published distillation benchmarks with kdrun and put its numbers beside them.

The grid (pairs x rows) comes from the published tables shipped in ``kdrun/benchmarks/*.yaml``;
each cell is an ``experiment=`` preset, run as one Hydra multirun over presets x seeds.

    python scripts/benchmark.py list                                   # every preset with its published value
    python scripts/benchmark.py teachers                               # train the six CIFAR-100 teachers, export them
    python scripts/benchmark.py run --pairs resnet56-resnet20 --rows kd,crd,dkd --seeds 0,1,2
    python scripts/benchmark.py run --teachers-dir ~/cifar_teachers ...   # mdistiller's cifar_teachers.tar, untarred
    python scripts/benchmark.py run --table imagenet --rows kd -- dataset.root=/data/imagenet
    python scripts/benchmark.py report outputs/benchmarks                 # the comparison, from the run files only
    python scripts/benchmark.py smoke                                  # every preset, two steps on generated data

Anything after ``--`` is passed to kdrun (e.g. ``hydra/launcher=joblib``, ``device.amp=bf16``).
The comparison says which metric each published number is (last epoch of one run for RepDistiller
and the CRD paper, best epoch averaged over 5 runs for mdistiller) and shows kdrun's last-epoch and
best-epoch top-1 (mean ± std over seeds) with the difference in the published number's metric.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdrun.report.compare import find_runs, report  # noqa: E402
from kdrun.config.presets import all_presets, select  # noqa: E402
from kdrun.benchmarks.published import TABLE_NAMES, load_table  # noqa: E402

OUT = Path("outputs") / "benchmarks"


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_list(args: argparse.Namespace) -> int:
    table = load_table(args.table)
    presets, skipped = select(table, _csv(args.pairs), _csv(args.rows))
    print(f"{table.title}")
    for source in table.sources.values():
        print(f"  {source.key}: {source.cite} ({source.describe()})")
    for name in presets:
        node = all_presets()[name]["benchmark"]
        pair = table.pairs[node["pair"]] if node["pair"] else None
        value = pair.value(node["row"]) if pair else _published_for_arch(table, node["row"], node["arch"])
        print(f"  experiment={name:<48} {value:6.2f}  [{table.rows[node['row']].source}]")
    if skipped:
        print(f"  not published (n/a): {', '.join(skipped)}")
    return 0


def _published_for_arch(table, row: str, arch: str) -> float:
    from kdrun.report.compare import published_supervised

    return published_supervised(table, row, arch)


def _teachers_dir(args: argparse.Namespace) -> str | None:
    """--teachers-dir, or (auto) the folder `teachers` exported to, if it exists."""
    if args.teachers_dir not in (None, "auto", "none"):
        return str(Path(args.teachers_dir).expanduser().resolve())
    default = OUT / "teachers" / args.table
    if args.teachers_dir == "auto" and default.is_dir():
        print(f"using the teachers exported to {default} (--teachers-dir none to train them per run)")
        return str(default.resolve())
    return None


def kdrun_multirun(presets: list[str], seeds: list[str], sweep_dir: Path, extra: list[str],
                   dry_run: bool) -> int:
    command = [sys.executable, "-m", "kdrun", "-m", f"experiment={','.join(presets)}", f"seed={','.join(seeds)}",
               f"hydra.sweep.dir={sweep_dir}", *extra]
    print("$ " + " ".join(command), flush=True)
    if dry_run:
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(command, env=env).returncode


def _sweep_dir(args: argparse.Namespace, kind: str, presets: list[str], extra: list[str]) -> Path:
    """--sweep-dir, or a folder named after the command: the same command finds its jobs again, and
    kdrun skips those that completed (an interrupted benchmark resumes where it stopped)."""
    if args.sweep_dir:
        return Path(args.sweep_dir)
    digest = hashlib.sha1(json.dumps([presets, _csv(args.seeds), extra]).encode()).hexdigest()[:10]
    return OUT / args.table / f"{kind}-{digest}"


def cmd_run(args: argparse.Namespace) -> int:
    table = load_table(args.table)
    rows = _csv(args.rows) or [r for r in table.rows if r not in ("teacher", "student")]
    presets, skipped = select(table, _csv(args.pairs), rows)
    if skipped:
        print(f"skipping cells that were never published: {', '.join(skipped)}")
    extra = list(args.overrides)
    teachers_dir = _teachers_dir(args)
    if teachers_dir:
        extra.append(f"teachers_dir={teachers_dir}")
    sweep_dir = _sweep_dir(args, "run", presets, extra)
    code = kdrun_multirun(presets, _csv(args.seeds), sweep_dir, extra + _packing(args, extra), args.dry_run)
    if not args.dry_run:
        print(report(find_runs(sweep_dir)))
    return code


def _packing(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """``--jobs``: runs at once, on the GPUs this machine has. ``auto``: as many as fit in their free memory at
    device.job_memory GiB each (kdrun checks it again, and spreads them over the GPUs); 1 without a GPU.
    Not part of the sweep folder's name: a table resumes with any number of jobs at once."""
    if any(o.startswith(("hydra/launcher=", "hydra.launcher.")) for o in extra):
        return []  # the user chose a launcher
    jobs = args.jobs
    if jobs == "auto":
        from kdrun.distributed.packing import GIB, free_gpu_memory

        memory = next((float(o.split("=", 1)[1]) for o in extra if o.startswith("device.job_memory=")), 4.0)
        jobs = str(sum(int(free // (memory * GIB)) for free in free_gpu_memory()) or 1)
    return [] if int(jobs) <= 1 else ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={int(jobs)}"]


def cmd_teachers(args: argparse.Namespace) -> int:
    """Train every teacher of the table with its recipe, then export them in mdistiller's layout."""
    from kdrun.benchmarks.teachers import export_teacher

    table = load_table(args.table)
    presets, _ = select(table, None, ["teacher"])
    sweep_dir = _sweep_dir(args, "teachers", presets, list(args.overrides))
    code = kdrun_multirun(presets, _csv(args.seeds), sweep_dir, list(args.overrides), args.dry_run)
    if args.dry_run:
        return code
    runs = find_runs(sweep_dir)
    export = Path(args.export or OUT / "teachers" / args.table)
    first_seed = _csv(args.seeds)[0]
    for run in runs:
        teacher = run.stages.get("teacher")
        if run.status == "completed" and teacher and str(run.seed) == first_seed:
            path = export_teacher(teacher["checkpoint"], export, teacher["arch"])
            print(f"exported {teacher['arch']} ({teacher['last_top1']:.2f}%) -> {path}")
    print(report(runs))
    print(f"later runs pick these teachers up with: --teachers-dir {export} (kdrun teachers_dir={export})")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    text = report(find_runs(*args.dirs))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Every preset (or those containing -k) for two steps on generated data; exit 1 if any fails."""
    import traceback

    from kdrun.runs.smoke import smoke_run, write_smoke_data

    work = Path(args.workdir)
    data = write_smoke_data(work / "data")
    names = [n for n in all_presets() if not args.k or args.k in n]
    failures = []
    for i, name in enumerate(names, 1):
        t0 = time.monotonic()
        try:
            smoke_run(name, data, work / "outputs")
            print(f"[{i}/{len(names)}] ok    {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 -- one failing preset must not hide the others
            failures.append(name)
            print(f"[{i}/{len(names)}] FAIL  {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                  flush=True)
            if args.verbose:
                traceback.print_exc()
    print(f"{len(names) - len(failures)} of {len(names)} presets ran" + (f"; failed: {', '.join(failures)}"
                                                                        if failures else ""))
    return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list presets with their published values")
    run = sub.add_parser("run", help="run pairs x rows x seeds as one multirun, then compare")
    teachers = sub.add_parser("teachers", help="train the table's teachers and export them")
    for s in (ls, run, teachers):
        s.add_argument("--table", choices=TABLE_NAMES, default="cifar100")
    for s in (ls, run):
        s.add_argument("--pairs", help="comma-separated, e.g. resnet56-resnet20,vgg13-vgg8 (default: all)")
        s.add_argument("--rows", help="comma-separated, e.g. kd,crd,crd_kd,dkd (default: every method row)")
    for s in (run, teachers):
        s.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
        s.add_argument("--sweep-dir", help=f"where the multirun writes (default: {OUT}/<table>/<kind>-<hash of the "
                                           "command>, so re-running a command resumes it)")
        s.add_argument("--dry-run", action="store_true", help="print the kdrun command only")
        s.add_argument("--jobs", default="auto", help="runs at once (joblib launcher); auto: as many as fit in the "
                                                      "GPUs' free memory at device.job_memory GiB each, 1 on a CPU")
        s.add_argument("overrides", nargs="*", help="kdrun overrides, after --")
    run.add_argument("--teachers-dir", default="auto",
                     help="trained teachers in mdistiller's layout; auto = the `teachers` export if present; none")
    teachers.add_argument("--export", help=f"where to export (default: {OUT}/teachers/<table>)")
    rep = sub.add_parser("report", help="compare the runs under some folders with the published numbers")
    rep.add_argument("dirs", nargs="+")
    rep.add_argument("--out", help="also write the Markdown here")
    smoke = sub.add_parser("smoke", help="run every preset for two steps on small generated data")
    smoke.add_argument("-k", help="only presets whose name contains this")
    smoke.add_argument("--workdir", default=str(OUT / "smoke"))
    smoke.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"list": cmd_list, "run": cmd_run, "teachers": cmd_teachers, "report": cmd_report, "smoke": cmd_smoke}
    try:
        return commands[args.command](args)
    except ValueError as e:
        print(f"benchmark.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
