"""Text classification with transformers (the ``text`` extra): data, models, DistilBERT's initialisation, the
checks before any data work, optimizers and schedules, and (slow) a whole text run: int8 row, resume after kill -9.

The methods' golden values and one-step checks run in test_methods.py (the TEXT pair of method_pairs.py)."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch
import transformers  # noqa: F401  (the extra this file tests)
from conftest import compose_config, run_kdrun, start_kdrun
from method_pairs import BERT, TEXT, scheme_context, text_data

from kdrun.errors import KdrunError

TINY_BERT = [f"{role}.{o}" for role in ("teacher", "student") for o in BERT]


def tiny_model(layers: int = 2, hidden: int = 32, **options):
    from kdrun.models.registry import create_model

    kw = dict(zip(("layers", "hidden", "heads", "intermediate", "max_positions", "dropout"),
                  (layers, hidden, 2, 64, 16, 0.0)))
    return create_model("bert", num_classes=10, in_channels=19, input_size=(12,), data_facts={"pad_id": 0},
                        **{**kw, **options})


# --- data ------------------------------------------------------------------------------------------------------------


def test_listops_is_generated_the_same_everywhere_and_labelled_with_its_value():
    from kdrun.data.listops import generate, value

    texts, labels = generate(200, seed=0, max_length=32)
    assert (texts, labels) == generate(200, seed=0, max_length=32)
    assert len(set(texts)) == 200 and all(len(t.split()) <= 30 for t in texts)
    assert set(labels) <= set(range(10)) and len(set(labels)) > 5
    assert value(("[MAX", [2, 9, ("[MIN", [4, 7]), 0])) == 9
    assert value(("[SM", [("[MED", [3, 8, 1]), 5, ("[MAX", [0, 6])])) == (3 + 5 + 6) % 10
    assert value(("[MED", [1, 2, 8, 9])) == 5  # the reference's int(np.median): (2 + 8) / 2


def test_listops_bundle_matches_its_static_facts_and_pads_with_masks():
    from kdrun.data.static_info import static_info
    from kdrun.data.text import load_listops

    node = {"_target_": "kdrun.data.text.load_listops", "max_length": 32, "num_train": 300, "num_test": 100}
    data = load_listops(**{k: v for k, v in node.items() if k != "_target_"})
    assert data.info == static_info(node)
    assert data.info.input_kind == "tokens" and data.train.x.shape == (300, 32) and data.info.pad_id == 0
    batch = data.train.inputs(data.train.x, torch.arange(8))
    assert (batch[:, 0] == 2).all()  # [CLS] first
    assert batch.shape[1] == int((batch != 0).sum(1).max())  # trimmed to the longest sequence of the batch


def test_padding_changes_no_logit():
    model = tiny_model().eval()
    ids = torch.tensor([[2, 5, 6, 7, 3, 0, 0, 0]])
    with torch.no_grad():
        short, padded = model(ids[:, :5]), model(ids)
    torch.testing.assert_close(short, padded, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_local_text_files_are_read_offline(tmp_path, fmt):
    import pandas as pd

    from kdrun.data.text import load_text_files

    rows = {"text": ["a good film", "a bad film", "good and fun", "dull and bad"] * 5,
            "label": ["pos", "neg", "pos", "neg"] * 5}
    for split in ("train", "test"):
        frame = pd.DataFrame(rows)
        path = tmp_path / f"{split}.{fmt}"
        {"csv": lambda: frame.to_csv(path, index=False), "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
         "parquet": lambda: frame.to_parquet(path)}[fmt]()
    data = load_text_files(str(tmp_path / f"train.{fmt}"), str(tmp_path / f"test.{fmt}"), max_length=8, vocab_size=50)
    assert data.info.num_classes == 2 and data.train_targets.tolist()[:2] == [1, 0]  # neg=0, pos=1 (sorted)
    assert data.info.tokenizer == "corpus:text_files" and data.train.x.shape == (20, 8)
    with pytest.raises(KdrunError, match="dataset.text_column=sentence: no such column"):
        load_text_files(str(tmp_path / f"train.{fmt}"), str(tmp_path / f"test.{fmt}"), text_column="sentence")


# --- DistilBERT's initialisation ---------------------------------------------------------------------------------------


def test_distilbert_init_copies_every_other_layer_embeddings_and_head_but_not_token_types():
    from kdrun.models.text_init import init_from_teacher

    torch.manual_seed(0)
    teacher, student = tiny_model(layers=4), tiny_model(layers=2)
    token_types = student.hf.bert.embeddings.token_type_embeddings.weight.clone()
    assert init_from_teacher(student, teacher, "every_other") == [0, 2]
    s, t = student.hf.bert, teacher.hf.bert
    for i, j in ((0, 0), (1, 2)):
        for (name, a), b in zip(s.encoder.layer[i].state_dict().items(), t.encoder.layer[j].state_dict().values()):
            assert torch.equal(a, b), f"student layer {i}.{name} != teacher layer {j}"
    assert torch.equal(s.embeddings.word_embeddings.weight, t.embeddings.word_embeddings.weight)
    assert torch.equal(s.embeddings.position_embeddings.weight, t.embeddings.position_embeddings.weight)
    assert torch.equal(student.hf.classifier.weight, teacher.hf.classifier.weight)
    assert torch.equal(s.embeddings.token_type_embeddings.weight, token_types)  # the reference leaves them
    assert init_from_teacher(student, teacher, [1, 3]) == [1, 3]
    assert torch.equal(s.encoder.layer[1].output.dense.weight, t.encoder.layer[3].output.dense.weight)


def test_distilbert_init_refuses_what_cannot_be_copied_in_one_line():
    from kdrun.models.text_init import check_init

    teacher = tiny_model(layers=4)
    for student, spec, words in ((tiny_model(layers=3), "every_other", "student.layers <= 2"),
                                 (tiny_model(layers=2), [0, 9], "indices 0..3"),
                                 (tiny_model(layers=2, hidden=16), "every_other", "differs in shape"),
                                 (tiny_model(layers=2), "odd", "valid: null, every_other")):
        with pytest.raises(KdrunError, match=words) as e:
            check_init(student, teacher, spec)
        assert "\n" not in str(e.value)


# --- what a pair must agree on, before any data work ------------------------------------------------------------------


def save_pretrained(folder, words: tuple[str, ...]):
    """A tiny BERT and its tokenizer saved as a hub folder (offline stand-in for a hub name)."""
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from kdrun.data.tokenize import SPECIALS, word_tokenizer

    vocab = (*SPECIALS, *words)
    tok = PreTrainedTokenizerFast(tokenizer_object=word_tokenizer([], vocab, 0), pad_token="[PAD]",
                                  unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    tok.save_pretrained(folder)
    BertForSequenceClassification(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                             num_labels=10)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("case", ["vision_method", "too_long", "tokenizer", "cnn_student"])
def test_wrong_pairs_fail_before_any_data_work_in_one_line(tmp_path, case):
    args = {"vision_method": ["teacher=bert", "student=bert", "method=at"],
            "too_long": ["teacher=bert", "student=bert", "student.max_positions=32"],
            "cnn_student": ["teacher=bert", "student=cnn1d", "dataset=listops"]}.get(case)
    if case == "tokenizer":
        a = save_pretrained(tmp_path / "a", ("[MAX", "[MIN", "1", "2"))
        b = save_pretrained(tmp_path / "b", ("x", "y", "z"))
        args = ["teacher=bert", "student=bert", f"teacher.pretrained={a}", f"student.pretrained={b}"]
    out = run_kdrun([*args, "debug=fast"], tmp_path, check=False)
    lines = [line for line in out.stderr.splitlines() if line.startswith("kdrun: error")]
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    expect = {"vision_method": "method=at is for image and signal models, but dataset listops gives tokens; methods "
                               "for it: cc, distilbert, dkd, kd, minilm, pkt, rkd, sp, tinybert",
              "too_long": "sequence length 48 (dataset.max_length) is longer than the model's 32 position embeddings",
              "tokenizer": "tokenizer mismatch",
              "cnn_student": "student=cnn1d needs signal input but dataset listops gives tokenss"[:-1]}[case]
    assert expect in lines[0]
    assert not (tmp_path / "outputs" / "runs").exists()  # no run folder, nothing generated


def test_a_pretrained_teacher_shares_its_tokenizer_with_the_data(tmp_path):
    from kdrun.data.text import load_listops

    a = save_pretrained(tmp_path / "a", ("[MAX", "[MIN", "[MED", "[SM", "]", *map(str, range(10))))
    cfg = compose_config(["teacher=bert", "student=bert", "dataset=listops", f"teacher.pretrained={a}"])
    assert cfg.dataset.tokenizer == str(a)
    data = load_listops(max_length=32, num_train=20, num_test=5, tokenizer=str(a))
    assert data.info.tokenizer == str(a) and data.info.in_channels == 19
    assert (data.train.x[:, 0] == 2).all()  # the folder's tokenizer adds its own [CLS]


# --- optimizers and schedules ----------------------------------------------------------------------------------------


def test_the_cifar_recipe_keeps_sgd_and_its_multistep_schedule():
    from kdrun.tasks.build import optim_settings
    from kdrun.engine.optim import make_optimizer, make_scheduler

    o = optim_settings(compose_config(["trainer=cifar", "teacher=resnet20", "student=resnet8", "dataset=cifar100"]))
    assert (o.optimizer, o.scheduler, o.warmup, o.milestones, o.no_decay_norm_bias) == ("sgd", "multistep", 0.0,
                                                                                          (150, 180, 210), False)
    params = [torch.nn.Parameter(torch.zeros(3, 3)), torch.nn.Parameter(torch.zeros(3))]
    opt = make_optimizer(params, o)
    assert isinstance(opt, torch.optim.SGD) and [g["weight_decay"] for g in opt.param_groups] == [5e-4]
    assert isinstance(make_scheduler(opt, o, 240, 0), torch.optim.lr_scheduler.MultiStepLR)


def test_adamw_leaves_biases_and_norms_out_of_weight_decay_and_linear_warms_up():
    from kdrun.tasks.build import optim_settings
    from kdrun.engine.optim import lr_factor, make_optimizer

    o = optim_settings(compose_config(["teacher=bert", "student=bert", "dataset=listops", "trainer=text"]))
    assert (o.optimizer, o.scheduler, o.warmup, o.weight_decay, o.grad_clip) == ("adamw", "linear", 0.1, 0.01, 1.0)
    model = tiny_model()
    opt = make_optimizer(list(model.parameters()), o)
    decayed, rest = opt.param_groups
    assert decayed["weight_decay"] == 0.01 and rest["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in rest["params"])
    factor = lr_factor(o, total_steps=100, steps_per_epoch=10)
    # transformers' get_linear_schedule_with_warmup(warmup 10, total 100): step / 10, then (100 - step) / 90
    assert [factor(s) for s in (0, 9, 10, 55, 99)] == pytest.approx([0.0, 0.9, 1.0, 0.5, 1 / 90])


def test_cosine_and_warmed_multistep_schedules():
    from dataclasses import replace

    from kdrun.engine.optim import lr_factor
    from kdrun.engine.stage import OptimSettings

    cosine = lr_factor(OptimSettings(lr=0.1, scheduler="cosine", min_lr=0.01), 100, 10)
    assert cosine(0) == pytest.approx(1.0) and cosine(50) == pytest.approx(0.55) and cosine(100) == pytest.approx(0.1)
    steps = lr_factor(replace(OptimSettings(milestones=(2,), lr_decay=0.1), warmup=0.05), 100, 10)
    assert steps(0) == 0.0 and steps(4) == pytest.approx(0.8) and steps(19) == 1.0 and steps(20) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", ["optimizer.name=adam", "scheduler.warmup=1.5", "trainer.grad_clip=0"])
def test_bad_optimizer_settings_are_one_line(tmp_path, bad):
    out = run_kdrun(["teacher=bert", "student=bert", bad], tmp_path, check=False)
    assert out.returncode != 0 and bad.split("=")[0] in out.stderr and "Traceback" not in out.stderr


# --- relation methods on [CLS] embeddings; a step reaches the student only -------------------------------------------


@pytest.mark.parametrize("name", ["kd", "dkd", "rkd", "pkt", "sp", "cc"])
def test_logit_and_relation_methods_train_a_transformer_pair(name):
    from kdrun.engine.task import Batch, Progress

    ctx = scheme_context(name, TEXT)
    student, teacher = ctx.model("student"), ctx.model("teacher", seed_offset=1)
    data = text_data()
    batch = Batch(data.train.inputs(data.train.x, torch.arange(8)), data.train.y[:8], torch.arange(8))
    for stage in ctx.distill_stages("distilled", "distilled", student, teacher):
        out = stage.task(batch, Progress(1, 1, 0, 1))
        assert all(torch.isfinite(v) for v in out.terms.values()) and len(out.terms) >= 1
        out.loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_bench_text_prints_its_ratio_last(capsys, monkeypatch):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("bench_text", REPO / "scripts" / "bench_text.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("sys.argv", ["bench_text.py", "--steps", "1", "--rounds", "1", "--batch", "8",
                                     "--teacher-layers", "2", "--hidden", "32", "--heads", "2"])
    bench.main()
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("text step kdrun/plain: ") and float(last.split(": ")[1]) > 0


# --- a whole text run ---------------------------------------------------------------------------------------------------

RUN = ["teacher=bert", "student=bert", *TINY_BERT, "student.layers=1", "dataset.num_train=256", "dataset.num_test=64",
       "dataset.max_length=16", "dataset.max_depth=2", "trainer.batch_size=32", "measure.batch_sizes=[1]",
       "measure.max_seconds=0.2"]


@pytest.mark.slow
def test_text_run_reports_every_row_and_measures_the_int8_student(tmp_path):
    run_kdrun([*RUN, "trainer.epochs=2", "method=tinybert", "method.intermediate_epochs=1",
               "stages=[teacher,baseline,distilled,quantized]", "hydra.run.dir=outputs/runs/r"], tmp_path)
    results = json.loads((tmp_path / "outputs/runs/r/results.json").read_text())
    stages = results["stages"]
    assert list(stages) == ["teacher", "baseline", "tinybert_init", "distilled", "quantized"]
    q, d = stages["quantized"], stages["distilled"]
    assert q["precision"] == "int8" and 0 <= q["last_top1"] <= 100 and "quantize_dynamic" in q["int8_runtime"]
    assert q["size_bytes"] < d["size_bytes"] and q["latency"]["eager_ms"]["1"] > 0
    assert q["artifact"].endswith("int8_dynamic.pt") and q["artifact_bytes"] > 0
    assert "int8" in (tmp_path / "outputs/runs/r/table.md").read_text()


@pytest.mark.slow
def test_a_killed_text_run_resumes_to_the_same_result(tmp_path):
    args = [*RUN, "trainer.epochs=6", "method=distilbert", "stages=[teacher,distilled]", "measure.enabled=false"]
    run_kdrun([*args, "hydra.run.dir=outputs/runs/straight"], tmp_path)
    run_dir = tmp_path / "outputs/runs/killed"
    proc = start_kdrun([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    ckpt = run_dir / "checkpoints/distilled/last.pt"
    deadline = time.time() + 600
    while not ckpt.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert torch.load(ckpt, weights_only=True)["epoch"] < 6, "the stage finished before the kill"
    resumed = run_kdrun([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    assert "resuming after epoch" in resumed.stderr
    read = lambda d: [{k: v for k, v in json.loads(line).items() if k != "epoch_time"}  # noqa: E731
                      for line in (d / "metrics.jsonl").read_text().splitlines() if '"distilled"' in line]
    assert read(run_dir) == read(tmp_path / "outputs/runs/straight")
