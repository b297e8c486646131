"""kdrun's version: the installed distribution's (pyproject.toml), or ``0+unknown`` for sources used uninstalled."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kdrun")
except PackageNotFoundError:
    __version__ = "0+unknown"
