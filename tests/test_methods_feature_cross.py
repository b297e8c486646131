"""Every feature-based method end to end through kdrun's entry point on cross-family CIFAR-zoo pairs (synthetic
16x16 images): vgg8 -> resnet8 (different channels and map sizes at every stage, so every regressor,
connector and pooling path runs) and, for FSP, wrn_16_1 -> resnet8 (equal channel counts).

One test per method, in this process (``cli.main``), so the methods spread over the xdist workers; the
teacher is trained once per worker (the module's outputs/cache).
"""

from __future__ import annotations

import pytest
from conftest import kdrun_in_process, read_results
from feature_cli import assert_completed_with_init_stages
from in_process import skip_run_plots
from method_pairs import map_methods

# End to end only: every method's build, step, gradients and pair checks run in-process in the not-slow
# loop (test_methods.py; the published CIFAR pairs, shapes only, in test_methods_feature.py).
pytestmark = pytest.mark.slow

SMOKE = ["debug=fast", "dataset=synthetic", "dataset.size=16", "trainer.batch_size=16", "student=resnet8",
         "stages=[teacher,distilled]", "trainer.max_train_batches=1", "trainer.max_eval_batches=1"]


@pytest.fixture(scope="module")
def cwd(tmp_path_factory):
    return tmp_path_factory.mktemp("feature_cross")


def run(cwd, args: list[str], name: str, monkeypatch, capsys) -> dict:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KDRUN_DATA", str(cwd / "data"))
    skip_run_plots(monkeypatch)
    assert kdrun_in_process([*args, *SMOKE, f"hydra.run.dir=runs/{name}"]) == 0, capsys.readouterr().err[-3000:]
    return {**read_results(cwd / "runs" / name), "dir": cwd / "runs" / name}


@pytest.mark.parametrize("method", map_methods())
def test_map_method_but_fsp_on_vgg8_to_resnet8(cwd, method, monkeypatch, capsys):
    results = run(cwd, [f"method={method}", "teacher=vgg8"], method, monkeypatch, capsys)
    assert_completed_with_init_stages({method: results}, [method])


def test_fsp_on_wrn_16_1_to_resnet8(cwd, monkeypatch, capsys):
    results = run(cwd, ["method=fsp", "teacher=wrn_16_1"], "fsp", monkeypatch, capsys)
    assert results["status"] == "completed" and list(results["stages"]) == ["teacher", "fsp_init", "distilled"]
    assert (cwd / "runs" / "fsp" / "checkpoints" / "fsp_init" / "last.pt").is_file()
