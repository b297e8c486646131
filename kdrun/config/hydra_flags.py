"""Hydra's own command-line flags, read the way Hydra's parser (argparse) reads them.

argparse takes an unambiguous abbreviation of a long flag (``--exp`` for ``--experimental-rerun``,
``--config-d`` for ``--config-dir``) and a flag's value in the next word (``-cd conf``). kdrun looks at
the flags by name and takes the words that do not start with ``-`` as overrides, so
:func:`canonical_args` first writes each flag in full with its value in the same word
(``--config-dir=conf``); Hydra reads that form the same way. :func:`refused_flag` names the flags kdrun
refuses: ``--experimental-rerun FILE`` unpickles FILE (a crafted one runs code), and kdrun never writes
that file; ``--config-path``/``--config-name`` would swap kdrun's primary config for one its checks never read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from functools import cache

from hydra import initialize_config_dir, version
from hydra.core.global_hydra import GlobalHydra

from kdrun.errors import KdrunError


@cache
def _actions() -> dict[str, argparse.Action]:
    from hydra._internal.utils import get_args_parser  # the parser Hydra's main() uses

    return {s: a for a in get_args_parser()._actions for s in a.option_strings}


def _action(flag: str) -> argparse.Action | None:
    """The flag's action: its exact name, or (long flags) the one option it is a prefix of, as argparse does."""
    actions = _actions()
    if flag in actions:
        return actions[flag]
    if flag.startswith("--") and len(flag) > 2:
        matches = {id(a): a for name, a in actions.items() if name.startswith(flag)}
        if len(matches) == 1:
            return next(iter(matches.values()))
    return None


def _long_name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def canonical_args(args: list[str]) -> list[str]:
    """``args`` with every abbreviated Hydra flag written in full, each flag that takes a value given it in
    the same word (``-cd conf`` -> ``--config-dir=conf``), and the flags before the overrides (argparse
    rejects overrides after a flag's value: ``kdrun debug=fast -cd conf method=mine``). Overrides keep
    their order; flags Hydra does not know are left as they are (Hydra reports those)."""
    out, overrides, i = [], [], 0
    while i < len(args):
        word, i = args[i], i + 1
        flag, eq, value = word.partition("=")
        action = _action(flag) if word.startswith("-") else None
        if action is None:
            (out if word.startswith("-") else overrides).append(word)
            continue
        if action.nargs == 0:  # a switch (-m, --help): as typed, or in full when abbreviated
            out.append(word if flag in action.option_strings else _long_name(action))
            continue
        if not eq and i < len(args) and _takes(action, args[i]):
            value, eq, i = args[i], "=", i + 1
        if _long_name(action) == "--config-dir":  # a path option: ~ as the shell would have expanded it
            value = os.path.expanduser(value)
        out.append(f"{_long_name(action)}{eq}{value}" if eq else _long_name(action))
    return out + overrides  # flags first: argparse takes the overrides in one run (none after a flag's value)


def _takes(action: argparse.Action, word: str) -> bool:
    """Whether argparse gives ``word`` to ``action`` as its value."""
    if action.nargs == "?":  # --info [what]: only one of its choices
        return word in (action.choices or ())
    return not word.startswith("-")


REFUSED = {
    "--experimental-rerun": "loads a pickled config (unpickling a file can run any code in it), and kdrun "
                            "never writes one; to run a job again, give its options again (its "
                            ".hydra/overrides.yaml lists them)",
    # Another primary config would replace kdrun's defaults list, which every check reads: refused rather than
    # run unchecked. A user's own groups and whole experiments come in beside kdrun's instead.
    "--config-path": "replaces kdrun's own configs, which its checks read; add a folder of your own groups with "
                     "--config-dir DIR (or hydra.searchpath=[file://DIR]) and choose them as usual (method=mine)",
    "--config-name": "replaces kdrun's config.yaml, which its checks read; put a whole experiment in "
                     "DIR/experiment/NAME.yaml (a Hydra '# @package _global_' file) and run "
                     "kdrun --config-dir DIR experiment=NAME",
}


def refuse_unsafe_flags(args: list[str]) -> None:
    """Raise for a flag kdrun refuses (``args`` in :func:`canonical_args` form)."""
    for word in args:
        flag = word.partition("=")[0]
        if flag in REFUSED:
            raise KdrunError(f"{flag} is refused: it {REFUSED[flag]}")


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of the long ``flag`` in ``args`` (:func:`canonical_args` form), or None."""
    return next((w.partition("=")[2] for w in args if w.partition("=")[0] == flag and "=" in w), None)


@contextlib.contextmanager
def config_search(config_dir: str, extra_dir: str | None, searchpath: list[str] | None = None) -> Iterator[None]:
    """Hydra initialized on kdrun's configs and the folders a command adds: ``--config-dir`` as Hydra's main()
    adds it, a ``hydra.searchpath=[...]`` override as Hydra's config loader adds it (after kdrun's own, before
    the schemas). Preflight then lists and composes the options the run will see."""
    if extra_dir is None and not searchpath:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3", job_name="kdrun"):
            yield
        return
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    version.setbase("1.3")
    search_path = create_config_search_path(search_path_dir=config_dir)
    if extra_dir is not None:
        folder = os.path.abspath(extra_dir)
        if not os.path.isdir(folder):
            what = "not a folder" if os.path.exists(folder) else "no such folder"
            raise KdrunError(f"--config-dir={extra_dir}: {what}; give a folder of config groups (e.g. method/mine.yaml)")
        search_path.prepend(provider="command-line", path=f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
    for entry in searchpath or []:
        search_path.prepend(provider="hydra.searchpath in command-line", path=str(entry),
                            anchor=SearchPathQuery(provider="schema"))
    Hydra.create_main_hydra2(task_name="kdrun", config_search_path=search_path)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
