"""Dense heads rigged through a proxy (rigging/proxy.py): bounded memory, shapes carried to every vertex, exact gaze.

The dense head is the ICT-FaceKit neutral midpoint-subdivided once (105,569 vertices; its first 26,719 vertices
are the original head's, so the dense rig compares with the direct rig of the original vertex for vertex).
"""

from __future__ import annotations

import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facerig import load_mesh, rig_mesh
from facerig.geometry.subdivide import midpoint_subdivide
from facerig.mesh import Mesh
from facerig.rig import Rig
from facerig.rigging.pipeline import load_model
from facerig.rigging.proxy import DEFAULT_MEMORY_BUDGET, RigMemoryError, rig_memory_bytes
from facerig.trainer.ict import PARTS
from facerig.vocabulary import load_vocabulary

N_SHAPES = len(load_vocabulary().shape_names)


@pytest.fixture(scope="module")
def model():
    return load_model(None, "cpu")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


# ---------------------------------------------------------------------------------------------- memory budget
def test_memory_estimate_puts_420k_under_the_default_budget_and_2m_over() -> None:
    assert rig_memory_bytes(420_000, N_SHAPES) < DEFAULT_MEMORY_BUDGET
    assert rig_memory_bytes(2_000_000, N_SHAPES) > DEFAULT_MEMORY_BUDGET
    # the output alone: S x V x 3 float32
    assert rig_memory_bytes(1_000_000, N_SHAPES) - rig_memory_bytes(0, N_SHAPES) >= N_SHAPES * 12 * 1_000_000


def test_head_over_the_memory_budget_is_refused_before_anything_per_vertex_is_built(model) -> None:
    n = 2_500_000  # 95 shapes x 2.5M vertices x 12 bytes = 2.85 GB of output alone
    vertices = np.zeros((n, 3))
    vertices[:3] = np.eye(3)
    mesh = Mesh.from_triangles(vertices, np.array([[0, 1, 2]]), source="/data/huge_head.obj")
    tracemalloc.start()
    try:
        with pytest.raises(RigMemoryError) as error:
            rig_mesh(mesh, model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert message.startswith("/data/huge_head.obj: ")
    assert "2,500,000 vertices" in message and "MB" in message and "budget of 2,048 MB" in message
    assert peak < 20 * 1024**2  # refused before the weld, the frame or the output were built


def test_memory_budget_is_overridable(heads_dir: Path, model) -> None:
    mesh = load_mesh(heads_dir / "suzanne.obj")
    with pytest.raises(RigMemoryError, match="suzanne.obj"):
        rig_mesh(mesh, model, memory_budget=1024**2)
    assert rig_mesh(mesh, model, memory_budget=rig_memory_bytes(mesh.n_vertices, N_SHAPES)).deltas.shape == (
        N_SHAPES, mesh.n_vertices, 3)


# ---------------------------------------------------------------------------------------------- proxy on small heads
@pytest.mark.slow  # two rigs of each head by the bundled model
@pytest.mark.parametrize("name", ["spot.obj", "robot_expressive.glb"])
def test_head_smaller_than_the_proxy_rigs_as_it_does_directly(heads_dir: Path, model, tmp_path: Path,
                                                              name: str) -> None:
    """The proxy of a head under the proxy's size is the head itself, so carrying back must be exact."""
    mesh = load_mesh(heads_dir / name)
    direct = rig_mesh(mesh, model, cache_dir=tmp_path, proxy_min_vertices=sys.maxsize)
    proxied = rig_mesh(mesh, model, cache_dir=tmp_path, proxy_min_vertices=0)
    assert direct.metadata["proxy_vertices"] == 0
    assert proxied.metadata["proxy_vertices"] == mesh.welded.surface.n_vertices
    scale = float(np.abs(direct.deltas).max())
    assert scale > 0
    np.testing.assert_allclose(proxied.deltas, direct.deltas, atol=1e-5 * scale)


# ---------------------------------------------------------------------------------------------- a dense ICT head
def _subdivided(mesh: Mesh) -> Mesh:
    vertices, counts, corners, source = midpoint_subdivide(mesh.vertices, mesh.face_vertex_counts,
                                                           mesh.face_vertex_indices)
    return replace(mesh, vertices=vertices, face_vertex_counts=counts, face_vertex_indices=corners,
                   polygon_groups=mesh.polygon_groups[source], uvs=None, uv_indices=None, name="ict_dense")


@pytest.fixture(scope="module")
def ict_rigs(ict_neutral_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Rig, Rig]:
    """(direct rig of the 27k ICT head, proxy rig of the same head subdivided once)."""
    model = load_model(None, "cpu")
    cache = tmp_path_factory.mktemp("operators")
    head = load_mesh(ict_neutral_path)
    direct = rig_mesh(head, model, cache_dir=cache, proxy_min_vertices=sys.maxsize)
    dense = rig_mesh(_subdivided(head), model, cache_dir=cache)
    return direct, dense


def test_dense_head_rigs_through_the_proxy_with_finite_deltas_on_every_vertex(ict_rigs) -> None:
    direct, dense = ict_rigs
    assert dense.neutral.n_vertices == 105_569
    assert 3_000 <= dense.metadata["proxy_vertices"] <= 7_000
    assert dense.deltas.shape == (N_SHAPES, 105_569, 3) and dense.deltas.dtype == np.float32
    assert np.isfinite(dense.deltas).all()
    # nothing was left off the carry map: the original vertices the direct rig moves move in the dense rig too
    # (the anatomy step keeps the upper teeth and the parts off the face still in both)
    n = direct.neutral.n_vertices
    moves_direct = np.abs(direct.deltas).max(axis=(0, 2)) > 0
    moves_dense = np.abs(dense.deltas[:, :n]).max(axis=(0, 2)) > 0
    assert moves_direct.sum() > 0.5 * n and (moves_dense[moves_direct]).mean() > 0.99


@pytest.mark.parametrize("name", ["JawDrop", "LeftEyeClosed", "RightEyeClosed", "EyesLookLeft"])
def test_dense_rig_matches_the_direct_rig_of_the_original_head(ict_rigs, name: str) -> None:
    direct, dense = ict_rigs
    n = direct.neutral.n_vertices  # subdivision keeps the original vertices first
    original = dense.delta(name)[:n]
    assert _cosine(original, direct.delta(name)) >= 0.95
    gain = float((original * direct.delta(name)).sum() / (direct.delta(name) ** 2).sum())
    assert 0.6 <= gain <= 1.4


def test_dense_rig_blinks_close_on_the_dense_lids(ict_rigs) -> None:
    """The blink contact step measures a proxy's blinks on the dense head: its coarse lid margin alone under-closed
    (0.79 of the eyeball on the 27k head where the direct rig covers 0.86)."""
    from facerig.eval.evaluate import BlinkMeter

    direct, dense = ict_rigs
    blinks = ("LeftEyeClosed", "RightEyeClosed")
    shut_dense = BlinkMeter(dense.neutral, blinks).measure(np.stack([dense.delta(name) for name in blinks]))
    shut_direct = BlinkMeter(direct.neutral, blinks).measure(np.stack([direct.delta(name) for name in blinks]))
    assert set(shut_dense) == set(blinks) == set(dense.metadata["lid_gains"])
    for name in blinks:
        assert shut_dense[name] >= 0.8
        assert shut_dense[name] >= shut_direct[name] - 0.08


def _eyeball_vertices(mesh: Mesh) -> list[np.ndarray]:
    """The dense head's vertices on each ICT eyeball (pieces holding the original eyeball vertices)."""
    pieces = mesh.welded.component_labels
    eyes = []
    for part in ("eyeball_left", "eyeball_right"):
        lo, hi = next((lo, hi) for name, lo, hi, _ in PARTS if name == part)
        eyes.append(np.flatnonzero(np.isin(pieces, np.unique(pieces[lo:hi + 1]))))
    return eyes


def _rigid_fit_residual(points: np.ndarray, moved: np.ndarray) -> tuple[float, float]:
    """(max residual of the best rigid motion, its rotation angle in degrees)."""
    p, q = points - points.mean(0), moved - moved.mean(0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = (u @ np.diag([1, 1, d]) @ vt).T
    residual = np.linalg.norm(p @ rotation.T - q, axis=1).max()
    return float(residual), float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


@pytest.mark.parametrize("name", ["EyesLookLeft", "EyesLookUp"])
def test_dense_eyeballs_turn_rigidly(ict_rigs, name: str) -> None:
    _, dense = ict_rigs
    for eye in _eyeball_vertices(dense.neutral):
        assert len(eye) > 1000
        points = dense.neutral.vertices[eye]
        residual, angle = _rigid_fit_residual(points, points + dense.delta(name)[eye])
        radius = float(np.ptp(points, axis=0).max()) / 2
        assert residual < 1e-4 * radius
        assert angle == pytest.approx(25.0, abs=0.5)


def test_dense_eyeballs_stay_still_when_the_eyes_do_not_look(ict_rigs) -> None:
    _, dense = ict_rigs
    for eye in _eyeball_vertices(dense.neutral):
        assert np.abs(dense.delta("JawDrop")[eye]).max() < 1e-6
