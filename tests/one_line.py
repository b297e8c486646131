"""A shared check: bad options stop in preflight with one line naming the key."""

from __future__ import annotations

import pytest

from conftest import TINY
from kdrun.errors import KdrunError


def assert_one_line_error(tmp_path, overrides: list[str], message: str) -> None:
    from kdrun.cli import CONFIG_DIR
    from kdrun.config.preflight import preflight

    with pytest.raises(KdrunError, match=message) as e:
        preflight(CONFIG_DIR, [*TINY, f"hydra.run.dir={tmp_path}/run", *overrides])
    assert "\n" not in str(e.value)
