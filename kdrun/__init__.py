"""kdrun: a config-driven runner for knowledge-distillation experiments.

    import kdrun
    result = kdrun.run(["method=rkd", "dataset=digits"])   # the command line's run, from Python
    result.rows, result.to_pandas(), result.students()     # the table as objects; the trained students
    kdrun.load(result.run_dir, "distilled")                # any row of a finished run as an nn.Module
    kdrun.compose(["method=rkd"])                          # the config a command would run, checked

Importing kdrun loads neither torch nor Hydra: ``run``, ``compose``, ``load`` and ``Result`` come from
kdrun/api.py on first use.
"""

from kdrun.version import __version__

API = ("run", "compose", "load", "Result")


def __getattr__(name: str):
    if name in API:
        from kdrun import api

        return getattr(api, name)
    raise AttributeError(f"module 'kdrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *API]
