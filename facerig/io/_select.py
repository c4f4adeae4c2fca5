"""``select``: which named parts of a multi-part file a reader keeps (standard library only, see _ufbx_child).

A pattern with glob characters (``*``, ``?``, ``[``) must match a whole name (``Head*``, ``*_geo``); any
other pattern needs only to occur in a name (``Head`` keeps ``Head``, ``HeadGeo`` and ``Hero_Head``).
Matching is case-sensitive, and a part matches when its own name or an ancestor's does.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable

_GLOB_CHARACTERS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not _GLOB_CHARACTERS.isdisjoint(pattern)


def name_matches(pattern: str, names: Iterable[str]) -> bool:
    """Whether ``pattern`` selects a part whose own and ancestors' names are ``names``."""
    if is_glob(pattern):
        return any(fnmatchcase(name, pattern) for name in names)
    return any(pattern in name for name in names)
