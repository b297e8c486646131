"""Every feature-based method end to end through the CLI on cross-family CIFAR-zoo pairs (synthetic
16x16 images): vgg8 -> resnet8 (different channels and map sizes at every stage, so every regressor,
connector and pooling path runs) and, for FSP, wrn_16_1 -> resnet8 (equal channel counts).
"""

from __future__ import annotations

import pytest
from conftest import read_results, run_kdrun
from feature_cli import QUIET_ENV, assert_completed_with_init_stages, sweep_results
from method_pairs import map_methods

# End to end only: every method's build, step, gradients and pair checks run in-process in the not-slow
# loop (test_methods.py; the published CIFAR pairs, shapes only, in test_methods_feature.py).
pytestmark = pytest.mark.slow

SMOKE = ["debug=fast", "dataset=synthetic", "dataset.size=16", "trainer.batch_size=16", "student=resnet8",
         "stages=[teacher,distilled]"]


def test_every_map_method_but_fsp_on_vgg8_to_resnet8(workdir):
    methods = map_methods()
    run_kdrun(["-m", f"method={','.join(methods)}", *SMOKE, "teacher=vgg8", "hydra.sweep.dir=sweep"], workdir, env=QUIET_ENV)
    assert_completed_with_init_stages(sweep_results(workdir / "sweep"), methods)


def test_fsp_on_wrn_16_1_to_resnet8(workdir):
    run_kdrun(["method=fsp", *SMOKE, "teacher=wrn_16_1", "hydra.run.dir=fsp"], workdir, env=QUIET_ENV)
    results = read_results(workdir / "fsp")
    assert results["status"] == "completed" and list(results["stages"]) == ["teacher", "fsp_init", "distilled"]
    assert (workdir / "fsp" / "checkpoints" / "fsp_init" / "last.pt").is_file()
