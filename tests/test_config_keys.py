"""Every key of the composed config is one that kdrun, or the chosen model, method or dataset, reads
(kdrun/config/keys.py): a ``+key`` nothing reads is one line naming the closest valid key, never a run
that silently ignores it; the keys a ``_target_`` of the user's own takes pass."""

from __future__ import annotations

import pytest
from conftest import TINY, run_kdrun

from kdrun.config.keys import added_key_target, check_known_keys, unknown_key_message
from kdrun.errors import KdrunError


@pytest.mark.parametrize("override, said", [
    ("+distill.alhpa=0.5", "distill.alhpa is not a config key; did you mean distill.alpha? keys of distill: T, alpha"),
    ("+trainer.optimizer=adam", "trainer.optimizer is not a config key; did you mean optimizer=adamw (the optimizer "
                                "config group)? keys of trainer: batch_size,"),
    ("+distil.alpha=0.5", "distil.alpha is not a config key; did you mean distill.alpha? top-level keys:"),
    ("+method.feat_dim=64", "method.feat_dim is not a config key; keys of method: name"),  # kd has no options
    ("++distill.alhpa=0.5", "distill.alhpa is not a config key; did you mean distill.alpha?"),
    ("distill.alhpa=0.5", "distill.alhpa is not a config key; did you mean distill.alpha?"),  # Hydra's refusal
])
def test_a_key_nothing_reads_is_one_line_naming_the_closest_and_nothing_runs(workdir, override, said):
    proc = run_kdrun([*TINY, "distill.transfer_size=0", override], workdir, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"kdrun: error: {said}"), line
    assert "+" not in line  # a typo is never answered with the + form of the typo
    assert not (workdir / "outputs").exists()


def test_a_swept_key_nothing_reads_is_refused_before_any_job(workdir):
    proc = run_kdrun(["-m", *TINY, "distill.transfer_size=0", "method=crd,kd", "++method.feat_dim=64"], workdir,
                     check=False)  # crd reads it, kd (the second job) does not
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kdrun: error: method.feat_dim is not a config key; keys of method: name")
    assert not (workdir / "outputs").exists()


def test_keys_come_from_the_chosen_options_files():
    """Derived, not listed: the keys a chosen option's file gives pass (crd's feat_dim), the same key
    under an option without it does not (kd)."""
    crd = {"method": {"name": "crd", "_target_": "kdrun.methods.crd.CRD", "feat_dim": 128}}
    check_known_keys({"method": {**crd["method"], "feat_dim": 64}}, crd)
    kd = {"method": {"name": "kd", "_target_": "kdrun.methods.kd.KD"}}
    with pytest.raises(KdrunError, match="method.feat_dim is not a config key"):
        check_known_keys({"method": {**kd["method"], "feat_dim": 64}}, kd)


def test_keyword_arguments_of_a_users_target_pass():
    """``teacher._target_=mynets.make_teacher teacher.width=64``: the user's factory takes what it takes (checked
    when it is built); below a kdrun ``_target_``, a key its signature names passes too."""
    default = {"teacher": {"arch": "cnn1d", "checkpoint": None}, "dataset": {"_target_": "kdrun.data.cifar.load_cifar100",
                                                                            "root": "data"}}
    check_known_keys({"teacher": {"arch": "cnn1d", "checkpoint": None, "_target_": "mynets.make_teacher",
                                  "width": 64}, "dataset": default["dataset"]}, default)
    check_known_keys({**default, "dataset": {**default["dataset"], "verify": False}}, default)  # load_cifar100(verify=)
    with pytest.raises(KdrunError, match="dataset.verfy is not a config key; did you mean dataset.verify"):
        check_known_keys({**default, "dataset": {**default["dataset"], "verfy": False}}, default)
    tree = {"teacher": {"_target_": "mynets.make_teacher"}, "method": {"_target_": "kdrun.methods.kd.KD"}}
    assert added_key_target(tree, "teacher.width") == "mynets.make_teacher"
    assert added_key_target(tree, "method.width") is None


def test_a_key_named_like_a_config_group_suggests_the_group():
    """Once ``optimizer=`` is a config group, ``+trainer.optimizer=adam`` points to it."""
    default = {"trainer": {"lr": 0.1, "momentum": 0.9}, "optimizer": {"name": "sgd"}}
    message = unknown_key_message("trainer.optimizer", "adam", default, groups={"optimizer", "trainer"})
    assert message.startswith("trainer.optimizer is not a config key; did you mean optimizer=adam (the optimizer "
                              "config group)? keys of trainer: ")
