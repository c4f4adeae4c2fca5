"""Atomic writes (facerig.fileio): short temp names, sets written all or none, stale temps, reproducible npz."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from facerig.fileio import (
    TEMP_SUFFIX,
    atomic_path,
    npz_bytes,
    remove_stale_temps,
    temp_prefix,
    write_bytes_atomic,
    write_files_atomic,
)

NAME_MAX = os.pathconf("/", "PC_NAME_MAX")


def test_a_name_near_the_file_system_limit_still_gets_a_temp_name(tmp_path: Path) -> None:
    target = tmp_path / ("h" * (NAME_MAX - len(".facerig.npz")) + ".facerig.npz")
    assert len(target.name) == NAME_MAX
    with atomic_path(target) as tmp:
        assert len(tmp.name) == 26 and tmp.name.startswith(temp_prefix(target)) and tmp.name.endswith(TEMP_SUFFIX)
        tmp.write_bytes(b"bundle")
    assert target.read_bytes() == b"bundle"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]


def test_a_set_is_written_whole(tmp_path: Path) -> None:
    files = {tmp_path / "a.usd": b"main", tmp_path / "a.usd.facerig.json": b"{}", tmp_path / "sub" / "a.bin": b"b"}
    assert write_files_atomic(files) == list(files)
    assert {path: path.read_bytes() for path in files} == files
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.usd", "a.usd.facerig.json", "sub"]


def test_a_failed_set_leaves_nothing_new_behind(tmp_path: Path) -> None:
    (tmp_path / "b.glb").mkdir()  # the main file's name is taken by a folder: its rename fails last
    kept = tmp_path / "b.glb.facerig.json"
    kept.write_bytes(b"old sidecar")
    files = {tmp_path / "b.glb": b"main", kept: b"new sidecar", tmp_path / "b.bin": b"side file"}
    with pytest.raises(IsADirectoryError):
        write_files_atomic(files)
    # The new side file is gone again, no temporary is left; a replaced file holds its complete new version.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.glb", "b.glb.facerig.json"]
    assert kept.read_bytes() == b"new sidecar"


def test_stale_temps_of_other_targets_are_left_alone(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine.facerig.npz", tmp_path / "theirs.facerig.npz"
    stale = tmp_path / f"{temp_prefix(mine)}abcd1234{TEMP_SUFFIX}"
    in_flight = tmp_path / f"{temp_prefix(theirs)}abcd1234{TEMP_SUFFIX}"
    user_file = tmp_path / f"{temp_prefix(mine)}notes.txt"
    for path in (stale, in_flight, user_file):
        path.write_bytes(b"x")
    assert remove_stale_temps([mine, tmp_path / "gone" / "x.usd"]) == [stale]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([in_flight.name, user_file.name])


def test_npz_bytes_are_reproducible_and_load_like_savez(tmp_path: Path) -> None:
    arrays = {"deltas": np.arange(12, dtype=np.float32).reshape(2, 2, 3), "header": np.array('{"a": 1}')}
    first = npz_bytes(arrays)
    assert npz_bytes(arrays) == first
    with np.load(io.BytesIO(first), allow_pickle=False) as archive:
        assert archive.files == ["deltas", "header"]
        np.testing.assert_array_equal(archive["deltas"], arrays["deltas"])
        assert str(archive["header"]) == '{"a": 1}'
    path = write_bytes_atomic(tmp_path / "r.npz", first)
    assert path.read_bytes() == first and oct(path.stat().st_mode & 0o777) != "0o600"
