"""Batch ``--units``/``--select``: validated up front, part of the resume key only when set."""

from __future__ import annotations

import pytest

from facerig.batch import BatchOptions
from facerig.errors import ConfigError


def test_units_are_checked_when_the_options_are_made() -> None:
    with pytest.raises(ConfigError, match="unknown unit 'km'"):
        BatchOptions(units="km")


def test_units_and_select_enter_the_resume_key_only_when_set() -> None:
    plain = BatchOptions().output_fingerprint("model", "vocabulary")
    assert BatchOptions(units=None, select=None).output_fingerprint("model", "vocabulary") == plain
    in_cm = BatchOptions(units="cm").output_fingerprint("model", "vocabulary")
    head_only = BatchOptions(select="Head*").output_fingerprint("model", "vocabulary")
    assert len({plain, in_cm, head_only, BatchOptions(units="dm").output_fingerprint("model", "vocabulary")}) == 4
