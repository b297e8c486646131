"""Schemes: who teaches whom (checked on the stages a scheme yields) and each scheme end to end via the CLI."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, compose_config, read_metrics, read_results
from in_process import run_here
from test_quant import tb_tags
from kdrun.tasks.build import build_data
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import LossWeights
from kdrun.config.preflight import preflight
from kdrun.models.ensemble import EnsembleModel
from kdrun.schemes.context import SchemeContext
from kdrun.tasks.distill import DMLTask
from kdrun.schemes.registry import SCHEMES, scheme_from_config

FAST = [*TINY, "measure.enabled=false"]  # scheme tests check wiring and rows, not timings


def stages_of(overrides: list[str]) -> dict:
    """The stages a scheme yields, by name (building them trains nothing)."""
    cfg = compose_config([*FAST, *overrides])
    ctx = SchemeContext(cfg, build_data(cfg))
    return {s.name: s for s in scheme_from_config(cfg).stages(ctx)}


def teacher_of(stage):
    return stage.task.teacher.model


def table_stages(run_dir) -> list[str]:
    with open(run_dir / "table.csv") as f:
        return [row["stage"] for row in csv.DictReader(f)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_every_scheme_has_a_config_whose_stages_it_runs(scheme):
    cfg = compose_config([f"scheme={scheme.name}"])
    built = scheme_from_config(cfg)
    assert type(built) is scheme and cfg.scheme.name == scheme.name
    assert cfg.stages and set(cfg.stages) <= set(scheme.stage_names)
    assert scheme.primary in scheme.stage_names and scheme.reference in scheme.stage_names


def test_one_name_per_scheme_yaml_file_and_class():
    """conf/scheme/<name>.yaml names kdrun.schemes.<name>.<Name> and scheme.name <name>; the registry holds
    exactly the config group's schemes."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from conftest import CONF

    targets = {}
    for path in sorted(Path(CONF, "scheme").glob("*.yaml")):
        node = OmegaConf.load(path).scheme
        module, _, cls = node._target_.rpartition(".")
        assert node.name == path.stem == module.rpartition(".")[2], path
        assert cls.replace("_", "").lower() == path.stem.replace("_", "").lower(), path
        targets[path.stem] = node._target_
    assert targets == {s.name: f"{s.__module__}.{s.__name__}" for s in SCHEMES}


def test_a_new_scheme_is_its_yaml_file(tmp_path):
    """SCHEMES is read from the config group: a YAML naming a class is all a scheme needs to be listed."""
    from kdrun.schemes.registry import scheme_classes
    from kdrun.schemes.offline import Offline

    (tmp_path / "scheme").mkdir()
    (tmp_path / "scheme" / "mine.yaml").write_text("scheme:\n  _target_: kdrun.schemes.offline.Offline\n  name: mine\n")
    assert scheme_classes(tmp_path) == (Offline,)


@pytest.mark.parametrize("scheme, stages, pairs", [
    ("offline", "[teacher,baseline,distilled,self_distilled]",
     [("teacher", "student", "distilled"), ("student", "student", "self_distilled")]),
    ("offline", "[baseline]", []),
    ("born_again", "[baseline,self_distilled]", [("student", "student", "self_distilled")]),
    ("assistant assistant=cnn1d_small", "[teacher,baseline,assistant,distilled]",
     [("teacher", "assistant", "assistant"), ("assistant", "student", "distilled")]),
    ("assistant assistant=cnn1d_small", "[distilled]",  # distilled brings the assistant, which brings the teacher
     [("teacher", "assistant", "assistant"), ("assistant", "student", "distilled")]),
    ("assistant", "[distilled]", []),  # no assistant= given: it is picked (and its pairs checked) with the data
    ("momentum", "[baseline,momentum]", [("student", "student", "momentum")]),
    ("one", "[baseline,one]", []),
    ("ensemble", "[teacher,baseline,distilled]", [("scheme.teachers[0]", "student", "distilled")]),
    ("dml", "[baseline,dml]", []),
])
def test_every_scheme_declares_the_pairs_its_stages_distil(scheme, stages, pairs):
    scheme, *options = scheme.split()
    cfg = compose_config([f"scheme={scheme}", f"stages={stages}", *options])
    declared = scheme_from_config(cfg).pairs(cfg)
    assert [(p.teacher, p.student, p.stage) for p in declared] == pairs


CIFAR_ZOO = ["debug=fast", "dataset=digits"]  # 8x8 images: the CIFAR zoo builds in milliseconds


def check_pairs(overrides: list[str]) -> None:
    """What the pipeline does before the first stage: build every declared pair with the method."""
    cfg = compose_config(overrides)
    scheme = scheme_from_config(cfg)
    SchemeContext(cfg, build_data(cfg)).check_pairs(scheme.pairs(cfg), scheme.name)


def test_born_again_checks_the_pair_it_distils_not_the_configured_teacher():
    pair = [*CIFAR_ZOO, "method=fsp", "teacher=vgg8", "student=resnet8"]
    with pytest.raises(KdrunError, match="method=fsp"):  # vgg8 -> resnet8: FSP needs equal channel counts
        check_pairs([*pair, "stages=[teacher,baseline,distilled]"])
    check_pairs([*pair, "scheme=born_again"])  # resnet8 -> resnet8 only: accepted


def test_assistant_checks_both_of_its_pairs_before_anything_trains():
    chain = [*CIFAR_ZOO, "scheme=assistant", "method=fsp", "teacher=resnet8", "assistant=resnet8"]
    check_pairs([*chain, "student=resnet8"])
    with pytest.raises(KdrunError, match="method=fsp.*student=vgg8"):  # the second pair, assistant -> student
        check_pairs([*chain, "student=vgg8"])
    with pytest.raises(KdrunError, match="method=fsp.*teacher=vgg8"):  # the first pair, teacher -> assistant
        check_pairs([*CIFAR_ZOO, "scheme=assistant", "method=fsp", "teacher=vgg8", "assistant=resnet8",
                     "student=resnet8"])


@pytest.mark.parametrize("described", [True, False])
def test_a_command_builds_each_method_once_to_check_and_once_to_train(tmp_path, monkeypatch, described):
    """Preflight checks the pair on the dataset's static facts and the run takes its checked config (was: three
    checks); a dataset kdrun cannot describe before loading it is checked once, after loading."""
    import kdrun.data.static_info as static_info
    import kdrun.schemes.context as context

    built = []
    real = context.build_method

    def counting(*args, **kwargs):
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(context, "build_method", counting)
    if not described:
        monkeypatch.delitem(static_info.STATIC, "kdrun.data.digits.load_digits")
    run_here([*TINY, "stages=[teacher,baseline,distilled]", "measure.enabled=false",
              f"hydra.run.dir={tmp_path}/run"], tmp_path, monkeypatch)
    assert len(built) == 2


def test_sweeps_reports_and_tables_compare_the_schemes_primary_stage(tmp_path):
    from kdrun.cli import sweep_value
    from kdrun.report.aggregate import summarize
    from kdrun.report.hparams import final_metrics
    from kdrun.report.jobs import Job
    from kdrun.report.table import table_rows

    def row(top1):
        return {"role": "x", "arch": "mlp", "method": "dml", "in_table": True, "last_top1": top1, "best_top1": top1}

    results = {"status": "completed", "primary_stage": "dml", "reference_stage": "baseline",
               "stages": {"baseline": row(50.0), "dml": row(61.0)}}
    assert sweep_value(results) == 61.0
    assert sweep_value({"stages": {"distilled": row(3.0)}}) == 3.0  # a run from before schemes declared it
    summary = summarize([Job(tmp_path / str(i), "completed", None, results) for i in range(2)])
    assert summary.primary == "dml" and summary.groups[0].delta.mean == pytest.approx(11.0)
    assert final_metrics(results)["final/delta_vs_baseline"] == pytest.approx(11.0)
    assert {r["stage"]: r["delta_vs_baseline"] for r in table_rows(results)} == {"baseline": None, "dml": 11.0}


def test_default_run_ends_with_the_five_rows():
    assert list(compose_config([]).stages) == ["teacher", "baseline", "distilled", "self_distilled", "quantized"]


def test_born_again_generation_k_plus_1_is_taught_by_generation_k(tmp_path):
    stages = stages_of([f"paths.outputs={tmp_path}", "scheme=born_again", "scheme.generations=4"])
    assert list(stages) == ["baseline", "generation2", "generation3", "self_distilled", "born_again_ensemble"]
    chain = ["baseline", "generation2", "generation3", "self_distilled"]
    for previous, current in zip(chain, chain[1:]):
        assert teacher_of(stages[current]) is stages[previous].task.eval_model
        assert stages[current].info["teacher_stage"] == previous
        assert stages[current].arch == stages[previous].arch
    members = list(stages["born_again_ensemble"].task.eval_model.members)
    assert members == [stages[name].task.eval_model for name in chain]


def test_offline_self_distilled_is_taught_by_the_baseline(tmp_path):
    stages = stages_of([f"paths.outputs={tmp_path}", "stages=[self_distilled]"])
    assert list(stages) == ["baseline", "self_distilled"]
    assert teacher_of(stages["self_distilled"]) is stages["baseline"].task.eval_model


def test_assistant_chain_wiring(tmp_path):
    stages = stages_of([f"paths.outputs={tmp_path}", "scheme=assistant", "assistant=mlp", "assistant.hidden=[24]"])
    assert teacher_of(stages["assistant"]) is stages["teacher"].task.eval_model
    assert teacher_of(stages["distilled"]) is stages["assistant"].task.eval_model
    assert stages["assistant"].task.eval_model.feature_info.stage_channels == (24,)


def test_ensemble_of_teachers_averages_soft_targets():
    torch.manual_seed(0)
    members = [torch.nn.Linear(5, 4) for _ in range(3)]
    x, T = torch.randn(6, 5), 4.0
    z = EnsembleModel(members, T=T)(x)
    expected = torch.stack([F.softmax(m(x) / T, dim=1) for m in members]).mean(0)
    assert torch.allclose(F.softmax(z / T, dim=1), expected, atol=1e-6)


def test_ensemble_scheme_teaches_with_all_members(tmp_path):
    stages = stages_of([f"paths.outputs={tmp_path}", "scheme=ensemble", "scheme.teachers=[${teacher},${teacher},${student}]"])
    ensemble = stages["teacher"].task.eval_model
    assert teacher_of(stages["distilled"]) is ensemble
    assert list(ensemble.members) == [stages[f"teacher{i}"].task.eval_model for i in (1, 2, 3)]
    # members are different models: seeded apart, and trained apart (own cache entries)
    assert not torch.equal(ensemble.members[0].fc.weight, ensemble.members[1].fc.weight)
    assert len({stages[f"teacher{i}"].cache_key for i in (1, 2, 3)}) == 3


def test_ensemble_teaches_with_logit_methods_and_refuses_feature_methods(tmp_path):
    stages = stages_of([f"paths.outputs={tmp_path}", "scheme=ensemble", "method=dkd"])  # DKD: logits only
    assert stages["distilled"].task.use_method and teacher_of(stages["distilled"]) is stages["teacher"].task.eval_model
    with pytest.raises(KdrunError, match="method=rkd needs the teacher's features"):
        check_pairs([*FAST, f"paths.outputs={tmp_path}", "scheme=ensemble", "method=rkd"])


def test_mutual_learning_updates_every_peer_only_through_its_own_terms():
    torch.manual_seed(0)
    peers = [torch.nn.Linear(6, 3) for _ in range(3)]
    task = DMLTask(peers, LossWeights(T=1.0, alpha=1.0, gamma=1.0))
    batch = Batch(torch.randn(8, 6), torch.randint(0, 3, (8,)))
    out = task(batch, Progress(1, 1))
    out.terms["kl_peer1"].backward(retain_graph=True)
    assert peers[0].weight.grad.abs().sum() > 0
    assert peers[1].weight.grad is None and peers[2].weight.grad is None  # targets are detached
    task.zero_grad(set_to_none=True)
    out.loss.backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in peers)
    expected = sum(out.terms[f"ce_peer{i}"] + out.terms[f"kl_peer{i}"] for i in (1, 2, 3))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert list(task.eval_models) == ["peer1", "peer2", "peer3"]


@pytest.mark.parametrize("args, message", [
    (["scheme=dml", "stages=[distilled]"], "not a stage of scheme=dml"),
    (["scheme=born_again", "scheme.generations=1"], "scheme.generations=1"),
    (["scheme=dml", "scheme.peers=[student,nope]"], "scheme.peers"),
    (["scheme=assistant", "assistant=nope"], "assistant=nope"),
    (["scheme=ensemble", "scheme.teachers=[]"], "scheme.teachers"),
    (["scheme=nope"], "scheme=nope"),
])
def test_bad_scheme_options_are_one_line_errors(tmp_path, args, message):
    from kdrun.cli import CONFIG_DIR

    with pytest.raises(KdrunError, match=message.replace("[", r"\[")) as e:
        preflight(CONFIG_DIR, [*TINY, f"hydra.run.dir={tmp_path}/run", *args])
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- end to end through the CLI


@pytest.mark.slow
def test_born_again_cli(workdir, monkeypatch):
    run_here([*FAST, "scheme=born_again", "hydra.run.dir=outputs/run"], workdir, monkeypatch)
    run = workdir / "outputs/run"
    results = read_results(run)
    assert table_stages(run) == ["baseline", "generation2", "self_distilled", "born_again_ensemble"]
    assert results["stages"]["self_distilled"]["teacher_stage"] == "generation2"
    assert results["stages"]["born_again_ensemble"]["members"] == 3
    assert {r["stage"] for r in read_metrics(run)} >= {"generation2", "self_distilled", "born_again_ensemble"}
    assert {"born_again_ensemble/top1/test", "self_distilled/top1/test"} <= tb_tags(run)


@pytest.mark.slow
def test_mutual_learning_cli_trains_and_evaluates_every_peer(workdir, monkeypatch):
    run_here([*FAST, "scheme=dml", "hydra.run.dir=outputs/run"], workdir, monkeypatch)
    run = workdir / "outputs/run"
    assert table_stages(run) == ["baseline", "dml/peer1", "dml/peer2"]
    epoch = [r for r in read_metrics(run) if r["stage"] == "dml"][-1]
    assert {"test_top1/peer1", "test_top1/peer2", "train_kl_peer1", "train_kl_peer2"} <= set(epoch)
    assert {"dml/top1/test_peer1", "dml/top1/test_peer2"} <= tb_tags(run)
    results = read_results(run)
    peers = results["stages"]["dml"]["models"]
    assert results["primary_stage"] == "dml"
    assert peers["peer2"]["last_top1"] == epoch["test_top1/peer2"] == peers["peer2"]["test_top1"]
    # every peer moved away from its initialization (seed + i)
    cfg = compose_config([*FAST, "scheme=dml"])
    ctx = SchemeContext(cfg, build_data(cfg))
    trained = torch.load(run / "checkpoints/dml/last.pt", weights_only=True)["task"]
    for i in range(2):
        init = ctx.model("student", seed_offset=i).state_dict()
        assert all(not torch.equal(trained[f"peers.{i}.{k}"], v) for k, v in init.items() if k.endswith("weight"))


@pytest.mark.slow
def test_assistant_cli(workdir, monkeypatch):
    run_here([*FAST, "scheme=assistant", "assistant=mlp", "assistant.hidden=[24]", "hydra.run.dir=outputs/run"],
             workdir, monkeypatch)
    results = read_results(workdir / "outputs/run")
    assert list(results["stages"]) == ["teacher", "baseline", "assistant", "distilled"]
    assert results["stages"]["distilled"]["teacher_stage"] == "assistant"
    assert results["stages"]["assistant"]["params"] == 64 * 24 + 24 + 24 * 10 + 10


@pytest.mark.slow
def test_ensemble_cli(workdir, monkeypatch):
    run_here([*FAST, "scheme=ensemble", "hydra.run.dir=outputs/run"], workdir, monkeypatch)
    results = read_results(workdir / "outputs/run")
    s = results["stages"]
    assert list(s) == ["teacher1", "teacher2", "teacher", "baseline", "distilled"]
    assert s["teacher"]["params"] == s["teacher1"]["params"] + s["teacher2"]["params"]
    assert s["teacher"]["epochs"] == 0 and not math.isnan(s["teacher"]["last_top1"])
