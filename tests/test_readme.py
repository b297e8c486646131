"""Every ``kdrun`` command README.md (and docs/guide.md, docs/development.md, where its details moved) shows
parses, composes and passes the checks ``kdrun`` makes; the headline few really run. README stays short and its
links lead somewhere.

The commands are extracted from those pages (indented code lines and inline code) by ``scripts/check_readme.py``,
which runs every one of them for real, end to end, in minutes (not part of the suite). Here, in this process:
each command goes through the path the CLI takes before Hydra creates anything (the headline rule, composition,
every config and compatibility check) with ``debug=fast``, placeholders (``...``, example paths) replaced by real
temporary ones; the commands that print and stop (``--help``, ``--cfg job``, ``--list``) print through the real
entry point; and the headline commands run through it too, shrunk (debug=fast, tiny generated data).
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from conftest import REPO, kdrun_in_process, quick_sample, read_results
from kdrun.cli import checked_arguments
from kdrun.config.store import register_configs
from kdrun.errors import KdrunError

register_configs()
_spec = importlib.util.spec_from_file_location("check_readme", REPO / "scripts" / "check_readme.py")
check_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_readme)

COMMANDS = check_readme.readme_commands()
EXPECTED_ERRORS = check_readme.EXPECTED_ERRORS


def test_readme_has_the_commands_this_test_promises():
    assert len(COMMANDS) > 30
    assert "kdrun method=rkd teacher=resnet110 student=resnet20" in COMMANDS
    assert "kdrun --list" in COMMANDS and "kdrun" in COMMANDS
    assert set(EXPECTED_ERRORS) <= set(COMMANDS)


def test_readme_is_short_and_sets_up_the_cpu_build_of_torch():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "README is for the newcomer: details go to docs/ (docs/guide.md)"
    assert "--index-url https://download.pytorch.org/whl/cpu" in text


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix()
                                                        for p in (REPO / "docs").glob("*.md"))])
def test_every_relative_link_leads_to_a_file_and_heading(page):
    source = REPO / page
    for target in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve() if path else source
        assert file.exists(), f"{page}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            headings = [_slug(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)]
            assert anchor in headings, f"{page}: link to {target}: no such heading in {file.name}"


def test_extraction_keeps_commands_and_drops_printed_output():
    text = "    kdrun method=kd   # a comment\n    $ kdrun --help\nkdrun step: 3/3\n`kdrun seed=1`, `kdrun-report x`\n"
    assert check_readme.readme_commands(text) == ["kdrun method=kd", "kdrun --help", "kdrun seed=1"]


@pytest.mark.parametrize("command", quick_sample(COMMANDS, every=2))
def test_readme_command_passes_every_check(command, tmp_path, monkeypatch, capsys):
    args = check_readme.arguments(command, tmp_path)
    monkeypatch.chdir(tmp_path)
    if check_readme.prints_and_stops(args):  # cheap: through the real entry point
        assert kdrun_in_process(args) == 0
        out = capsys.readouterr().out
        assert len(out.splitlines()) > 3 and "Traceback" not in out, out
        placed = ("mydata", "ckpt_epoch_240.pth", "mynets.py", "arrays.npz")  # check_readme.placeholders
        assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.name in placed]
        return
    if command in EXPECTED_ERRORS:
        with pytest.raises(KdrunError, match=re.escape(EXPECTED_ERRORS[command])):
            checked_arguments([*args, "debug=fast"])
        return
    args, cfg = checked_arguments([*args, "debug=fast"])
    assert cfg.trainer.max_train_batches is not None  # debug=fast composed with it
    if "dataset=" not in command and "teacher=resnet110 student=resnet20" in command:
        assert "dataset=cifar100" in args  # the headline rule


# The headline commands as README shows them, shrunk by the script's own rule (debug=fast, no timing; CIFAR-100
# replaced by a tiny generated copy in the real format), through the real entry point. The default experiment
# runs whole below (its table is README's); README's CIFAR-100 command (resnet110, minutes on a CPU even shrunk: 90 s of CPU
# for its five stages) runs one step of its teacher and of its RKD student.
HEADLINE = {"kdrun method=rkd teacher=resnet110 student=resnet20": ["stages=[teacher,distilled]",
                                                                   "trainer.max_train_batches=1",
                                                                   "trainer.max_eval_batches=1"]}
DEFAULT_STAGES = ["teacher", "baseline", "distilled", "self_distilled", "quantized"]


@pytest.mark.slow  # the not-slow loop checks every command in-process (above); these train
@pytest.mark.parametrize("command", list(HEADLINE))
def test_headline_command_runs(command, tmp_path, monkeypatch, capsys):
    from kdrun.runs.smoke import write_tiny_cifar100

    assert command in COMMANDS
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", str(write_tiny_cifar100(tmp_path / "data")))
    args = [*check_readme.runnable_arguments(command, 0, tmp_path), *HEADLINE[command]]
    assert kdrun_in_process(args) == 0, capsys.readouterr().err[-3000:]
    results = read_results(tmp_path / "runs" / "0")
    assert results["status"] == "completed" and list(results["stages"]) == ["teacher", "distilled"]
    assert (results["dataset"], results["stages"]["teacher"]["arch"], results["method"]) == ("cifar100", "resnet110",
                                                                                            "rkd")


# README's table is what a fresh install prints: a function of the command, the versions in constraints.txt, the
# data's bits (results.json's data_fingerprint, stated under the table) and one thread (conf/dataset/mnist1d.yaml).
TABLE_ROW = re.compile(r"^ {5}(\w+)\s+(\w+)\s+([\w+]+)\s+(\d+\.\d\d)\s", re.M)
FINGERPRINT = re.compile(r"data fingerprint: train `(\w+)`, test `(\w+)`, transfer set `(\w+)`")


def readme_table() -> list[tuple[str, str, str, float]]:
    """The default experiment's table (README's first; the Language models section has its own)."""
    text = (REPO / "README.md").read_text().split("\n## Language models")[0]
    return [(s, m, k, float(t)) for s, m, k, t in TABLE_ROW.findall(text)]


def test_readme_states_its_tables_rows_and_what_they_depend_on():
    text = (REPO / "README.md").read_text()
    assert [row[0] for row in readme_table()] == DEFAULT_STAGES
    assert FINGERPRINT.search(text), "README names the data fingerprint its table was measured on"
    pinned = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    for name in ("torch", "numpy", "scipy", "mnist1d"):
        assert f"{name} {pinned[name]}" in text, f"README names {name} {pinned[name]} (constraints.txt)"


@pytest.mark.slow  # MNIST-1D and its transfer set generated (once per session)
def test_the_default_dataset_has_the_fingerprint_readme_states(tmp_path_factory):
    from feature_cli import shared_data_env
    from kdrun.data.fingerprint import data_fingerprint
    from kdrun.data.mnist1d import load_mnist1d
    from kdrun.data.transfer import generated_transfer

    data = load_mnist1d(shared_data_env(tmp_path_factory)["KDRUN_DATA"])
    data.transfer = generated_transfer(data, 20000)
    found = data_fingerprint(data)
    stated = FINGERPRINT.search((REPO / "README.md").read_text()).groups()
    assert (found["train"], found["test"], found["transfer"]) == stated, (
        "this environment generates other MNIST-1D bits than README's table was measured on: install with "
        "-c constraints.txt (numpy, scipy, mnist1d)")


@pytest.mark.slow  # the whole default run, 30 epochs per stage (a minute or two on 2 cores)
def test_readme_table_is_what_the_default_run_prints(tmp_path, tmp_path_factory, monkeypatch, capsys):
    from feature_cli import shared_data_env

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDRUN_DATA", shared_data_env(tmp_path_factory)["KDRUN_DATA"])
    assert kdrun_in_process(["measure.enabled=false", "hydra.run.dir=run"]) == 0, capsys.readouterr().err[-3000:]
    results = read_results(tmp_path / "run")
    assert results["status"] == "completed" and results["speed"]["threads"] == 1
    printed = [(name, s["arch"], s["method"], round(s["test_top1"], 2)) for name, s in results["stages"].items()]
    assert printed == readme_table()
