"""Shared test fixtures: the real data the suite runs on (ICT-FaceKit and the non-ICT heads in ../shared)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository; FACERIG_SHARED overrides it for other checkouts.
SHARED = Path(os.environ.get("FACERIG_SHARED", REPO_ROOT.parent / "shared"))
ICT_ARCHIVE = SHARED / "data" / "ICT-FaceKit.tar.xz"
HEADS = SHARED / "data" / "heads"
# Unpacked once per machine (2 s, 387 MB) and reused by later runs.
ICT_CACHE = Path(os.environ.get("FACERIG_TEST_CACHE", REPO_ROOT / ".facerig-cache"))


@pytest.fixture(scope="session")
def heads_dir() -> Path:
    """Folder with robot_expressive.glb, spot.obj and suzanne.obj (non-ICT heads, CC0)."""
    assert HEADS.is_dir(), f"test data missing: {HEADS}"
    return HEADS


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    """The unpacked ICT-FaceKit ``FaceXModel`` folder."""
    face_x = ICT_CACHE / "ICT-FaceKit" / "FaceXModel"
    if not (face_x / "generic_neutral_mesh.obj").is_file():
        assert ICT_ARCHIVE.is_file(), f"test data missing: {ICT_ARCHIVE}"
        ICT_CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(ICT_ARCHIVE) as archive:
            archive.extractall(ICT_CACHE, filter="data")
    return face_x


@pytest.fixture(scope="session")
def ict_neutral_path(ict_dir: Path) -> Path:
    return ict_dir / "generic_neutral_mesh.obj"


@pytest.fixture(scope="session")
def ict_archive() -> Path:
    """The ICT-FaceKit ``.tar.xz`` archive itself (for readers that must accept it unpacked or not)."""
    assert ICT_ARCHIVE.is_file(), f"test data missing: {ICT_ARCHIVE}"
    return ICT_ARCHIVE


@pytest.fixture(scope="session")
def makehuman_archive() -> Path:
    """The MakeHuman assets ``.tar.xz`` (base mesh, identity targets, expression units; CC0)."""
    archive = SHARED / "data" / "MakeHuman-assets.tar.xz"
    assert archive.is_file(), f"test data missing: {archive}"
    return archive
