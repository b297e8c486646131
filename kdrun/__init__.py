"""kdrun: a config-driven runner for knowledge-distillation experiments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kdrun")  # the installed distribution's version (pyproject.toml)
except PackageNotFoundError:  # sources used without installing them
    __version__ = "0+unknown"
