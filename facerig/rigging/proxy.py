"""Dense heads at bounded cost: rig a coarse proxy of the head and carry its shapes to every vertex.

The network was trained on heads of 1.5k–6k vertices and its cost (operators, diffusion, the (rows, V, 3)
predictions) grows with the vertex count: a 107k-vertex head took 39 s and 2.1 GB rigged directly, a 2M one did
not fit in 6 GB. A face's motion is smooth at the scale of a few thousand vertices, so above
:data:`PROXY_MIN_VERTICES` the rig runs on a proxy of about :data:`PROXY_VERTICES` vertices, every connected
piece kept: quadric decimation (:func:`facerig.geometry.remesh.remesh`, the training heads' own re-mesher), after a
linear-time vertex clustering (:func:`facerig.geometry.cluster.cluster_mesh`) for heads far denser than the proxy.
Each dense vertex then takes the shape offsets of its (near-)closest point on the proxy surface of its own piece
(barycentric interpolation). Eyeballs are turned rigidly at the dense resolution, so gaze stays an exact rotation.
On the 27k-vertex ICT head the proxy rig's MAE against ICT's own expressions equals the direct rig's (0.150 mm
against 0.152 over 45 poses, ``bench/dense_heads.py``); the eyelids are where a proxy loses (its coarse lid margin
under-closes once carried back), so the blink contact step measures closure on the dense head's own lids
(:func:`facerig.anatomy.contact.eye_patches`).

Memory: the rig's output alone is S × V × 3 float32 (1.1 KB per vertex for 95 shapes: 480 MB at 420k vertices).
It is allocated once and filled shape by shape in the input's frame; the estimate :func:`rig_memory_bytes` is
checked against a budget (:data:`DEFAULT_MEMORY_BUDGET`) before anything per-vertex is built, and a head that would
exceed it is refused with a :class:`RigMemoryError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from facerig.anatomy.eyes import Eyeball, gaze_rotation, sphere_like_parts, turn_eyeballs
from facerig.errors import FacerigError
from facerig.geometry import SurfaceIndex, fit_sphere
from facerig.geometry.sphere import CONCENTRIC
from facerig.geometry.cluster import cluster_mesh
from facerig.geometry.remesh import RemeshOptions, remesh
from facerig.mesh import Mesh

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "PROXY_MIN_VERTICES",
    "PROXY_VERTICES",
    "Proxy",
    "RigMemoryError",
    "build_proxy",
    "check_memory_budget",
    "dense_eyeballs",
    "carry_shapes",
    "eyeball_rows",
    "gaze_rows",
    "rig_memory_bytes",
]

# A welded surface above this many vertices is rigged through a proxy. Measured on the 27k ICT head
# (bench/dense_heads.py, run 9): the proxy rig's MAE against ICT's own expressions matches the direct rig's (0.150 vs
# 0.152 mm) in a quarter of the time (6.6 s against 23 s on one loaded thread), and since its blinks are measured on
# the dense lids (facerig.anatomy.contact.eye_patches) they close as far (0.86 / 0.87 against 0.86 / 0.92). Heads
# of up to 15k vertices rig directly in under ~5 s; above, the direct rig's network time passes the 10 s target.
PROXY_MIN_VERTICES = 15_000
PROXY_VERTICES = 6_000  # the top of the 1.5k–6k range the bundled model was trained on: the eyelids need it
# Quadric decimation gives the proxy the kind of triangles the model was trained on, but costs tens of passes over
# the mesh; above this multiple of the proxy size, vertex clustering (linear, one pass) thins the head first.
CLUSTER_FACTOR = 4
DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes

_QUERY_CHUNK = 32_768  # points per closest-point query: bounds its working arrays to ~100 MB
# Nearest surface samples per point: the closest of their triangles is taken. SurfaceIndex.query's certified search
# took 84 µs a point on a 105k head (far points widen it again and again); 8 candidates give a near-closest point.
_QUERY_K_MAX = 8
# Resident memory of a rig besides its output (measured, bench/dense_heads.py): torch and the model, and per input
# vertex the loaded mesh, its triangulation, weld, pieces and the carry map.
_BASE_BYTES = 600 * 1024**2
_BYTES_PER_VERTEX = 600


class RigMemoryError(FacerigError):
    """A head whose rig would not fit in the memory budget."""


def rig_memory_bytes(n_vertices: int, n_shapes: int) -> int:
    """Estimated peak resident bytes of rigging a head of ``n_vertices`` (file vertices) into ``n_shapes`` shapes
    through the proxy: the float32 output plus the per-vertex working set and a fixed base."""
    return n_shapes * n_vertices * 3 * 4 + n_vertices * _BYTES_PER_VERTEX + _BASE_BYTES


def check_memory_budget(mesh: Mesh, n_shapes: int, budget: int | None = None) -> int:
    """Refuse (:class:`RigMemoryError`, naming the file) a head whose rig is estimated above ``budget`` bytes
    (None: :data:`DEFAULT_MEMORY_BUDGET`); returns the estimate."""
    budget = DEFAULT_MEMORY_BUDGET if budget is None else int(budget)
    estimate = rig_memory_bytes(mesh.n_vertices, n_shapes)
    if estimate > budget:
        raise RigMemoryError(
            f"rigging {mesh.n_vertices:,} vertices into {n_shapes} shapes needs about {estimate / 1024**2:,.0f} MB "
            f"({n_shapes * mesh.n_vertices * 12 / 1024**2:,.0f} MB of it the shapes themselves), over the memory "
            f"budget of {budget / 1024**2:,.0f} MB; raise the budget or rig a lighter head",
            mesh.source or mesh.name,
        )
    return estimate


@dataclass(frozen=True, eq=False)
class Proxy:
    """A coarse stand-in for a dense welded surface and the map that carries per-vertex values back to it.

    Attributes:
        surface: the proxy triangle mesh, positions in the dense surface's frame.
        dense_vertices: (P,) int64 the dense surface vertex each proxy vertex sits on.
        carry: (W, P) float32 CSR: each dense surface vertex as barycentric weights of the proxy triangle
            closest to it among those of its own piece.
    """

    surface: Mesh
    dense_vertices: np.ndarray
    carry: scipy.sparse.csr_matrix

    def carry_to(self, to_surface: np.ndarray) -> scipy.sparse.csr_matrix:
        """(V, P) carry map to a mesh's own vertices, given their surface vertex (``WeldedSurface.to_surface``)."""
        return self.carry[to_surface]


def build_proxy(surface: Mesh, n_vertices: int = PROXY_VERTICES) -> Proxy:
    """A proxy of about ``n_vertices`` for a welded surface (every piece kept) and its carry map."""
    pieces = surface.component_labels
    kept, triangles = np.arange(surface.n_vertices), surface.triangles
    if surface.n_vertices > CLUSTER_FACTOR * n_vertices:
        clustered = cluster_mesh(surface.vertices, surface.triangles, pieces, CLUSTER_FACTOR * n_vertices)
        kept, triangles = clustered.vertices, clustered.triangles
    if len(kept) > n_vertices:
        remeshed = remesh(surface.vertices[kept], triangles, RemeshOptions(budget=n_vertices, relax=0.0),
                          np.random.default_rng(0))
        # Without relaxation every proxy vertex is a vertex of its source: the one its barycentric weight is on.
        source = remeshed.transfer.source_vertices[np.arange(len(remeshed.vertices)),
                                                   remeshed.transfer.barycentrics.argmax(axis=1)]
        kept, triangles = kept[source], remeshed.triangles
    dense_vertices = kept
    proxy = Mesh.from_triangles(surface.vertices[dense_vertices], triangles, up_axis=surface.up_axis,
                                meters_per_unit=surface.meters_per_unit, name=surface.name, source=surface.source)
    proxy_pieces = pieces[dense_vertices]
    triangle, barycentric = _closest_on_own_piece(proxy, proxy_pieces[proxy.triangles[:, 0]], surface.vertices, pieces)
    rows = np.repeat(np.arange(surface.n_vertices), 3)
    carry = scipy.sparse.csr_matrix(
        (barycentric.astype(np.float32).ravel(), (rows, proxy.triangles[triangle].ravel())),
        shape=(surface.n_vertices, proxy.n_vertices),
    )
    return Proxy(surface=proxy, dense_vertices=dense_vertices, carry=carry)


def _closest_on_own_piece(
    proxy: Mesh, triangle_pieces: np.ndarray, points: np.ndarray, pieces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) proxy triangle and (N, 3) barycentrics of each point's closest proxy point on its own piece, in chunks
    of :data:`_QUERY_CHUNK` points with a capped search, so memory stays flat whatever the head's size."""
    index = SurfaceIndex(proxy.vertices, proxy.triangles, triangle_pieces)
    # A piece with no proxy triangle (decimation keeps every piece, so only a degenerate sliver) takes the
    # piece of its nearest proxy surface.
    groups = pieces.copy()
    orphan = ~np.isin(pieces, triangle_pieces)
    if orphan.any():
        nearest = SurfaceIndex(proxy.vertices, proxy.triangles).query(points[orphan], k_max=_QUERY_K_MAX)[0]
        groups[orphan] = triangle_pieces[nearest]
    triangle = np.empty(len(points), np.int64)
    barycentric = np.empty((len(points), 3))
    for start in range(0, len(points), _QUERY_CHUNK):
        chunk = slice(start, start + _QUERY_CHUNK)
        triangle[chunk], barycentric[chunk], _ = index.query(points[chunk], groups[chunk], k_start=_QUERY_K_MAX,
                                                             k_max=_QUERY_K_MAX)
    return triangle, barycentric


_EYE_PIECE_REACH = 1.5  # eyeball radii: a piece wholly within this of a dense eye's centre may be part of it


def dense_eyeballs(
    proxy: Proxy, dense_pieces: np.ndarray, dense_canonical: np.ndarray, eyeballs: tuple[Eyeball, ...]
) -> tuple[Eyeball, ...]:
    """The proxy's eyeballs on the dense surface: the dense vertices of their pieces, and the sphere fitted to those
    (``dense_canonical``: (W, 3) canonical positions), so the turn is about the dense eyeball's own centre.

    A dense eye made of several pieces (a sclera half and an iris piece) can leave one of them without a proxy vertex
    landing on it, which then would not turn with the rest: every dense sphere-like part concentric with the eye
    joins it (:func:`facerig.anatomy.eyes.sphere_like_parts`, run only on the pieces that lie wholly near the eye, so
    the cost does not grow with the rest of a dense head)."""
    proxy_pieces = dense_pieces[proxy.dense_vertices]
    piece_sizes = np.bincount(dense_pieces)
    dense = []
    for eye in eyeballs:
        vertices = np.flatnonzero(np.isin(dense_pieces, np.unique(proxy_pieces[eye.vertices])))
        centre, radius = fit_sphere(dense_canonical[vertices].astype(np.float64))
        near = np.linalg.norm(dense_canonical - centre, axis=1) < _EYE_PIECE_REACH * radius
        whole_near = np.bincount(dense_pieces[near], minlength=len(piece_sizes)) == piece_sizes
        local = np.flatnonzero(whole_near[dense_pieces])
        joined = [local[part.vertices] for part in sphere_like_parts(dense_canonical[local], dense_pieces[local])
                  if np.linalg.norm(part.centre - centre) < CONCENTRIC * min(part.radius, radius)]
        if joined:
            vertices = np.union1d(vertices, np.concatenate(joined))
            centre, radius = fit_sphere(dense_canonical[vertices].astype(np.float64))
        dense.append(Eyeball(vertices, centre, radius))
    return tuple(dense)


def carry_shapes(shapes: np.ndarray, carry: scipy.sparse.csr_matrix, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (S, V, 3) float32 with proxy shapes (S, P, 3) carried to the dense vertices by ``carry`` (V, P)
    (:meth:`Proxy.carry_to`), one sparse product per shape, each landing in its own contiguous (V, 3) slab of
    ``out``, so that no second dense stack is ever allocated. (Products of several shapes at once, (P, 3c)
    blocks, were 3.5x slower at 420k vertices: their (V, c, 3) results must be transposed into ``out``.)"""
    shapes = np.asarray(shapes, np.float32)
    for index, shape in enumerate(shapes):
        out[index] = carry @ shape
    return out


def gaze_rows(activations: np.ndarray, action_names: tuple[str, ...], degrees: float) -> np.ndarray:
    """(R,) bool: the activation rows that turn the eyes (their gaze rotation is not the identity). Every other
    row, and every shape assembled from such rows alone, leaves the eyeballs exactly still."""
    names = list(action_names)
    return np.array([not np.array_equal(gaze_rotation(activation, names, degrees), np.eye(3))
                     for activation in activations], bool)


def eyeball_rows(
    canonical_vertices: np.ndarray,
    eyeballs: tuple[Eyeball, ...],
    activations: np.ndarray,
    action_names: tuple[str, ...],
    degrees: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The eyeballs' exact rigid gaze turn on their own vertices: (E,) the eyeball vertices (all eyeballs, in
    order) and (R, E, 3) their canonical offsets per activation row (see :func:`facerig.anatomy.eyes.turn_eyeballs`).

    ``canonical_vertices`` is indexable by the eyeballs' vertex indices; only those rows are read. Only the rows
    that turn the eyes (:func:`gaze_rows`, a few of ~100) are computed and written; the others are exact zeros,
    as the turn gives them, left untouched in a zero-filled array (dense eyeballs hold 50k vertices at 420k).
    """
    if not eyeballs:
        return np.zeros(0, np.int64), np.zeros((len(activations), 0, 3), np.float32)
    vertices = np.concatenate([eye.vertices for eye in eyeballs])
    local_eyes, start = [], 0
    for eye in eyeballs:
        local_eyes.append(Eyeball(np.arange(start, start + len(eye.vertices)), eye.centre, eye.radius))
        start += len(eye.vertices)
    rows = np.zeros((len(activations), len(vertices), 3), np.float32)
    turning = np.flatnonzero(gaze_rows(activations, action_names, degrees))
    rows[turning] = turn_eyeballs(rows[turning], canonical_vertices[vertices], tuple(local_eyes),
                                  activations[turning], action_names, degrees=degrees)
    return vertices, rows
