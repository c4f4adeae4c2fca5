"""Geometry operators for DiffusionNet: cotan Laplacian, lumped mass, Laplace eigenbasis, tangent gradients.

Everything here depends only on the neutral mesh in the canonical frame, so it is computed once per mesh and
cached on disk by content (:func:`get_operators`). :func:`compute_operators` is the pure computation; the
network only ever sees the tensors of :meth:`Operators.to_torch`.

Numerics (all in float64, stored as float32):

- Laplacian and mass come from *intrinsically mollified* edge lengths (Sharp & Crane 2020, the treatment
  behind ``robust_laplacian``, without the intrinsic Delaunay flips): every edge length is lengthened by the
  smallest delta that makes every triangle strictly satisfy the triangle inequality. Zero-area triangles and
  coincident vertices then give finite cotangents, and L stays positive semi-definite because it is still the
  Dirichlet energy of a (slightly perturbed) triangle metric. Mass is the barycentric lumped area.
- Eigenpairs of ``L phi = lambda M phi`` by ARPACK in shift-invert mode around a small negative shift (the
  problem is singular: one zero eigenvalue per connected component), retried with a larger shift when the
  factorisation or the iteration fails.
- Above ``eig_max_vertices`` vertices the eigenbasis is approximated (:func:`_coarse_eigenpairs`): a Galerkin
  solve on a smoothed-aggregation coarse space of ``min(eig_max_vertices, 16 k)`` functions, then two steps of
  block inverse iteration with Rayleigh-Ritz on the full mesh. Against the exact solve (k = 64,
  eig_max_vertices = 4000, ``bench/operators_speed.py``, one core of a shared 2-core machine, so times are
  rough):

      mesh              V   max rel. error of     max principal angle      exact eig   coarse eig
                            non-zero eigenvalues  between the eigenspaces
      sphere        4,842   6e-5                  0.11 deg (first 49)      0.3-1.0 s   0.3-0.7 s
      sphere       10,242   1.3e-4                0.23 deg (first 49)      1.0-2.8 s   0.6-1.2 s
      sphere       27,042   1.4e-4                0.28 deg (first 49)      4.7-8 s     1.8-3.2 s
      ICT neutral  26,719   5e-5                  0.07 deg (first 63)      2.2-4 s     1.2-1.7 s

  The approximate eigenvalues are Ritz values, so they bound the exact ones from above; the vectors are
  exactly M-orthonormal on the full mesh and per-component constants (the zero modes) are exact.
- The gradient is a per-vertex least-squares fit of ``f_j - f_i ~ g . (p_j - p_i)`` over the one-ring, in a
  tangent frame (X = a fixed reference axis projected onto the tangent plane, Y = n x X), as in DiffusionNet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from facerig.errors import FacerigError
from facerig.fileio import atomic_path
from facerig.geometry import vertex_normals

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Bump whenever a change in this module changes any output: it is part of the cache key.
OPERATORS_VERSION = 1

_MOLLIFY_FACTOR = 1e-6  # times the mean edge length: the least slack of every triangle inequality
_MASS_EPS = 1e-8  # times the mean mass, added to every vertex so that none has zero mass
_GRAD_REG = 1e-3  # Tikhonov term of the gradient fit, relative to the one-ring's mean second moment
_EIG_SHIFT = 1e-6  # initial shift-invert shift, times the mean of 1 / mass (the top of the spectrum's scale)
_EIG_RETRIES = 5  # each retry multiplies the shift by 10
_DENSE_EIG_MAX = 600  # at most this many vertices: dense generalized eigh (faster and exact)
# Coarse eigen path (_coarse_eigenpairs).
_SMOOTHING_STEPS = 1  # damped Jacobi steps that smooth the aggregate indicators into the prolongation
_COARSE_PER_EIGENPAIR = 16  # coarse space size: this many functions per eigenpair, at most eig_max_vertices
_OVERSAMPLE = 16  # vectors carried beyond k: they speed up the refinement of the top few
_REFINEMENT_STEPS = 2  # block inverse iterations on the full mesh (each cuts the eigenvalue error 10-40x)

_TORCH_KEYS = ("mass", "evals", "evecs", "grad_rows", "grad_cols", "grad_x", "grad_y", "normals")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Operators:
    """The per-mesh operators DiffusionNet needs (V vertices, K eigenpairs, nnz gradient entries).

    Attributes:
        mass: (V,) float32 lumped vertex area, plus a tiny epsilon so that no vertex has zero mass.
        evals: (K,) float32 eigenvalues of ``L phi = lambda M phi``, ascending, >= 0.
        evecs: (V, K) float32 eigenvectors, M-orthonormal (``evecs.T @ diag(mass) @ evecs ~ I``).
        grad_rows, grad_cols: (nnz,) int64 COO indices of the tangent gradient operator, sorted by row.
        grad_x, grad_y: (nnz,) float32 values: ``(G_x f)[i] = sum_e grad_x[e] * f[grad_cols[e]]`` over the
            entries ``e`` with ``grad_rows[e] == i``; likewise ``G_y``. Components are in each vertex's tangent
            frame, so only frame-invariant products (as DiffusionNet forms) are meaningful.
        normals: (V, 3) float32 unit vertex normals (area weighted).
        laplacian: (V, V) float32 CSR cotan Laplacian, positive semi-definite (``L @ 1 = 0``).

    K is ``min(k_eig, number of vertices used by a triangle)``. Vertices no triangle uses get the epsilon
    mass, zero eigenvector rows and no gradient entries.
    """

    mass: np.ndarray
    evals: np.ndarray
    evecs: np.ndarray
    grad_rows: np.ndarray
    grad_cols: np.ndarray
    grad_x: np.ndarray
    grad_y: np.ndarray
    normals: np.ndarray
    laplacian: scipy.sparse.csr_matrix

    @property
    def n_vertices(self) -> int:
        return len(self.mass)

    @property
    def k_eig(self) -> int:
        return len(self.evals)

    def to_torch(self, device: str = "cpu") -> dict[str, "torch.Tensor"]:
        """The network's inputs as tensors on ``device`` (float32, indices int64); the Laplacian is not included."""
        import torch

        return {key: torch.from_numpy(np.array(getattr(self, key))).to(device) for key in _TORCH_KEYS}


# ---------------------------------------------------------------------------------------------------- public API
def compute_operators(
    vertices: np.ndarray,
    triangles: np.ndarray,
    k_eig: int = 64,
    *,
    eig_max_vertices: int | None = None,
) -> Operators:
    """Compute the operators of a triangle mesh.

    Args:
        vertices: (V, 3) float canonical-frame positions (the head is about 1 unit in size).
        triangles: (F, 3) int vertex indices. Duplicate triangles and triangles that repeat a vertex are
            ignored; any number of connected components, non-manifold edges and unused vertices are fine.
        k_eig: number of eigenpairs.
        eig_max_vertices: above this many (used) vertices the eigenbasis is approximated: solved on a coarse
            space of ``min(eig_max_vertices, 16 k_eig)`` functions and refined on the full mesh (errors: module
            docstring); None always solves exactly.

    Raises:
        FacerigError: malformed input, or a non-finite result.
    """
    vertices, triangles = _validated(vertices, triangles, k_eig, eig_max_vertices)
    vertices = vertices.astype(np.float64)  # float32 input (the pipeline's) would lose digits in the cotans
    n_vertices = len(vertices)
    triangles = _clean_triangles(triangles)
    if len(triangles) == 0:
        raise FacerigError("cannot compute operators: the mesh has no triangle with three distinct vertices")

    laplacian, mass = cotan_laplacian(vertices, triangles)
    normals = vertex_normals(vertices, triangles)
    # The eigen-solve sees only vertices some triangle uses: an unused vertex would add a spurious zero mode.
    used = np.unique(triangles)
    renumber = np.full(n_vertices, -1, np.int64)
    renumber[used] = np.arange(len(used))
    evals, evecs_used = laplace_eigenpairs(
        vertices[used],
        renumber[triangles],
        laplacian[used][:, used],
        mass[used],
        k_eig,
        eig_max_vertices=eig_max_vertices,
    )
    evecs = np.zeros((n_vertices, len(evals)))
    evecs[used] = evecs_used

    grad_rows, grad_cols, grad_x, grad_y = tangent_gradient(vertices, triangles, normals)

    operators = Operators(
        mass=_readonly(mass.astype(np.float32)),
        evals=_readonly(evals.astype(np.float32)),
        evecs=_readonly(evecs.astype(np.float32)),
        grad_rows=_readonly(grad_rows),
        grad_cols=_readonly(grad_cols),
        grad_x=_readonly(grad_x.astype(np.float32)),
        grad_y=_readonly(grad_y.astype(np.float32)),
        normals=_readonly(normals.astype(np.float32)),
        laplacian=_csr32(laplacian),
    )
    _check_finite(operators)
    return operators


def mirrored_operators(operators: Operators, vertices: np.ndarray, triangles: np.ndarray) -> Operators:
    """The operators of a mesh's mirror image across x = 0, from the mesh's own.

    The mirror image has vertices ``vertices * (-1, 1, 1)`` (same order) and every triangle's winding reversed,
    so its normals still point outwards. A reflection is an isometry: the cotan Laplacian, the mass and the
    eigenbasis are the original's and are shared; only the normals and the tangent gradient (its frames have a
    handedness) are recomputed, a small fraction of the cost of an eigen-solve.

    Args:
        operators: those of (``vertices``, ``triangles``), e.g. from :func:`get_operators`.
        vertices, triangles: the original mesh (not its mirror image).
    """
    reflected = np.asarray(vertices, np.float64) * np.array([-1.0, 1.0, 1.0])
    flipped = _clean_triangles(np.asarray(triangles)[:, ::-1])
    normals = vertex_normals(reflected, flipped)
    grad_rows, grad_cols, grad_x, grad_y = tangent_gradient(reflected, flipped, normals)
    return dataclasses.replace(
        operators,
        grad_rows=_readonly(grad_rows),
        grad_cols=_readonly(grad_cols),
        grad_x=_readonly(grad_x.astype(np.float32)),
        grad_y=_readonly(grad_y.astype(np.float32)),
        normals=_readonly(normals.astype(np.float32)),
    )


def get_operators(
    vertices: np.ndarray,
    triangles: np.ndarray,
    k_eig: int = 64,
    *,
    cache_dir: str | Path | None = None,
    eig_max_vertices: int | None = None,
) -> Operators:
    """:func:`compute_operators`, cached on disk by a hash of every input.

    The cache file is ``<cache_dir>/<key>.npz`` (``cache_dir`` defaults to :func:`default_cache_dir`); a hit
    returns arrays bit-identical to the fresh computation. An unreadable or mismatching cache file is logged,
    recomputed and replaced.
    """
    vertices, triangles = _validated(vertices, triangles, k_eig, eig_max_vertices)
    key = cache_key(vertices, triangles, k_eig, eig_max_vertices)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.npz"
    if path.is_file():
        try:
            return _load(path, key)
        except Exception as error:  # any unreadable file is a cache miss, never a crash
            log.warning("operator cache file %s is unreadable (%s); recomputing it", path, error)
    operators = compute_operators(vertices, triangles, k_eig, eig_max_vertices=eig_max_vertices)
    try:
        _save(path, key, operators)
    except OSError as error:  # a read-only or full cache dir must not stop rigging
        log.warning("could not write operator cache file %s (%s)", path, error)
    return operators


def default_cache_dir() -> Path:
    """``$FACERIG_CACHE/operators`` when FACERIG_CACHE is set, else ``~/.cache/facerig/operators``."""
    root = os.environ.get("FACERIG_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "facerig") / "operators"


def cache_key(vertices: np.ndarray, triangles: np.ndarray, k_eig: int, eig_max_vertices: int | None) -> str:
    """SHA-256 hex digest over everything that changes :func:`compute_operators`' output."""
    digest = hashlib.sha256()
    digest.update(f"facerig-operators v{OPERATORS_VERSION} k={k_eig} max={eig_max_vertices}".encode())
    for array in (vertices, triangles):
        array = np.ascontiguousarray(array)
        digest.update(f"|{array.dtype.str}{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- geometry
def cotan_laplacian(vertices: np.ndarray, triangles: np.ndarray) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Cotan Laplacian and lumped mass from intrinsically mollified edge lengths.

    Args:
        vertices: (V, 3) float64.
        triangles: (F, 3) int64 with three distinct vertices each.

    Returns:
        (V, V) float64 CSR Laplacian (positive semi-definite, rows sum to 0) and (V,) float64 mass
        (barycentric lumped area plus ``_MASS_EPS`` times its mean).
    """
    n = len(vertices)
    # lengths[:, k] is the edge opposite corner k.
    corners = vertices[triangles]  # (F, 3, 3)
    lengths = np.linalg.norm(corners[:, [2, 0, 1]] - corners[:, [1, 2, 0]], axis=2)  # (F, 3)
    a, b, c = lengths.T
    eps = _MOLLIFY_FACTOR * max(float(lengths.mean()), np.finfo(float).tiny)
    violation = eps - np.stack([b + c - a, c + a - b, a + b - c], axis=1)  # (F, 3) > 0 where too flat
    lengths = lengths + max(0.0, float(violation.max()))
    # Heron's formula in Kahan's cancellation-free form, with x >= y >= z.
    x, y, z = np.sort(lengths, axis=1)[:, ::-1].T
    area = 0.25 * np.sqrt(np.maximum((x + (y + z)) * (z - (x - y)) * (z + (x - y)) * (x + (y - z)), 0.0))
    area = np.maximum(area, np.finfo(float).tiny)
    squared = lengths**2
    cot = (squared.sum(axis=1, keepdims=True) - 2 * squared) / (4 * area[:, None])  # (F, 3) at corner k

    # The edge opposite corner k joins corners k+1 and k+2 with weight cot_k / 2; each weight enters the
    # 2 x 2 block [[w, -w], [-w, w]] of its edge, so rows sum to zero by construction.
    i = triangles[:, [1, 2, 0]].ravel()
    j = triangles[:, [2, 0, 1]].ravel()
    w = 0.5 * cot.ravel()
    laplacian = scipy.sparse.coo_matrix(
        (np.concatenate([-w, -w, w, w]), (np.concatenate([i, j, i, j]), np.concatenate([j, i, i, j]))), (n, n)
    ).tocsr()  # sums duplicate entries, sorted indices

    mass = np.bincount(triangles.ravel(), weights=np.repeat(area / 3.0, 3), minlength=n)
    mass += _MASS_EPS * mass.mean()
    return laplacian, mass


def tangent_frames(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex tangent axes: X = the reference axis +X projected onto the tangent plane (+Y where the
    normal is within ~25 degrees of X), Y = n x X. Returns two (V, 3) float64 unit arrays."""
    reference = np.zeros_like(normals)
    use_y = np.abs(normals[:, 0]) > 0.9
    reference[~use_y, 0] = 1.0
    reference[use_y, 1] = 1.0
    x_axis = reference - np.sum(reference * normals, axis=1, keepdims=True) * normals
    x_axis /= np.linalg.norm(x_axis, axis=1, keepdims=True)
    return x_axis, np.cross(normals, x_axis)


def tangent_gradient(
    vertices: np.ndarray, triangles: np.ndarray, normals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares tangent gradient over each vertex's one-ring, as COO (rows, cols, x values, y values).

    For vertex i with neighbours j and tangent-plane edge vectors e_ij (2,), the gradient g minimises
    ``sum_j (g . e_ij - (f_j - f_i))^2 + r |g|^2`` with r = ``_GRAD_REG`` times the mean eigenvalue of
    ``sum_j e_ij e_ij^T``; so g = A^-1 sum_j e_ij (f_j - f_i) with A = sum_j e_ij e_ij^T + r I, solved for all
    vertices at once in closed form (2 x 2). Unused vertices get no entries (zero gradient).

    Returns:
        rows, cols: (nnz,) int64, sorted by (row, col). x, y: (nnz,) float64.
    """
    n = len(vertices)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    codes = np.unique(edges[:, 0] * n + edges[:, 1])  # deduplicated directed edges, sorted by source
    src, dst = codes // n, codes % n
    x_axis, y_axis = tangent_frames(normals)
    d = vertices[dst] - vertices[src]  # (E, 3)
    u = np.sum(d * x_axis[src], axis=1)
    v = np.sum(d * y_axis[src], axis=1)
    a11 = np.bincount(src, u * u, minlength=n)
    a12 = np.bincount(src, u * v, minlength=n)
    a22 = np.bincount(src, v * v, minlength=n)
    reg = _GRAD_REG * 0.5 * (a11 + a22)
    a11, a22 = a11 + reg, a22 + reg
    det = a11 * a22 - a12 * a12
    used = det > 0
    inv_det = np.zeros(n)
    inv_det[used] = 1.0 / det[used]
    # Row i of G_x applied to f: sum_j wx_ij (f_j - f_i), with (wx, wy) = A_i^-1 e_ij.
    wx = (a22[src] * u - a12[src] * v) * inv_det[src]
    wy = (a11[src] * v - a12[src] * u) * inv_det[src]
    diag_rows = np.flatnonzero(np.bincount(src, minlength=n) > 0)
    rows = np.concatenate([src, diag_rows])
    cols = np.concatenate([dst, diag_rows])
    gx = np.concatenate([wx, -np.bincount(src, wx, minlength=n)[diag_rows]])
    gy = np.concatenate([wy, -np.bincount(src, wy, minlength=n)[diag_rows]])
    order = np.lexsort((cols, rows))
    return rows[order].astype(np.int64), cols[order].astype(np.int64), gx[order], gy[order]


# ---------------------------------------------------------------------------------------------------- eigenbasis
def laplace_eigenpairs(
    vertices: np.ndarray,
    triangles: np.ndarray,
    laplacian: scipy.sparse.csr_matrix,
    mass: np.ndarray,
    k: int,
    *,
    eig_max_vertices: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``min(k, V)`` smallest eigenpairs of ``L phi = lambda M phi`` with M = diag(mass).

    Args:
        vertices, triangles: (V, 3) float64 and (F, 3) int64, every vertex used (only the coarse path reads them).
        laplacian: (V, V) float64 PSD sparse matrix.
        mass: (V,) float64 positive.
        eig_max_vertices: above this V, the coarse-space approximation of :func:`_coarse_eigenpairs`.

    Returns:
        (K,) float64 eigenvalues, ascending and clipped at 0, and (V, K) float64 M-orthonormal eigenvectors.
    """
    n = len(mass)
    k = min(k, n)
    # The coarse space only has to seed the refinement: a small one is cheap and the refinement does the rest.
    n_coarse = max(min(eig_max_vertices or n, _COARSE_PER_EIGENPAIR * k), 2 * (k + _OVERSAMPLE))
    evals = evecs = None
    if eig_max_vertices is not None and n > eig_max_vertices and n > n_coarse:
        evals, evecs = _coarse_eigenpairs(vertices, triangles, laplacian, mass, k, n_coarse)
        if len(evals) < k:
            # A head of many small pieces can leave the refinement's basis rank-deficient (each piece's constant
            # is in it twice), and Rayleigh-Ritz then drops directions: solve exactly rather than return fewer.
            log.info("coarse eigenbasis gave %d of %d eigenpairs; solving exactly", len(evals), k)
            evals = evecs = None
    if evals is None:
        shift = _EIG_SHIFT * float(np.mean(1.0 / mass))
        evals, evecs = _generalized_eigsh(laplacian.tocsc(), scipy.sparse.diags(mass).tocsc(), k, shift)
    return np.maximum(evals, 0.0), evecs


def _generalized_eigsh(
    a: scipy.sparse.spmatrix, b: scipy.sparse.spmatrix, k: int, shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest k eigenpairs of the PSD pencil (a, b) (b SPD), B-orthonormal, ascending.

    Shift-invert ARPACK around ``-shift`` (a is singular: one zero eigenvalue per component); on a failed
    factorisation or iteration the shift grows tenfold (DiffusionNet's recipe). Small problems use dense eigh.
    """
    n = a.shape[0]
    if n <= max(_DENSE_EIG_MAX, 2 * k + 1):
        evals, evecs = scipy.linalg.eigh(a.toarray(), b.toarray(), subset_by_index=(0, k - 1), driver="gvx")
        return evals, evecs
    # A fixed start vector makes the result reproducible run to run.
    v0 = np.random.default_rng(0).standard_normal(n)
    last_error: Exception | None = None
    for _ in range(_EIG_RETRIES):
        try:
            evals, evecs = scipy.sparse.linalg.eigsh(a, k=k, M=b, sigma=-shift, which="LM", v0=v0)
        except (RuntimeError, scipy.sparse.linalg.ArpackError) as error:
            last_error = error
            shift *= 10.0
            continue
        order = np.argsort(evals)
        return evals[order], evecs[:, order]
    raise FacerigError(f"the Laplace eigen-solve failed after {_EIG_RETRIES} shifts: {last_error}")


def _coarse_eigenpairs(
    vertices: np.ndarray,
    triangles: np.ndarray,
    laplacian: scipy.sparse.csr_matrix,
    mass: np.ndarray,
    k: int,
    n_coarse: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate smallest k eigenpairs through a coarse space of about ``n_coarse`` functions.

    1. Aggregates: seeds on a voxel grid (one per occupied cell and connected component, so every
       component, however small, has one), each vertex joined to its geodesically nearest seed along mesh
       edges (multi-source Dijkstra), so an aggregate never spans two components or two lips.
    2. Prolongation P (V, C): the aggregates' indicator functions smoothed by damped Jacobi on the graph
       Laplacian. Rows sum to 1, so per-component constants stay exactly representable (exact zero modes).
    3. Galerkin: the eigenpairs of (P^T L P, P^T M P), carried to the mesh as P phi_c: M-orthonormal, and
       their Rayleigh quotients bound the exact eigenvalues from above.
    4. Refinement on the full mesh, ``_REFINEMENT_STEPS`` times: block inverse iteration
       Y = (L + s M)^-1 M X of the current k + oversample vectors X (one sparse LU, reused), then Rayleigh-Ritz
       in span[X, Y]: its k + oversample best Ritz vectors become the next X.
    """
    n = len(mass)
    m = scipy.sparse.diags(mass).tocsr()
    shift = _EIG_SHIFT * float(np.mean(1.0 / mass))

    prolongation = _prolongation(vertices, triangles, mass, n_coarse)
    lc = (prolongation.T @ laplacian @ prolongation).tocsc()
    mc = (prolongation.T @ m @ prolongation).tocsc()
    n_vectors = min(k + _OVERSAMPLE, lc.shape[0] - 1, n - 1)
    _, coarse_vecs = _generalized_eigsh(lc, mc, n_vectors, shift)
    block = prolongation @ coarse_vecs  # (V, k + oversample), M-orthonormal
    if n_vectors < k:  # a coarse space too small for k vectors: refine from what it has
        block = np.hstack([block, np.random.default_rng(0).standard_normal((n, k - n_vectors))])

    lu = scipy.sparse.linalg.splu((laplacian + shift * m).tocsc())
    for _ in range(_REFINEMENT_STEPS):
        inverse_iterate = lu.solve(mass[:, None] * block)
        # Unit M-norm columns: the zero modes grow by 1 / shift and would otherwise swamp the whitening.
        inverse_iterate /= np.sqrt(np.einsum("vi,v,vi->i", inverse_iterate, mass, inverse_iterate))[None]
        evals, block = _rayleigh_ritz(laplacian, mass, np.hstack([block, inverse_iterate]), block.shape[1])
    evals, evecs = evals[:k], block[:, :k]
    return evals, evecs


def _prolongation(
    vertices: np.ndarray, triangles: np.ndarray, mass: np.ndarray, n_coarse: int
) -> scipy.sparse.csr_matrix:
    """(V, C) float64 smoothed-aggregation prolongation, C about ``n_coarse`` (steps 1-2 of _coarse_eigenpairs)."""
    n = len(vertices)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    codes = np.unique(np.sort(edges, axis=1) @ np.array([n, 1]))
    i, j = codes // n, codes % n
    length = np.linalg.norm(vertices[i] - vertices[j], axis=1)
    # Coincident vertices would give a zero weight, which csgraph reads as "no edge".
    length = np.maximum(length, 1e-12 * max(float(length.max()), np.finfo(float).tiny))
    graph = scipy.sparse.csr_matrix((length, (i, j)), shape=(n, n))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)

    seeds = _grid_seeds(vertices, component, float(mass.sum()), n_coarse)
    _, _, sources = scipy.sparse.csgraph.dijkstra(
        graph, directed=False, indices=seeds, min_only=True, return_predecessors=True
    )
    aggregate_of_seed = np.full(n, -1, np.int64)
    aggregate_of_seed[seeds] = np.arange(len(seeds))
    aggregate = aggregate_of_seed[sources]  # every vertex reaches the seed of its own component
    p = scipy.sparse.csr_matrix((np.ones(n), (np.arange(n), aggregate)), shape=(n, len(seeds)))

    # Damped Jacobi on the uniform graph Laplacian, omega = 2/3: p <- (I/3 + 2/3 D^-1 A) p. The uniform weights
    # keep the smoother positive where cotan weights go negative (obtuse triangles).
    adjacency = scipy.sparse.csr_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    smoother = scipy.sparse.identity(n, format="csr") / 3.0 + scipy.sparse.diags(2.0 / (3.0 * degree)) @ adjacency
    for _ in range(_SMOOTHING_STEPS):
        p = (smoother @ p).tocsr()
    return p


def _grid_seeds(vertices: np.ndarray, component: np.ndarray, area: float, n_target: int) -> np.ndarray:
    """(C,) int64 sorted seed vertices, C about ``n_target``: per occupied voxel and connected component, the
    vertex nearest the mean of that voxel's vertices. The voxel size starts at the one that tiles ``area``
    into ``n_target`` squares and is corrected twice by the seed count it gives."""
    origin = vertices.min(axis=0)
    size = np.sqrt(area / n_target)
    for _ in range(3):
        cells = np.floor((vertices - origin) / size).astype(np.int64)
        keys = np.column_stack([component, cells])
        _, cell_of, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        cell_of = cell_of.ravel()
        size *= np.sqrt(len(counts) / n_target)
    means = np.stack([np.bincount(cell_of, vertices[:, d]) for d in range(3)], axis=1) / counts[:, None]
    distance = np.linalg.norm(vertices - means[cell_of], axis=1)
    order = np.lexsort((distance, cell_of))
    first = np.r_[True, cell_of[order][1:] != cell_of[order][:-1]]
    return np.sort(order[first])


def _rayleigh_ritz(
    laplacian: scipy.sparse.spmatrix, mass: np.ndarray, basis: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best eigen-approximations of (L, diag(mass)) in span(basis (V, B)): (k,) values and (V, k)
    M-orthonormal vectors. Directions the basis spans only to round-off are dropped before the dense solve."""
    gram = basis.T @ (mass[:, None] * basis)
    gram = 0.5 * (gram + gram.T)
    g_vals, g_vecs = np.linalg.eigh(gram)
    keep = g_vals > 1e-10 * g_vals.max()
    whiten = g_vecs[:, keep] / np.sqrt(g_vals[keep])
    q = basis @ whiten  # (V, B') M-orthonormal
    small = q.T @ (laplacian @ q)
    evals, vecs = np.linalg.eigh(0.5 * (small + small.T))
    return evals[:k], q @ vecs[:, :k]


# ---------------------------------------------------------------------------------------------------- helpers
def _validated(
    vertices: np.ndarray, triangles: np.ndarray, k_eig: int, eig_max_vertices: int | None
) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices)
    triangles = np.asarray(triangles)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise FacerigError(f"operators need (V, 3) vertices, got shape {vertices.shape}")
    if not np.issubdtype(vertices.dtype, np.floating) or not np.isfinite(vertices).all():
        raise FacerigError("operators need finite floating-point vertex positions (found NaN, inf or non-floats)")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.issubdtype(triangles.dtype, np.integer):
        raise FacerigError(f"operators need (F, 3) integer triangles, got {triangles.dtype} {triangles.shape}")
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise FacerigError(f"triangle vertex index out of range [0, {len(vertices)})")
    if int(k_eig) < 1:
        raise FacerigError(f"k_eig must be at least 1, got {k_eig}")
    if eig_max_vertices is not None and int(eig_max_vertices) < 1:
        raise FacerigError(f"eig_max_vertices must be positive or None, got {eig_max_vertices}")
    return vertices, triangles


def _clean_triangles(triangles: np.ndarray) -> np.ndarray:
    """(F', 3) int64: drop triangles that repeat a vertex and duplicates (either orientation), keeping the
    first occurrence's orientation."""
    triangles = triangles.astype(np.int64)
    distinct = (
        (triangles[:, 0] != triangles[:, 1])
        & (triangles[:, 1] != triangles[:, 2])
        & (triangles[:, 2] != triangles[:, 0])
    )
    triangles = triangles[distinct]
    _, first = np.unique(np.sort(triangles, axis=1), axis=0, return_index=True)
    return triangles[np.sort(first)]


def _csr32(matrix: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float32)
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.setflags(write=False)
    return matrix


def _check_finite(operators: Operators) -> None:
    for name in ("mass", "evals", "evecs", "grad_x", "grad_y", "normals"):
        if not np.isfinite(getattr(operators, name)).all():
            raise FacerigError(f"operator computation produced NaN or infinite values in {name}")
    if not np.isfinite(operators.laplacian.data).all():
        raise FacerigError("operator computation produced NaN or infinite values in the Laplacian")


# ---------------------------------------------------------------------------------------------------- cache I/O
_ARRAY_FIELDS = ("mass", "evals", "evecs", "grad_rows", "grad_cols", "grad_x", "grad_y", "normals")


def _save(path: Path, key: str, operators: Operators) -> None:
    lap = operators.laplacian
    arrays = {name: getattr(operators, name) for name in _ARRAY_FIELDS}
    arrays.update(
        key=np.array(key),
        laplacian_data=lap.data,
        laplacian_indices=lap.indices,
        laplacian_indptr=lap.indptr,
        laplacian_shape=np.array(lap.shape, np.int64),
    )
    with atomic_path(path) as tmp:
        # A file handle, because np.savez appends ".npz" to a path that lacks it.
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _load(path: Path, key: str) -> Operators:
    with np.load(path, allow_pickle=False) as data:
        if str(data["key"]) != key:
            raise ValueError("the stored key does not match the file name")
        arrays = {name: _readonly(np.array(data[name])) for name in _ARRAY_FIELDS}
        shape = tuple(int(s) for s in data["laplacian_shape"])
        lap = scipy.sparse.csr_matrix(
            (data["laplacian_data"], data["laplacian_indices"], data["laplacian_indptr"]), shape=shape
        )
    n, k = arrays["evecs"].shape
    if arrays["mass"].shape != (n,) or arrays["evals"].shape != (k,) or arrays["normals"].shape != (n, 3):
        raise ValueError("array shapes are inconsistent")
    nnz = arrays["grad_rows"].shape
    if not (arrays["grad_cols"].shape == arrays["grad_x"].shape == arrays["grad_y"].shape == nnz):
        raise ValueError("gradient arrays have different lengths")
    if lap.shape != (n, n) or lap.dtype != np.float32:
        raise ValueError("the Laplacian's shape or dtype is wrong")
    operators = Operators(laplacian=_csr32(lap), **arrays)
    _check_finite(operators)
    return operators
