"""The published tables as data, the presets generated from them, and the comparison of runs with them.

Every preset is composed through Hydra's compose API on the real config tree (what
``kdrun experiment=<preset>`` composes) and checked against the recipe of its cell.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import CONF, load_script, quick_sample
from kdrun.report.compare import find_runs, report
from kdrun.config.presets import all_presets, preset_name, select
from kdrun.benchmarks.published import METRICS, SUPERVISED_ROWS, load_table, tables
from kdrun.config.checks import check_config
from kdrun.config.store import register_configs
from kdrun.errors import KdrunError
from kdrun.models import list_models
from kdrun.schemes.registry import STAGE_NAMES

CIFAR = load_table("cifar100")
PRESETS = all_presets()
CRD_ROWS = ["kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp", "nst", "crd", "crd_kd"]
TEACHERS = ["wrn_40_2", "resnet56", "resnet110", "resnet32x4", "vgg13", "resnet50"]  # in the tables' order
REFERENCE_NOTES = Path("/work/shared/reference/cifar100-benchmark.md")

# ---------------------------------------------------------------- the data file


def test_every_published_cell_has_a_preset_and_every_preset_a_cell():
    from_cells = {preset_name(t, t.pairs[c.pair], c.row) for t in tables() for c in t.cells()}
    assert from_cells == set(PRESETS)
    for name, node in PRESETS.items():
        b = node["benchmark"]
        table = load_table(b["table"])
        if b["pair"]:
            assert table.pairs[b["pair"]].value(b["row"]) is not None, name


def test_cifar100_grid_is_the_crd_tables_plus_the_dkd_row():
    same = [p for p in CIFAR.pairs.values() if p.family == "same"]
    cross = [p for p in CIFAR.pairs.values() if p.family == "cross"]
    assert (len(same), len(cross)) == (7, 6)
    for pair in CIFAR.pairs.values():
        published = dict(pair.published)
        expected = set(CRD_ROWS) | set(SUPERVISED_ROWS)
        if pair.family == "cross" or pair.key == "wrn_40_2-wrn_40_1":
            expected -= {"fsp"}  # FSP needs equal channel counts
        assert set(published) - {"dkd"} == expected, pair.key
    dkd = {p.key for p in CIFAR.pairs.values() if p.value("dkd") is not None}
    assert len(dkd) == 11 and "resnet110-resnet20" not in dkd and "resnet50-vgg8" not in dkd
    assert sum(1 for _ in CIFAR.cells()) == 212


def test_rows_sources_and_architectures_are_consistent():
    registered = set(list_models())
    for table in tables():
        assert set(table.rows) >= {"teacher", "student"}
        for source in table.sources.values():
            assert source.metric in METRICS and source.cite
        for row in table.rows.values():
            assert row.source in table.sources
        for pair in table.pairs.values():
            assert {pair.teacher, pair.student} <= registered, pair.key
            assert set(dict(pair.overrides)) <= set(table.rows)
        for row in SUPERVISED_ROWS:  # a teacher (student) has one published accuracy in every pair
            by_arch: dict[str, set[float]] = {}
            for pair in table.pairs.values():
                arch = pair.teacher if row == "teacher" else pair.student
                by_arch.setdefault(arch, set()).add(pair.value(row))
            assert all(len(v) == 1 for v in by_arch.values()), by_arch


def test_table_lr_is_the_trainer_configs():
    for table in tables():
        trainer = yaml.safe_load((CONF / "trainer" / f"{table.trainer}.yaml").read_text())
        trainer = trainer.get("trainer", trainer)  # trainer=cifar is a _global_ file (it also sets teacher.lr)
        lr = trainer["lr"]
        if isinstance(lr, str):  # ${kdrun.recipe_lr:<recipe>,<arch>,<default>}: the default is the recipe's lr
            lr = float(lr.rstrip("}").split(",")[-1])
        assert lr == table.lr


def test_dkd_beta_per_pair_follows_mdistiller_configs():
    beta = {k: dict(p.row_overrides("dkd")).get("method.nckd_weight") for k, p in CIFAR.pairs.items()
            if p.value("dkd") is not None}
    assert beta["resnet56-resnet20"] == beta["resnet110-resnet32"] == 2.0
    assert beta["wrn_40_2-wrn_16_2"] == beta["wrn_40_2-wrn_40_1"] == beta["vgg13-vgg8"] == 6.0
    assert beta["vgg13-mobilenetv2"] == 6.0 and beta["resnet32x4-resnet8x4"] == 8.0
    assert beta["wrn_40_2-shufflenetv1"] == 8.0  # its mdistiller config sets none: the default 8


@pytest.mark.skipif(not REFERENCE_NOTES.is_file(), reason="the project's reference notes are not on this machine")
def test_numbers_match_the_reference_notes():
    """Every number of the data file, cross-checked against the Markdown tables it was transcribed from."""
    labels = {"teacher": "teacher", "student": "student", "CRD+KD (CRD paper)": "crd_kd"}
    labels |= {row.label: key for key, row in CIFAR.rows.items() if key not in labels}
    cells = {}
    for block in REFERENCE_NOTES.read_text().split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if len(lines) < 3 or "->" not in lines[0]:
            continue
        heads = [h.strip().replace("->", "-") for h in lines[0].strip("|").split("|")][1:]
        for line in lines[2:]:
            label, *values = [v.strip() for v in line.strip("|").split("|")]
            for head, value in zip(heads, values):
                if label in labels and value != "n/a":
                    cells[(head, labels[label])] = float(value)
    assert cells == {(c.pair, c.row): c.value for c in CIFAR.cells()}


# ---------------------------------------------------------------- every preset composes


@pytest.fixture(scope="module", autouse=True)
def _leave_hydra_uninitialized():
    yield
    GlobalHydra.instance().clear()


def compose_preset(overrides: list[str]):
    """Compose like ``kdrun <overrides>``; Hydra is initialized once and kept (other tests may clear it)."""
    register_configs()
    if not GlobalHydra.instance().is_initialized():
        initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="kdrun")
    return compose(config_name="config", overrides=overrides)


def _expected_lr(table, arch: str) -> float:
    return table.low_lr if arch in table.low_lr_archs else table.lr


@pytest.mark.parametrize("name", quick_sample(sorted(PRESETS), every=10))
def test_preset_composes_with_its_cells_recipe(name):
    b = PRESETS[name]["benchmark"]
    table = load_table(b["table"])
    overrides = [f"experiment={name}"] + (["dataset.root=/data/imagenet"] if table.dataset == "imagefolder" else [])
    cfg = compose_preset(overrides)
    OmegaConf.to_container(cfg, resolve=True)
    check_config(cfg, STAGE_NAMES)
    assert cfg.benchmark.table == table.name and cfg.dataset._target_.endswith(f"load_{table.dataset}")
    assert cfg.trainer.epochs == {"cifar": 240, "imagenet": 100}[table.trainer]
    if b["row"] in SUPERVISED_ROWS:
        assert list(cfg.stages) == (["teacher"] if b["row"] == "teacher" else ["baseline"])
        assert cfg[b["row"] if b["row"] == "teacher" else "student"].arch == b["arch"]
        assert cfg.trainer.lr == _expected_lr(table, b["arch"])
        return
    pair, row = table.pairs[b["pair"]], table.rows[b["row"]]
    assert (cfg.teacher.arch, cfg.student.arch, cfg.method.name) == (pair.teacher, pair.student, row.method)
    assert list(cfg.stages) == ["teacher", "baseline", "distilled"]
    assert cfg.trainer.lr == _expected_lr(table, pair.student) and cfg.teacher.lr == _expected_lr(table, pair.teacher)
    for key, value in {**dict(row.set), **pair.row_overrides(b["row"])}.items():
        assert OmegaConf.select(cfg, key) == value, key


def test_crd_kd_and_feature_rows_keep_the_methods_reference_weights():
    cfg = compose_preset(["experiment=cifar100/resnet56-resnet20/crd_kd"])
    assert (cfg.distill.alpha, cfg.distill.gamma, cfg.distill.beta) == (1.0, 1.0, 0.8)
    cfg = compose_preset(["experiment=cifar100/resnet56-resnet20/crd"])
    assert (cfg.distill.alpha, cfg.distill.beta) == (0.0, 0.8)
    cfg = compose_preset(["experiment=cifar100/vgg13-mobilenetv2/kd", "distill.T=2"])
    assert cfg.distill.T == 2 and cfg.trainer.lr == 0.01  # the command line still wins


def test_unknown_preset_is_one_line_with_the_closest_names():
    from kdrun.cli import CONFIG_DIR
    from kdrun.config.preflight import preflight

    with pytest.raises(KdrunError) as e:
        preflight(CONFIG_DIR, ["experiment=cifar100/resnet56-resnet20/kdd"])
    message = str(e.value)
    assert "\n" not in message and "experiment=cifar100/resnet56-resnet20/kdd" in message
    assert "cifar100/resnet56-resnet20/kd" in message and "kdrun --list presets" in message


def test_teachers_dir_without_the_teacher_is_one_line(tmp_path):
    cfg = compose_preset(["experiment=cifar100/resnet50-vgg8/kd", f"teachers_dir={tmp_path}"])
    with pytest.raises(KdrunError, match=r"teachers_dir=.* holds no resnet50 teacher: expected .*ResNet50_vanilla"):
        check_config(cfg, STAGE_NAMES)


def test_select_skips_unpublished_cells_and_rejects_unknown_names():
    presets, skipped = select(CIFAR, ["wrn_40_2-wrn_40_1", "resnet50-vgg8"], ["kd", "fsp", "dkd"])
    assert presets == ["cifar100/wrn_40_2-wrn_40_1/kd", "cifar100/wrn_40_2-wrn_40_1/dkd", "cifar100/resnet50-vgg8/kd"]
    assert skipped == ["wrn_40_2-wrn_40_1/fsp", "resnet50-vgg8/fsp", "resnet50-vgg8/dkd"]
    with pytest.raises(ValueError, match="unknown row 'kdd'.*valid: teacher, student, kd"):
        select(CIFAR, None, ["kdd"])


# ---------------------------------------------------------------- the comparison, on run files written here


def write_run(root: Path, name: str, preset: str, seed: int, stages: dict, status: str = "completed") -> Path:
    """A run directory as kdrun writes it: results.json and Hydra's saved config (with the preset's node)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "benchmark": PRESETS[preset]["benchmark"]}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"experiment={preset}", f"seed={seed}"]))
    results = {"status": status, "seed": seed, "stages": stages}
    if status == "failed":
        results["error"] = "boom"
    (run / "results.json").write_text(json.dumps(results))
    return run


def stage(arch: str, last: float, best: float, source: str = "cache", checkpoint: str = "x.pt") -> dict:
    return {"arch": arch, "last_top1": last, "best_top1": best, "source": source, "checkpoint": checkpoint,
            "role": "distilled", "in_table": True}


def test_report_places_runs_in_their_cells_with_both_metrics(tmp_path):
    teacher = stage("resnet56", 72.0, 72.0, source="checkpoint", checkpoint="/t/resnet56.pth")
    for seed, (last, best) in enumerate([(70.0, 70.5), (71.0, 71.5), (72.0, 72.5)]):
        write_run(tmp_path, f"kd{seed}", "cifar100/resnet56-resnet20/kd", seed,
                  {"teacher": teacher, "baseline": stage("resnet20", 69.0 + seed, 69.5 + seed),
                   "distilled": stage("resnet20", last, best)})
        write_run(tmp_path, f"dkd{seed}", "cifar100/resnet56-resnet20/dkd", seed,
                  {"teacher": teacher, "baseline": stage("resnet20", 69.0 + seed, 69.5 + seed),
                   "distilled": stage("resnet20", last + 1, best + 1)})
    write_run(tmp_path, "crd_failed", "cifar100/resnet56-resnet20/crd", 0,
              {"teacher": teacher, "baseline": stage("resnet20", 69.0, 69.5)}, status="failed")
    write_run(tmp_path, "modified", "cifar100/resnet56-resnet20/kd", 5,
              {"teacher": teacher, "distilled": stage("resnet8", 1.0, 1.0)})
    text = report(find_runs(tmp_path))
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in text.splitlines()
            if line.startswith("| resnet56")}
    # KD: RepDistiller's last-epoch number: mean 71.00 ± 1.00 over 3 seeds, delta on the last epoch
    kd = rows[("resnet56-resnet20", "KD")]
    assert "| 70.66 | last epoch | 3 | 71.00 ± 1.00 | 71.50 ± 1.00 | +0.34 | – |" in kd
    # DKD: mdistiller's best-epoch mean of 5: delta on the best epoch (72.50 - 71.97)
    assert "| 71.97 | best epoch | 3 | 72.00 ± 1.00 | 72.50 ± 1.00 | +0.53 |" in rows[("resnet56-resnet20", "DKD")]
    # one teacher file shared by every run is one measurement; baselines are one per seed
    assert "| 72.34 | last epoch | 1 | 72.00 | 72.00 | -0.34 |" in rows[("resnet56-resnet20", "teacher")]
    assert "| 69.06 | last epoch | 3 | 70.00 ± 1.00 |" in rows[("resnet56-resnet20", "student")]
    assert "| 0 | – | – | – | 1 failed |" in rows[("resnet56-resnet20", "CRD")]
    assert "best epoch, mean of 5 runs" in text and "last epoch, one run" in text
    assert "1 run(s) not from an unmodified benchmark preset" in text and "modified" in text


def test_report_of_teacher_presets_and_of_nothing(tmp_path):
    assert report(find_runs(tmp_path)) == "no benchmark runs found\n"
    for seed in (0, 1):
        write_run(tmp_path, f"t{seed}", "cifar100/teachers/vgg13", seed, {"teacher": stage("vgg13", 74.0 + seed, 75)})
    text = report(find_runs(tmp_path))
    assert "| (vgg13) | teacher | 74.64 | last epoch | 2 | 74.50 ± 0.71 | 75.00 ± 0.00 | -0.14 |" in text


# ---------------------------------------------------------------- scripts/benchmark.py


@pytest.fixture(scope="module")
def script():
    return load_script("benchmark")


def test_script_run_builds_one_multirun_over_presets_and_seeds(script, capsys, tmp_path):
    code = script.main(["run", "--pairs", "vgg13-mobilenetv2,resnet56-resnet20", "--rows", "kd,fsp,dkd",
                        "--seeds", "0,1,2", "--teachers-dir", str(tmp_path), "--sweep-dir", str(tmp_path / "s"),
                        "--dry-run", "--", "device.amp=bf16"])
    out = capsys.readouterr().out
    assert code == 0 and "skipping cells that were never published: vgg13-mobilenetv2/fsp" in out
    command = out.splitlines()[-1]
    assert ("-m kdrun -m experiment=cifar100/vgg13-mobilenetv2/kd,cifar100/vgg13-mobilenetv2/dkd,"
            "cifar100/resnet56-resnet20/kd,cifar100/resnet56-resnet20/fsp,cifar100/resnet56-resnet20/dkd "
            f"seed=0,1,2 hydra.sweep.dir={tmp_path / 's'} device.amp=bf16 teachers_dir={tmp_path}") in command


def test_script_lists_presets_and_rejects_unknown_pairs(script, capsys):
    assert script.main(["list", "--table", "imagenet"]) == 0
    out = capsys.readouterr().out
    assert "experiment=imagenet/resnet34-resnet18/dkd" in out and "71.70" in out and "best epoch" in out
    assert script.main(["run", "--pairs", "resnet56-resnet21", "--dry-run"]) == 2
    assert "unknown pair 'resnet56-resnet21'" in capsys.readouterr().err


def test_script_teachers_trains_every_teacher_and_exports_the_first_seed(script, capsys, tmp_path, monkeypatch):
    """The multirun itself is replaced by run files written here: its command, the export and the report."""
    calls = []

    def fake_multirun(presets, seeds, sweep_dir, extra, dry_run):
        calls.append((presets, seeds))
        for i, (preset, seed) in enumerate((p, s) for p in presets for s in seeds):
            arch = preset.rsplit("/", 1)[1]
            ckpt = tmp_path / f"{arch}{seed}.pt"
            torch.save({"model": {"w": torch.ones(1) * int(seed)}, "arch": arch, "epoch": 240}, ckpt)
            write_run(sweep_dir, str(i), preset, int(seed),
                      {"teacher": stage(arch, 70.0 + int(seed), 71.0, source="trained", checkpoint=str(ckpt))})
        return 0

    monkeypatch.setattr(script, "kdrun_multirun", fake_multirun)
    code = script.main(["teachers", "--seeds", "1,2", "--sweep-dir", str(tmp_path / "sweep"),
                        "--export", str(tmp_path / "teachers")])
    out = capsys.readouterr().out
    assert code == 0 and calls == [([f"cifar100/teachers/{a}" for a in TEACHERS], ["1", "2"])]
    exported = sorted(p.parent.name for p in (tmp_path / "teachers").glob("*/ckpt_epoch_240.pth"))
    assert exported == sorted(f"{'ResNet50' if a == 'resnet50' else a}_vanilla" for a in TEACHERS)
    saved = torch.load(tmp_path / "teachers" / "vgg13_vanilla" / "ckpt_epoch_240.pth", weights_only=True)
    assert saved["model"]["w"].item() == 1 and saved["arch"] == "vgg13"  # the first seed's, weights only
    assert "| (resnet32x4) | teacher | 79.42 | last epoch | 2 | 71.50 ± 0.71 |" in out
    assert out.index("| (wrn_40_2) |") < out.index("| (resnet56) |") < out.index("| (resnet50) |")  # tables' order
    assert f"--teachers-dir {tmp_path / 'teachers'}" in out
