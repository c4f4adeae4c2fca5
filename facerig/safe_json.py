"""JSON from untrusted files, with its nesting depth bounded before the parser sees it.

Python's ``json`` recurses once per nested array or object, so ``[[[[...]]]]`` a few thousand levels deep
ends in a RecursionError (and anything walking the result recursively would fail the same way). Every
reader of a user's JSON (glTF documents, ``--poses`` vocabularies, rig bundle headers) parses through
:func:`loads_bounded`, which measures the depth first with one linear scan.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted; real documents (glTF, vocabularies, bundle headers) stay under ten."""

# A JSON string literal (escapes included), written as an unrolled loop so long base64 URIs scan fast.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN = np.frombuffer(b"[{", np.uint8)
_CLOSE = np.frombuffer(b"]}", np.uint8)


class JsonDepthError(ValueError):
    """The text nests arrays/objects deeper than allowed."""


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in ``text`` (brackets inside strings do not count)."""
    skeleton = _STRING.sub('""', text).encode("utf-8", "replace")
    codes = np.frombuffer(skeleton, np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` after checking the nesting depth.

    Raises:
        JsonDepthError: nested deeper than ``max_depth``.
        json.JSONDecodeError: not valid JSON (both are ValueErrors; callers turn them into their own error).
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise JsonDepthError(f"JSON nested {depth} levels deep, over the limit of {max_depth}")
    return json.loads(text)
