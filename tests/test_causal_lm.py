"""Causal LMs (GPT-2 from transformers configs) on next-token data: the targets, GKD's beta limits, the table's
perplexity and token accuracy, and wrong pairs refused before any data work. GKD's golden values run in
test_methods.py (the CAUSAL pair of method_pairs.py, scripts/golden/gkd.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import transformers  # noqa: F401  (the extra this file tests)
from conftest import run_kdrun

from kdrun.data.causal import IGNORE, next_token_targets
from kdrun.methods.gkd import generalized_jsd_loss, token_kd_loss

GPT2 = [f"{role}.{o}" for role in ("teacher", "student") for o in ("hidden=32", "heads=2", "dropout=0.0")]
RUN = ["teacher=gpt2", "student=gpt2", *GPT2, "teacher.layers=2", "student.layers=1", "method=gkd",
       "dataset.num_train=128", "dataset.num_test=64", "dataset.max_length=24", "dataset.max_depth=2",
       "trainer.batch_size=32", "stages=[teacher,baseline,distilled]", "debug=fast"]
WHOLE = ["stages=[teacher,baseline,distilled,quantized]"]


def test_targets_are_the_next_token_and_ignore_padding():
    ids = torch.tensor([[2, 7, 8, 3, 0, 0], [2, 5, 6, 9, 4, 3]])
    y = next_token_targets(ids, pad_id=0)
    assert y.tolist() == [[7, 8, 3, IGNORE, IGNORE, IGNORE], [5, 6, 9, 4, 3, IGNORE]]


def logits_and_labels(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s, t = (torch.randn(3, 11, 7, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, 4:] = IGNORE
    labels[2, 1:] = IGNORE
    return s, t, labels


def kept(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, V, L) -> (kept positions, V)."""
    return z.transpose(1, 2)[labels != IGNORE]


def test_beta_limits_are_forward_and_reverse_kl_over_the_kept_positions():
    s, t, labels = logits_and_labels()
    ls, lt = F.log_softmax(kept(s, labels), -1), F.log_softmax(kept(t, labels), -1)
    forward = (lt.exp() * (lt - ls)).sum(-1).mean()
    reverse = (ls.exp() * (ls - lt)).sum(-1).mean()
    assert generalized_jsd_loss(s, t, labels, beta=0.0).item() == pytest.approx(forward.item(), rel=1e-12)
    assert generalized_jsd_loss(s, t, labels, beta=1.0).item() == pytest.approx(reverse.item(), rel=1e-12)
    # the mixture formula tends to 0 at both ends (which is why TRL treats them as exact cases), and is
    # symmetric in (student, teacher, beta) <-> (teacher, student, 1 - beta)
    assert generalized_jsd_loss(s, t, labels, beta=1e-6).item() < 1e-4
    assert generalized_jsd_loss(s, t, labels, beta=0.3).item() == pytest.approx(
        generalized_jsd_loss(t, s, labels, beta=0.7).item(), rel=1e-12)
    # ignored positions change nothing, whatever their logits
    s2 = s.clone()
    s2.transpose(1, 2)[labels == IGNORE] = 100.0
    assert generalized_jsd_loss(s2, t, labels, beta=0.5).item() == pytest.approx(
        generalized_jsd_loss(s, t, labels, beta=0.5).item(), rel=1e-12)
    # Hinton's KD term on next-token data: T^2 * forward KL at T over the same positions
    ls4, lt4 = F.log_softmax(kept(s, labels) / 4, -1), F.log_softmax(kept(t, labels) / 4, -1)
    assert token_kd_loss(s, t, labels, 4.0).item() == pytest.approx(
        16 * (lt4.exp() * (lt4 - ls4)).sum(-1).mean().item(), rel=1e-12)


def test_a_tiny_gpt2_pair_distils_end_to_end_with_perplexity_and_token_accuracy(tmp_path):
    run_kdrun([*RUN, *WHOLE, "method.beta=0.5", "hydra.run.dir=outputs/runs/r"], tmp_path)
    run = tmp_path / "outputs/runs/r"
    stages = json.loads((run / "results.json").read_text())["stages"]
    assert list(stages) == ["teacher", "baseline", "distilled", "quantized"]
    q = stages.pop("quantized")  # the distilled student with dynamic int8 Linear layers (GPT-2's Conv1D converted)
    assert q["precision"] == "int8" and 1.0 < q["perplexity"] < 25 and 0 <= q["last_top1"] <= 100
    # attention and MLP weights are int8 too (the token and 256 position embeddings stay float: most of this tiny model)
    assert q["size_bytes"] < 0.7 * stages["distilled"]["size_bytes"]
    epochs = {m["stage"]: m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    for name, r in stages.items():
        assert 1.0 < r["perplexity"] < 25, name  # about the 19-symbol vocabulary's uniform 19 after one short epoch
        assert r["perplexity"] == pytest.approx(math.exp(epochs[name]["test_loss"]), rel=1e-6), name
        assert 0 <= r["last_top1"] <= 100 and r["last_top1"] == epochs[name]["test_top1"], name
    assert math.isfinite(epochs["distilled"]["train_jsd"]) and "train_ce" not in epochs["distilled"]
    table = (run / "table.md").read_text()
    assert "| perplexity |" in table and "top-1 is the token accuracy" in table
    assert f"{stages['distilled']['perplexity']:.3f}" in table


def test_a_pretrained_gpt2_folder_teaches_with_its_own_tokenizer_which_has_no_padding_token(tmp_path):
    """The online path offline: a saved GPT-2 and a GPT-style tokenizer (no pad token, an end-of-text token) in a
    folder stand in for teacher.pretrained=gpt2; the data is tokenized by it and padded with end-of-text."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    from kdrun.data.listops import VOCAB
    from kdrun.data.tokenize import word_tokenizer
    from kdrun.models.causal_lm import gpt2_config

    folder = tmp_path / "hub_gpt2"
    tok = PreTrainedTokenizerFast(tokenizer_object=word_tokenizer([], VOCAB, 0), unk_token="[UNK]",
                                  eos_token="[SEP]")
    assert tok.pad_token is None
    tok.save_pretrained(folder)
    GPT2LMHeadModel(gpt2_config(len(VOCAB), 1, 32, 2, 64, 0.0, 0)).save_pretrained(folder)
    run_kdrun([*RUN, f"teacher.pretrained={folder}", "stages=[teacher,distilled]", "hydra.run.dir=outputs/runs/r"],
              tmp_path)
    results = json.loads((tmp_path / "outputs/runs/r/results.json").read_text())
    assert results["stages"]["distilled"]["perplexity"] > 1
    assert results["stages"]["teacher"]["params"] == sum(
        p.numel() for p in GPT2LMHeadModel.from_pretrained(folder).parameters())


def test_next_token_logits_are_never_recorded_the_teacher_runs(tmp_path):
    """distill.teacher_outputs=replay would keep vocabulary x length floats per sample: the teacher runs instead."""
    out = run_kdrun([*RUN, "stages=[teacher,distilled]", "distill.teacher_outputs=replay",
                     "hydra.run.dir=outputs/runs/r"], tmp_path)
    assert "next-token logits are not recorded" in out.stdout + out.stderr
    assert not (tmp_path / "outputs/cache/teacher_outputs").exists()
    assert json.loads((tmp_path / "outputs/runs/r/results.json").read_text())["stages"]["distilled"]["perplexity"] > 1


@pytest.mark.parametrize("case", ["gkd_on_bert", "kd_on_gpt2", "gpt2_on_listops", "beta"])
def test_wrong_pairs_fail_before_any_data_work_in_one_line(tmp_path, case):
    args = {"gkd_on_bert": ["teacher=bert", "student=bert", "method=gkd"],
            "kd_on_gpt2": [*RUN[:-1], "method=kd"],
            "gpt2_on_listops": ["teacher=gpt2", "student=gpt2", "dataset=listops", "method=gkd"],
            "beta": [*RUN[:-1], "method.beta=1.5"]}[case]
    out = run_kdrun([*args, "debug=fast"], tmp_path, check=False)
    lines = [line for line in out.stderr.splitlines() if line.startswith("kdrun: error")]
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    expect = {"gkd_on_bert": "method=gkd is for next_tokens models, but dataset listops gives tokens",
              "kd_on_gpt2": "method=kd is for image and signal and tokens models, but dataset listops_lm gives "
                            "next_tokens; methods for it: gkd",
              "gpt2_on_listops": "teacher=gpt2 needs next_tokens input but dataset listops gives tokens",
              "beta": "method.beta=1.5 is outside 0..1"}[case]
    assert expect in lines[0], lines[0]
    assert not (tmp_path / "outputs" / "runs").exists()  # no run folder, nothing generated


def test_gpt2_projections_become_equal_linear_layers():
    from transformers import GPT2LMHeadModel

    from kdrun.models.causal_lm import gpt2_config, linear_layers

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(gpt2_config(19, 2, 32, 2, 16, 0.0, 0)).eval()
    ids = torch.randint(1, 19, (2, 12))
    before = hf(input_ids=ids).logits
    converted = linear_layers(hf)
    linears = [m for m in converted.transformer.h.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 4  # c_attn, c_proj, mlp.c_fc, mlp.c_proj in each of the 2 layers
    torch.testing.assert_close(converted(input_ids=ids).logits, before)
