"""The check that the not-slow selection imports every kdrun module (run by conftest at the end of a session)."""

from __future__ import annotations

from module_coverage import PACKAGE, source_modules, unimported


def test_a_module_no_test_imports_is_named(tmp_path):
    package = tmp_path / "kdrun"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py"):
        (package / name).write_text("")
    assert source_modules(package) == {"kdrun", "kdrun.a", "kdrun.sub", "kdrun.sub.b"}
    assert unimported(["kdrun", "kdrun.a", "kdrun.sub", "kdrun.other"], package) == ["kdrun.sub.b"]


def test_the_real_package_is_listed():
    modules = source_modules()
    assert PACKAGE.name == "kdrun" and {"kdrun", "kdrun.cli", "kdrun.engine.fit", "kdrun.__main__"} <= modules
    assert len(modules) == len(list(PACKAGE.rglob("*.py")))
