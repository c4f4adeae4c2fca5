"""Operators on analytic cases (sphere spectrum, linear-function gradients, areas), robustness and the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from facerig.errors import FacerigError
from facerig.geometry.primitives import geodesic_sphere
from facerig.io import load_mesh
from facerig.nn.operators import (
    Operators,
    cache_key,
    compute_operators,
    default_cache_dir,
    get_operators,
    mirrored_operators,
    tangent_frames,
)


# ---------------------------------------------------------------------------------------------------- meshes
def jittered_plane(n: int = 30, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit square grid with in-plane jitter, randomly rotated: vertices (n*n, 3), triangles, plane normal."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    points = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(n * n)])
    points[:, :2] += rng.uniform(-0.3 / n, 0.3 / n, (n * n, 2))
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return points @ rotation.T, triangles, rotation[:, 2]


def gradient_3d(operators: Operators, f: np.ndarray) -> np.ndarray:
    """(V, 3) the operators' tangent gradient of f, mapped back to 3D through the tangent frames."""
    n = operators.n_vertices
    coo = (operators.grad_rows, operators.grad_cols)
    gx = scipy.sparse.csr_matrix((operators.grad_x.astype(float), coo), shape=(n, n)) @ f
    gy = scipy.sparse.csr_matrix((operators.grad_y.astype(float), coo), shape=(n, n)) @ f
    x_axis, y_axis = tangent_frames(operators.normals.astype(float))
    return gx[:, None] * x_axis + gy[:, None] * y_axis


def triangle_area(vertices: np.ndarray, triangles: np.ndarray) -> float:
    corners = vertices[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return 0.5 * float(np.linalg.norm(cross, axis=1).sum())


def m_gram(operators: Operators) -> np.ndarray:
    evecs = operators.evecs.astype(float)
    return evecs.T @ (operators.mass.astype(float)[:, None] * evecs)


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    return geodesic_sphere(13)  # 1,692 vertices


@pytest.fixture(scope="module")
def sphere_operators(sphere) -> Operators:
    return compute_operators(*sphere, k_eig=16)


# ---------------------------------------------------------------------------------------------------- analytic
def test_unit_sphere_spectrum_is_l_times_l_plus_1(sphere_operators):
    evals = sphere_operators.evals.astype(float)
    assert abs(evals[0]) < 1e-6
    np.testing.assert_allclose(evals[1:4], 2.0, rtol=0.01)
    np.testing.assert_allclose(evals[4:9], 6.0, rtol=0.01)
    np.testing.assert_allclose(evals[9:16], 12.0, rtol=0.02)
    assert np.all(np.diff(evals) >= 0)


def test_eigenvectors_are_m_orthonormal_and_satisfy_the_pencil(sphere_operators):
    ops = sphere_operators
    np.testing.assert_allclose(m_gram(ops), np.eye(16), atol=1e-4)
    evecs = ops.evecs.astype(float)
    residual = ops.laplacian.astype(float) @ evecs - ops.mass[:, None] * evecs * ops.evals[None]
    assert np.abs(residual).max() < 1e-4 * np.abs(ops.laplacian.astype(float) @ evecs).max() + 1e-6


def test_mass_sums_to_surface_area(sphere, sphere_operators):
    np.testing.assert_allclose(sphere_operators.mass.sum(), triangle_area(*sphere), rtol=1e-5)
    np.testing.assert_allclose(sphere_operators.mass.sum(), 4 * np.pi, rtol=0.01)
    assert sphere_operators.mass.min() > 0


def test_laplacian_annihilates_constants_and_is_positive_semidefinite():
    vertices, triangles = geodesic_sphere(6, radius=0.4)  # 362 vertices: dense check is cheap
    laplacian = compute_operators(vertices, triangles, k_eig=4).laplacian.astype(float)
    assert np.abs(laplacian @ np.ones(len(vertices))).max() < 1e-5
    assert abs(laplacian - laplacian.T).max() < 1e-6
    spectrum = np.linalg.eigvalsh(laplacian.toarray())
    assert spectrum.min() > -1e-5 * spectrum.max()
    assert (spectrum < 1e-6 * spectrum.max()).sum() == 1  # one component, one null vector


def test_gradient_of_linear_function_on_a_plane_is_exact():
    vertices, triangles, normal = jittered_plane()
    ops = compute_operators(vertices, triangles, k_eig=8)
    direction = np.array([0.3, -1.2, 0.7])
    tangent = direction - (direction @ normal) * normal
    error = np.linalg.norm(gradient_3d(ops, vertices @ direction) - tangent, axis=1)
    # Only the small Tikhonov term biases the fit; boundary vertices feel it most.
    assert error.max() < 0.01 * np.linalg.norm(tangent)
    np.testing.assert_allclose(np.abs(ops.normals @ normal), 1.0, atol=1e-6)


def test_gradient_of_height_on_a_sphere_is_the_projected_axis(sphere, sphere_operators):
    vertices, _ = sphere
    unit_normal = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    expected = np.array([0.0, 0.0, 1.0]) - unit_normal[:, 2:3] * unit_normal  # grad of z on the unit sphere
    error = np.linalg.norm(gradient_3d(sphere_operators, vertices[:, 2]) - expected, axis=1)
    assert error.max() < 0.02
    assert error.mean() < 0.005
    np.testing.assert_allclose(np.sum(sphere_operators.normals * unit_normal, axis=1), 1.0, atol=1e-4)


def test_gradient_of_a_constant_is_zero_and_frames_are_orthonormal(sphere_operators):
    ops = sphere_operators
    assert np.abs(gradient_3d(ops, np.full(ops.n_vertices, 3.0))).max() < 1e-4
    x_axis, y_axis = tangent_frames(ops.normals.astype(float))
    normals = ops.normals.astype(float)
    for u, v in ((x_axis, y_axis), (x_axis, normals), (y_axis, normals)):
        assert np.abs(np.sum(u * v, axis=1)).max() < 1e-5
    assert np.all(np.diff(ops.grad_rows) >= 0)
    assert ops.grad_rows.dtype == ops.grad_cols.dtype == np.int64


# ---------------------------------------------------------------------------------------------------- components
def test_two_disjoint_spheres_give_two_zero_modes_and_one_sided_eigenvectors():
    big_v, big_t = geodesic_sphere(8)
    small_v, small_t = geodesic_sphere(6, radius=0.7)
    vertices = np.concatenate([big_v, small_v + [3.0, 0.0, 0.0]])
    triangles = np.concatenate([big_t, small_t + len(big_v)])
    ops = compute_operators(vertices, triangles, k_eig=16)
    on_big = np.arange(len(vertices)) < len(big_v)

    assert (ops.evals < 1e-5).sum() == 2
    assert ops.evals[2] > 1.5
    evecs, mass = ops.evecs.astype(float), ops.mass.astype(float)
    for column in evecs[:, :2].T:  # the null space: constant on each sphere
        assert np.ptp(column[on_big]) < 1e-4 and np.ptp(column[~on_big]) < 1e-4
    for column in evecs[:, 2:].T:  # radii 1 and 0.7 share no eigenvalue below 16 modes: no mixing
        weight_big = np.sum(mass[on_big] * column[on_big] ** 2)
        assert min(weight_big, 1 - weight_big) < 1e-4


def test_fewer_eigenpairs_than_components_is_still_an_orthonormal_null_basis():
    pieces = [geodesic_sphere(2, radius=0.05) for _ in range(5)]  # 5 components of 42 vertices
    vertices = np.concatenate([v + [0.2 * i, 0, 0] for i, (v, _) in enumerate(pieces)])
    triangles = np.concatenate([t + 42 * i for i, (_, t) in enumerate(pieces)])
    for eig_max_vertices in (None, 100):  # exact, and the coarse path
        ops = compute_operators(vertices, triangles, k_eig=3, eig_max_vertices=eig_max_vertices)
        assert ops.evals.shape == (3,) and np.all(ops.evals < 1e-4)
        np.testing.assert_allclose(m_gram(ops), np.eye(3), atol=1e-4)
        per_component = ops.evecs.reshape(5, 42, 3)
        assert np.ptp(per_component, axis=1).max() < 1e-3  # each vector is constant on every component


# ---------------------------------------------------------------------------------------------------- coarse path
@pytest.mark.slow  # the exact eigen solve of a 4,002-vertex sphere
def test_coarse_eigen_path_matches_the_exact_solve():
    vertices, triangles = geodesic_sphere(20)  # 4,002 vertices
    exact = compute_operators(vertices, triangles, k_eig=64)
    coarse = compute_operators(vertices, triangles, k_eig=64, eig_max_vertices=2000)  # 1,024 coarse functions
    relative = np.abs(coarse.evals[1:] - exact.evals[1:]) / exact.evals[1:]
    assert relative.max() < 1e-3
    assert np.all(coarse.evals[1:] >= exact.evals[1:] * (1 - 1e-5))  # Ritz values bound from above
    np.testing.assert_allclose(m_gram(coarse), np.eye(64), atol=1e-4)
    # The l <= 6 eigenspace (49 functions) is the same subspace: its largest principal angle is small.
    cosines = np.linalg.svd(exact.evecs[:, :49].T @ (exact.mass[:, None] * coarse.evecs[:, :49]), compute_uv=False)
    assert np.degrees(np.arccos(min(1.0, cosines.min()))) < 1.0
    # Everything but the eigenbasis is the same computation.
    np.testing.assert_array_equal(coarse.grad_x, exact.grad_x)
    np.testing.assert_array_equal(coarse.mass, exact.mass)


# ---------------------------------------------------------------------------------------------------- robustness
def test_degenerate_mesh_gives_finite_operators():
    vertices, triangles = geodesic_sphere(4)  # 162 vertices
    n = len(vertices)
    extra = np.array([
        [0.0, 0.0, 2.0], [0.5, 0.0, 2.0], [1.0, 0.0, 2.0],  # collinear: a zero-area triangle
        [0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.3, 0.2, 3.0],  # two coincident vertices
        [9.0, 9.0, 9.0],  # unreferenced
    ])  # fmt: skip
    vertices = np.concatenate([vertices, extra])
    fin = triangles[:, [0, 1]].tolist()[0]  # an edge of the sphere, shared by a third (fin) triangle: non-manifold
    triangles = np.concatenate([
        triangles, triangles[:10], triangles[:5, ::-1],  # duplicates, in both orientations
        [[n, n + 1, n + 2], [n + 3, n + 4, n + 5], [n, n, n + 1], [fin[0], fin[1], n + 5]],
    ])  # fmt: skip
    ops = compute_operators(vertices, triangles, k_eig=20)
    for name in ("mass", "evals", "evecs", "grad_x", "grad_y", "normals"):
        assert np.isfinite(getattr(ops, name)).all(), name
    assert np.isfinite(ops.laplacian.data).all()
    assert ops.evals.min() >= 0
    np.testing.assert_allclose(m_gram(ops), np.eye(20), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(ops.normals, axis=1), 1.0, atol=1e-5)
    unused = n + 6
    assert 0 < ops.mass[unused] < 1e-6 * ops.mass.mean()
    assert not ops.evecs[unused].any()
    assert unused not in ops.grad_rows and unused not in ops.grad_cols
    # Duplicates were counted once: the mass still sums to the sphere's area plus the small extra triangles.
    expected_area = triangle_area(*geodesic_sphere(4)) + triangle_area(vertices, np.array([[n + 3, n + 4, n + 5]]))
    expected_area += triangle_area(vertices, np.array([[fin[0], fin[1], n + 5]]))
    np.testing.assert_allclose(ops.mass.sum(), expected_area, rtol=1e-4)


@pytest.mark.parametrize(
    "vertices, triangles, match",
    [
        (np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]]), "NaN"),
        (np.zeros((3, 2)), np.array([[0, 1, 2]]), r"\(V, 3\)"),
        (np.eye(3), np.array([[0, 1, 3]]), "out of range"),
        (np.eye(3), np.array([[0, 1, 1]]), "no triangle"),
    ],
)
def test_malformed_input_raises_facerig_error(vertices, triangles, match):
    with pytest.raises(FacerigError, match=match):
        compute_operators(vertices.astype(float), triangles, k_eig=2)


def test_k_larger_than_the_mesh_returns_every_mode_and_torch_tensors():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    ops = compute_operators(vertices, triangles, k_eig=64)
    assert ops.evals.shape == (4,) and ops.evecs.shape == (4, 4)
    tensors = ops.to_torch()
    assert set(tensors) == {"mass", "evals", "evecs", "grad_rows", "grad_cols", "grad_x", "grad_y", "normals"}
    assert tensors["evecs"].dtype == torch.float32 and tensors["grad_rows"].dtype == torch.int64
    assert torch.equal(tensors["grad_x"], torch.from_numpy(np.array(ops.grad_x)))


# ---------------------------------------------------------------------------------------------------- cache
def assert_identical(a: Operators, b: Operators) -> None:
    for name in ("mass", "evals", "evecs", "grad_rows", "grad_cols", "grad_x", "grad_y", "normals"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    for name in ("data", "indices", "indptr"):
        assert getattr(a.laplacian, name).tobytes() == getattr(b.laplacian, name).tobytes(), name


def test_cache_hit_is_identical_to_the_fresh_computation(tmp_path, sphere, monkeypatch):
    vertices, triangles = sphere
    fresh = get_operators(vertices, triangles, k_eig=32, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # a hit reads the file: computing again would be a miss (timings are bench/operators_speed.py's job)
    monkeypatch.setattr("facerig.nn.operators.compute_operators", lambda *a, **k: pytest.fail("cache miss"))
    cached = get_operators(vertices, triangles, k_eig=32, cache_dir=tmp_path)
    monkeypatch.undo()
    assert_identical(fresh, cached)
    assert_identical(fresh, compute_operators(vertices, triangles, k_eig=32))
    assert not cached.evecs.flags.writeable


def test_cache_key_covers_every_input(sphere):
    vertices, triangles = sphere
    key = cache_key(vertices, triangles, 32, None)
    assert key == cache_key(vertices.copy(), triangles.copy(), 32, None)
    moved = vertices.copy()
    moved[0, 0] += 1e-9
    others = {
        cache_key(vertices, triangles, 16, None),
        cache_key(vertices, triangles, 32, 4000),
        cache_key(moved, triangles, 32, None),
        cache_key(vertices.astype(np.float32), triangles, 32, None),
        cache_key(vertices, triangles[:, [1, 2, 0]], 32, None),
    }
    assert key not in others and len(others) == 5


def test_corrupt_cache_file_is_recomputed_and_replaced(tmp_path, sphere, caplog):
    vertices, triangles = sphere
    fresh = get_operators(vertices, triangles, k_eig=8, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as by a crash mid-copy
    with caplog.at_level(logging.WARNING, logger="facerig.nn.operators"):
        recovered = get_operators(vertices, triangles, k_eig=8, cache_dir=tmp_path)
    assert "unreadable" in caplog.text and path.name in caplog.text
    assert_identical(fresh, recovered)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facerig.nn.operators"):
        assert_identical(fresh, get_operators(vertices, triangles, k_eig=8, cache_dir=tmp_path))
    assert caplog.text == ""  # the file was replaced by a good one
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FACERIG_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "operators"
    monkeypatch.delenv("FACERIG_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "facerig" / "operators"


# ---------------------------------------------------------------------------------------------------- real head
def test_ict_neutral_operators(ict_neutral_path):
    mesh = load_mesh(ict_neutral_path)
    vertices, triangles = mesh.vertices, mesh.triangles
    vertices = (vertices - vertices.mean(axis=0)) / np.ptp(vertices, axis=0).max()  # about 1 unit, as canonical
    ops = compute_operators(vertices, triangles, k_eig=64, eig_max_vertices=4000)
    assert ops.evecs.shape == (26719, 64)
    # One zero mode per edge-connected piece: 56 (the eyelashes are separate strands).
    assert mesh.n_components == 56
    assert (ops.evals < 1e-6).sum() == 56
    assert ops.evals[56] > 1.0
    np.testing.assert_allclose(m_gram(ops), np.eye(64), atol=1e-3)
    assert np.isfinite(ops.grad_x).all() and np.isfinite(ops.grad_y).all()


def test_mirrored_operators_drive_the_network_as_the_mirror_images_own() -> None:
    """Sharing the eigenbasis with the original is exact: the network cannot tell them from a fresh solve."""
    from facerig.nn.network import NetworkConfig, RigNetwork

    vertices, triangles = geodesic_sphere(6, radius=0.4)  # 362 vertices: the dense (exact) eigen path
    rng = np.random.default_rng(5)
    vertices = vertices * (1 + 0.2 * np.tanh(vertices @ rng.normal(size=(3, 4))).sum(1, keepdims=True) / 4)
    vertices = vertices + [0.05, 0.0, 0.0]  # off the mirror plane, asymmetric: the mirror image is another mesh
    reflected, flipped = vertices * [-1.0, 1.0, 1.0], triangles[:, ::-1]
    shared = mirrored_operators(compute_operators(vertices, triangles, 24), vertices, triangles)
    fresh = compute_operators(reflected, flipped, 24)
    np.testing.assert_allclose(shared.normals, fresh.normals, atol=1e-6)
    np.testing.assert_allclose(shared.evals, fresh.evals, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    network = RigNetwork(NetworkConfig(width=8, n_blocks=2, k_eig=24, global_width=8, global_dim=4, n_hks=4,
                                       output_init_std=0.1)).eval()
    points = torch.from_numpy(reflected.astype(np.float32))
    activations = torch.rand(3, 47, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = network(points, fresh.to_torch(), activations)
        got = network(points, shared.to_torch(), activations)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-5)
