"""The run log holds kdrun's own lines: a library's first-use notices (matplotlib building its font cache on a
fresh install) stay out of it."""

from __future__ import annotations

import pytest

from conftest import TINY, run_kdrun


@pytest.mark.slow  # its own process: matplotlib's font cache is built once per interpreter and config folder
def test_a_fresh_matplotlib_font_cache_leaves_no_line_in_the_run_log(tmp_path):
    proc = run_kdrun([*TINY, "stages=[teacher]", "hydra.run.dir=run"], tmp_path, in_process=False,
                     env={"MPLCONFIGDIR": str(tmp_path / "mpl")})
    assert any((tmp_path / "mpl").iterdir())  # the cache was built during this run
    log = (tmp_path / "run" / "kdrun.log").read_text()
    assert "teacher" in log and "fontManager" not in log and "fontManager" not in proc.stderr + proc.stdout
