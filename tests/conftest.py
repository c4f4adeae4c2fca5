"""Shared test fixtures: the real data the suite runs on (ICT-FaceKit and the non-ICT heads in ../shared)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Callable

import pytest

# One BLAS/OpenMP thread for numpy, scipy and torch in the test process and the processes it starts, unless the
# caller chose otherwise. The suite's meshes and networks are small, and on a busy machine (CI runners, a
# training run next to the tests) threads that spin-wait for a busy core made the tests 2-3x slower
# (facerig.batch.runner gives its workers passive threads for the same reason). Set here, before the first
# import of numpy or torch, because the runtimes read these once, when they load.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository; FACERIG_SHARED overrides it for other checkouts.
SHARED = Path(os.environ.get("FACERIG_SHARED", REPO_ROOT.parent / "shared"))
ICT_ARCHIVE = SHARED / "data" / "ICT-FaceKit.tar.xz"
MAKEHUMAN_ARCHIVE = SHARED / "data" / "MakeHuman-assets.tar.xz"
HEADS = SHARED / "data" / "heads"
# Unpacked once per machine (2 s, 387 MB) and reused by later runs.
ICT_CACHE = Path(os.environ.get("FACERIG_TEST_CACHE", REPO_ROOT / ".facerig-cache"))


def _test_data(path: Path, present: Callable[[Path], bool] = Path.is_file) -> Path:
    """``path`` when it is there; else the test that asked for it fails naming what is missing from ../shared."""
    assert present(path), f"test data missing: {path}"
    return path


@pytest.fixture(scope="session")
def heads_dir() -> Path:
    """Folder with robot_expressive.glb, spot.obj and suzanne.obj (non-ICT heads, CC0)."""
    return _test_data(HEADS, Path.is_dir)


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    """The unpacked ICT-FaceKit ``FaceXModel`` folder."""
    face_x = ICT_CACHE / "ICT-FaceKit" / "FaceXModel"
    if not (face_x / "generic_neutral_mesh.obj").is_file():
        archive_path = _test_data(ICT_ARCHIVE)
        ICT_CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive_path) as archive:
            archive.extractall(ICT_CACHE, filter="data")
    return face_x


@pytest.fixture(scope="module")
def ict_model(ict_dir: Path):
    """The ICT-FaceKit model (:func:`facerig.trainer.ict.load_ict`), read once per test module: its arrays are
    writable, so modules do not share one."""
    from facerig.trainer.ict import load_ict

    return load_ict(ict_dir)


@pytest.fixture(scope="session")
def ict_neutral_path(ict_dir: Path) -> Path:
    return ict_dir / "generic_neutral_mesh.obj"


@pytest.fixture(scope="session")
def ict_archive() -> Path:
    """The ICT-FaceKit ``.tar.xz`` archive itself (for readers that must accept it unpacked or not)."""
    return _test_data(ICT_ARCHIVE)


@pytest.fixture(scope="session")
def makehuman_archive() -> Path:
    """The MakeHuman assets ``.tar.xz`` (base mesh, identity targets, expression units; CC0)."""
    return _test_data(MAKEHUMAN_ARCHIVE)


@pytest.fixture(scope="session")
def synthetic_rig(heads_dir: Path):
    """Suzanne (507 vertices, metres) with seeded smooth random deltas for every shape of the vocabulary: a rig
    whose shapes all differ, so a reader that swaps two of them fails."""
    from dataclasses import replace

    import numpy as np

    from facerig.io import load_mesh
    from facerig.rig import Rig
    from facerig.vocabulary import load_vocabulary

    vocabulary = load_vocabulary()
    mesh = replace(load_mesh(heads_dir / "suzanne.obj"), meters_per_unit=1.0, up_axis="Y")
    rng = np.random.default_rng(7)
    # each shape: a random direction per shape, faded over the head by a random linear ramp (dense, nonzero)
    ramp = mesh.vertices @ rng.normal(size=(3, len(vocabulary.shape_names)))
    deltas = rng.normal(size=(len(vocabulary.shape_names), 1, 3)) * 0.01 * (1.5 + np.tanh(ramp.T))[:, :, None]
    return Rig(neutral=mesh, shape_names=vocabulary.shape_names, deltas=deltas.astype(np.float32),
               corrective_recipes={c.name: c.bases for c in vocabulary.correctives})


# ---------------------------------------------------------------------------------------------- test tiers
# `make test-fast` (pytest -m "not slow") is the edit-test loop: no ICT unpack, no Blender, no Ray, no training,
# no network rig of a head larger than the test heads, no child process that loads torch, bpy or Node.js.
# `make test` (CI) runs everything. A test is slow when it requests one of these fixtures, directly or through
# another fixture (so a new test that uses one joins the slow tier by itself), when it lives in one of these
# modules, or when it is marked @pytest.mark.slow (the cost is in its body: a rig of the example head, a child
# process, a training step). README.md "Tests" has the timings of both tiers.
_SLOW_FIXTURES = {
    "ict_dir", "ict_neutral_path", "ict_archive", "makehuman_archive",  # the ICT unpack, the MakeHuman archive
    "blender_files",  # io/test_io_fbx.py: FBX files written by Blender (bpy, in a child process)
    "suzanne_rig",  # io/test_io_fbx.py: a deformation-transfer rig of suzanne (template registration)
    "transfer_rigs",  # eval/test_evaluate.py: two deformation-transfer rigs of suzanne, exported
    "example_rig",  # anatomy/test_rigid_parts.py: the bundled model's rig of the example head
    "gltf_validator",  # exporters/conftest.py: the Khronos glTF-Validator, a Node.js child process per file
}
_SLOW_MODULES = {
    "test_blender.py", "test_ray_backend.py", "test_kill_resume.py", "test_worker_crash.py", "test_train.py",
    "test_default_model.py", "test_batch_cli.py", "test_batch_safety.py",
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if _SLOW_FIXTURES & set(item.fixturenames) or item.path.name in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
