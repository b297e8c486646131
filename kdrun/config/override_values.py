"""Override values as users type them: a home folder (``~``), and characters Hydra reads only inside quotes.

Hydra's override grammar takes ``~`` and non-ASCII letters only inside quotes (``dataset.root=/data/ü``
is a LexerNoViableAltException), and it keeps a quoted ``'~/ck/t.pt'`` as those characters: a path that
does not exist. :func:`quote_hint` turns the first into advice on how to quote the value;
:func:`expand_home` expands ``~`` in every override value that starts with it (a checkpoint, a data
root, ``paths.outputs``, ``hydra.run.dir``), as a shell does, before anything reads the value.
"""

from __future__ import annotations

import os
import re

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from kdrun.config.sweeps import quote

HOME = re.compile(r"~[\w.-]*(/|$)")  # ~ or ~user, alone or followed by a path


def expand_home(args: list[str]) -> list[str]:
    """``args`` with each override whose value starts with ``~`` (quoted, as the grammar needs) given the
    expanded path. Flags, sweeps and overrides that do not parse are left as they are."""
    parser = OverridesParser.create()
    out = []
    for word in args:
        if word.startswith("-") or "~" not in word.partition("=")[2]:
            out.append(word)
            continue
        try:
            [override] = parser.parse_overrides([word])
        except HydraException:
            out.append(word)  # reported, with its hint, when the command line is parsed
            continue
        value = None if override.is_sweep_override() else override.value()
        home = os.path.expanduser(value) if isinstance(value, str) and HOME.match(value) else value
        out.append(f"{override.get_key_element()}={quote(home)}" if home != value else word)
    return out


def quote_hint(overrides: list[str]) -> str | None:
    """For the first override the grammar rejects over a character it takes only inside quotes: how to
    quote it; None when no override fails that way."""
    parser = OverridesParser.create()
    for word in overrides:
        try:
            parser.parse_overrides([word])
        except HydraException:
            key, eq, value = word.partition("=")
            odd = next((c for c in value if not c.isascii() or c == "~"), None)
            if not eq or odd is None or value[:1] in "'\"":
                return None
            return (f"{word}: '{odd}' is read only inside quotes; quote the value: \"{key}='{value}'\" "
                    f"(the double quotes are for the shell)")
    return None
