"""The Rig and its .facerig.npz bundle: round trip, evaluation, and clear errors for bad bundles."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from facerig.errors import BundleError
from facerig.mesh import Mesh
from facerig.exporters.bundle import BUNDLE_VERSION
from facerig.rig import Rig


@pytest.fixture()
def quad_rig() -> Rig:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [2, 1, 0]], float)
    mesh = Mesh(
        vertices, [4, 4], [0, 1, 2, 3, 1, 4, 5, 2],
        uvs=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float), uv_indices=[0, 1, 2, 3, 0, 1, 2, 3],
        name="quad", up_axis="Y", meters_per_unit=0.01,
    )
    deltas = np.zeros((3, 6, 3), np.float32)
    deltas[0, 0] = [0, 0, 1]  # JawDrop moves vertex 0
    deltas[1, 5] = [0, 2, 0]  # LeftLipCornerPuller moves vertex 5
    deltas[2, 2] = [0.5, 0, 0]  # their corrective moves vertex 2
    return Rig(
        mesh, ("JawDrop", "LeftLipCornerPuller", "JawDrop_LeftLipCornerPuller"), deltas,
        corrective_recipes={"JawDrop_LeftLipCornerPuller": ("JawDrop", "LeftLipCornerPuller")},
        metadata={"model_id": "abc"},
    )


def test_bundle_round_trip_is_exact(quad_rig: Rig, tmp_path) -> None:
    path = quad_rig.save(tmp_path / "quad.facerig.npz")
    loaded = Rig.load(path)
    assert loaded.shape_names == quad_rig.shape_names
    np.testing.assert_array_equal(loaded.deltas, quad_rig.deltas)
    np.testing.assert_array_equal(loaded.neutral.vertices, quad_rig.neutral.vertices)
    np.testing.assert_array_equal(loaded.neutral.face_vertex_counts, [4, 4])
    np.testing.assert_array_equal(loaded.neutral.uv_indices, quad_rig.neutral.uv_indices)
    assert loaded.corrective_recipes == quad_rig.corrective_recipes
    assert loaded.metadata == {"model_id": "abc"}
    assert (loaded.neutral.up_axis, loaded.neutral.meters_per_unit, loaded.neutral.name) == ("Y", 0.01, "quad")


def test_evaluate_drives_correctives_by_product_of_weights(quad_rig: Rig) -> None:
    both = quad_rig.evaluate({"JawDrop": 1.0, "LeftLipCornerPuller": 0.5})
    expected = quad_rig.neutral.vertices.copy()
    expected[0] += [0, 0, 1]
    expected[5] += [0, 1, 0]
    expected[2] += [0.25, 0, 0]  # corrective weight = 1.0 * 0.5
    np.testing.assert_allclose(both, expected)
    np.testing.assert_allclose(quad_rig.evaluate({}), quad_rig.neutral.vertices)


def test_newer_bundle_version_is_refused(quad_rig: Rig, tmp_path) -> None:
    path = quad_rig.save(tmp_path / "quad.facerig.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["format_version"] = np.array(BUNDLE_VERSION + 1)
    np.savez(path, **arrays)
    with pytest.raises(BundleError, match="newer than this facerig reads") as error:
        Rig.load(path)
    assert "quad.facerig.npz" in str(error.value)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable rig bundle"),
        (lambda p: p.write_bytes(b"PNG junk" * 10), "not a readable rig bundle"),
    ],
)
def test_corrupt_bundle_gives_bundle_error(quad_rig: Rig, tmp_path, damage, message) -> None:
    path = quad_rig.save(tmp_path / "quad.facerig.npz")
    damage(path)
    with pytest.raises(BundleError, match=message):
        Rig.load(path)


def test_a_member_with_an_unknown_compression_method_is_a_bundle_error(quad_rig: Rig, tmp_path) -> None:
    """zipfile cannot decompress method 99 (NotImplementedError): one BundleError naming the file, no traceback."""
    path = quad_rig.save(tmp_path / "odd.facerig.npz")
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central headers
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + offset : start + offset + 2] = (99).to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="not a readable rig bundle") as error:
        Rig.load(path)
    assert error.value.path == path


def test_bundle_missing_arrays_or_bad_shapes(quad_rig: Rig, tmp_path) -> None:
    path = quad_rig.save(tmp_path / "quad.facerig.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    del arrays["deltas"]
    np.savez(tmp_path / "missing.facerig.npz", **arrays)
    with pytest.raises(BundleError, match="missing deltas"):
        Rig.load(tmp_path / "missing.facerig.npz")
    arrays["deltas"] = np.zeros((3, 5, 3), np.float32)  # one vertex short
    np.savez(tmp_path / "short.facerig.npz", **arrays)
    with pytest.raises(BundleError, match="deltas have shape"):
        Rig.load(tmp_path / "short.facerig.npz")
    header = json.loads(str(arrays["header"]))
    header["shape_names"] = ["a", "a", "b"]
    arrays["deltas"] = quad_rig.deltas
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "dup.facerig.npz", **arrays)
    with pytest.raises(BundleError, match="not unique"):
        Rig.load(tmp_path / "dup.facerig.npz")


def test_bundle_is_a_plain_npz_without_pickles(quad_rig: Rig, tmp_path) -> None:
    path = quad_rig.save(tmp_path / "quad.facerig.npz")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"deltas.npy", "header.npy", "vertices.npy"} <= names
    with np.load(path, allow_pickle=False) as archive:  # would raise if any array needed pickle
        assert archive["deltas"].dtype == np.float32
