"""Training sources' files (trainer/assets.py): archives streamed, and oversized files refused before reading."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from facerig.errors import DatasetError
from facerig.trainer.assets import archive_files, read_capped


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_archive_streams_picked_members_and_refuses_one_over_the_cap(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "src.tar.gz", {"kit/a.obj": b"v 0 0 0\n", "kit/b.txt": b"x", "kit/big.obj": b"0" * 100})
    pick = lambda member: Path(member.name).name if member.name.endswith(".obj") else None  # noqa: E731
    with pytest.raises(DatasetError, match="big.obj is larger than"):
        list(archive_files(archive, pick, max_bytes=64))
    assert list(archive_files(archive, pick)) == [("a.obj", b"v 0 0 0\n"), ("big.obj", b"0" * 100)]


def test_folder_file_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    (tmp_path / "big.obj").write_bytes(b"0" * 100)
    with pytest.raises(DatasetError, match="big.obj is larger than"):
        read_capped(tmp_path / "big.obj", "big.obj", tmp_path, max_bytes=64)
    assert read_capped(tmp_path / "big.obj", "big.obj", tmp_path) == b"0" * 100


def test_a_truncated_archive_is_one_error(tmp_path: Path) -> None:
    whole = _tar(tmp_path / "src.tar.gz", {"kit/a.obj": b"v 0 0 0\n" * 1000}).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        list(archive_files(cut, lambda member: member.name))
