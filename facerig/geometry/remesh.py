"""Re-meshing: decimate a head to a vertex budget (fresh topologies for training data, the rig's proxy of a dense
head) and carry values across.

The network must never learn vertex indices, so every training head gets a fresh topology. This module
does that with plain numpy/scipy in three steps:

1. :func:`decimate`: quadric-error (QEM) *half-edge* collapses, run in vectorised parallel rounds. Each
   round picks collapses u -> w that do not touch each other's one-ring of u (so applying them together
   equals applying them one by one), checks the link condition (the result stays a manifold), rejects collapses
   that flip or sliver a face, and never lets a connected piece drop below its own vertex target, so
   every component (eyeball, tooth, lash strip) survives. Edge collapse follows the surface, so thin
   gaps (lips, eyelids) are never welded shut, unlike vertex clustering.
2. :func:`remesh`: a random budget per connected piece, then tangential relaxation so the new vertices
   leave the source vertex positions, projected back onto the source surface of their own piece, and an
   optional triangle-pair merge into a quad-dominant mesh.
3. :class:`SurfaceTransfer`: each new vertex is a closest point on a *source* triangle with barycentric
   weights, so any per-vertex source quantity (positions, pose deltas) carries over as a sparse
   (N, V_source) matrix product.

Closest points are exact (:class:`facerig.geometry.SurfaceIndex`, re-exported here with the other geometry
this module's callers use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from facerig.geometry import (
    SurfaceIndex,
    closest_point_on_triangles,
    closest_points,
    connected_components,
    cross_rows,
    dot_rows,
    fan_triangles,
    face_normals,
    norm_rows,
    triangle_quality,
    vertex_normals,
)

__all__ = [
    "RemeshOptions",
    "Remeshed",
    "SurfaceIndex",
    "SurfaceTransfer",
    "closest_points",
    "closest_point_on_triangles",
    "connected_pieces",
    "decimate",
    "fan_triangles",
    "quadrangulate",
    "remesh",
    "triangle_quality",
]


# ---------------------------------------------------------------------------------------------- geometry
# Short local names for the row-wise helpers of the hot loops below.
_dot, _cross, _norm = dot_rows, cross_rows, norm_rows
# The one definition of a connected piece, under the name this module's interface has always used.
connected_pieces = connected_components


def _face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F, 3) unnormalised face normals (length = twice the area)."""
    return face_normals(vertices, triangles)


# ---------------------------------------------------------------------------------------------- decimation
def _plane_quadrics(vertices: np.ndarray, triangles: np.ndarray, boundary_weight: float) -> np.ndarray:
    """(V, 4, 4) area-weighted plane quadrics, plus boundary-preserving planes on open edges."""
    v = vertices
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    n = _cross(b - a, c - a)
    area2 = _norm(n)
    n = n / np.maximum(area2, 1e-300)[:, None]
    planes = np.concatenate([n, -_dot(n, a)[:, None]], axis=1)  # (F, 4)
    k = 0.5 * area2[:, None, None] * planes[:, :, None] * planes[:, None, :]
    q = np.zeros((len(v), 4, 4))
    for corner in range(3):
        np.add.at(q, triangles[:, corner], k)
    # Open edges: a plane through the edge, perpendicular to its face, so boundary vertices stay on it.
    e0 = triangles[:, [0, 1, 2]].ravel()
    e1 = triangles[:, [1, 2, 0]].ravel()
    face = np.repeat(np.arange(len(triangles)), 3).reshape(-1, 3).T.ravel()
    key = np.minimum(e0, e1) * len(v) + np.maximum(e0, e1)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    open_ = counts[inverse] == 1
    if open_.any():
        a, b, f = e0[open_], e1[open_], face[open_]
        edge = v[b] - v[a]
        m = _cross(edge, n[f])
        m /= np.maximum(_norm(m), 1e-300)[:, None]
        planes = np.concatenate([m, -_dot(m, v[a])[:, None]], axis=1)
        w = boundary_weight * _dot(edge, edge)
        kb = w[:, None, None] * planes[:, :, None] * planes[:, None, :]
        np.add.at(q, a, kb)
        np.add.at(q, b, kb)
    return q


def _csr_expand(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the positions indptr[rows[i]] … indptr[rows[i]+1]-1: (owner index, position)."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    start = np.repeat(indptr[rows] - np.cumsum(counts) + counts, counts)
    return owner, start + np.arange(len(owner))


def _collapse_keeps_shape(
    v: np.ndarray,
    tris: np.ndarray,
    corner_order: np.ndarray,
    face_indptr: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    cos_max: float,
    min_quality: float,
) -> np.ndarray:
    """(C,) bool: moving u onto w turns no surviving face of u by more than acos(cos_max) nor slivers it.

    ``corner_order``/``face_indptr`` list the faces around each vertex (argsort of ``tris.ravel()``).
    """
    owner, pos = _csr_expand(face_indptr, u)
    face = corner_order[pos] // 3
    old = tris[face]
    has_w = (old == w[owner, None]).any(axis=1)  # these faces vanish with the collapse
    new = np.where(old == u[owner, None], w[owner, None], old)
    n_old = _face_normals(v, old)
    n_new = _face_normals(v, new)
    bad = (_dot(n_old, n_new) <= cos_max * _norm(n_old) * _norm(n_new)) | (triangle_quality(v, new) < min_quality)
    return np.bincount(owner, weights=bad & ~has_w, minlength=len(u)) == 0


def decimate(
    vertices: np.ndarray,
    triangles: np.ndarray,
    pieces: np.ndarray,
    targets: np.ndarray,
    cost_weight: np.ndarray | None = None,
    *,
    max_normal_change_deg: float = 60.0,
    min_quality: float = 0.05,
    boundary_weight: float = 10.0,
    cheap_fraction: float = 0.3,
    max_rounds: int = 200,
) -> np.ndarray:
    """Collapse edges until each connected piece is down to its vertex target.

    Args:
        vertices: (V, 3) float positions; they are never moved (half-edge collapse keeps a source vertex).
        triangles: (F, 3) int manifold triangles.
        pieces: (V,) int connected-piece id of each vertex (:func:`connected_pieces`).
        targets: (n_pieces,) int vertex target of each piece.
        cost_weight: (V,) optional positive multiplier of the collapse cost of a vertex (>1 keeps it
            denser), for random density variation.
        max_normal_change_deg, min_quality: a collapse is refused if a surviving face turns by more than
            this or its quality (:func:`triangle_quality`) falls under ``min_quality``.
        cheap_fraction: per round only the cheapest fraction of valid collapses may run, so rounds stay
            close to the sequential greedy QEM order.

    Returns:
        (F', 3) int64 triangles over the original vertex indices (unreferenced vertices were removed).
    """
    v = np.asarray(vertices, np.float64)
    tris = np.asarray(triangles, np.int64).copy()
    n_v = len(v)
    pieces = np.asarray(pieces, np.int64)
    targets = np.asarray(targets, np.int64)
    weight = np.ones(n_v) if cost_weight is None else np.asarray(cost_weight, np.float64)
    quadric = _plane_quadrics(v, tris, boundary_weight)
    vh = np.concatenate([v, np.ones((n_v, 1))], axis=1)
    first_edge = v[tris[:, 0]] - v[tris[:, 1]]
    mean_edge2 = float(np.mean(_dot(first_edge, first_edge)))
    cos_max = np.cos(np.radians(max_normal_change_deg))
    alive = np.zeros(n_v, bool)
    alive[tris.ravel()] = True
    piece_count = np.bincount(pieces[alive], minlength=len(targets))

    for _ in range(max_rounds):
        if not (piece_count > targets).any():
            break
        # -- topology of the current mesh
        e0 = tris[:, [0, 1, 2]].ravel()
        e1 = tris[:, [1, 2, 0]].ravel()
        key = np.minimum(e0, e1) * n_v + np.maximum(e0, e1)
        ukey, face_count = np.unique(key, return_counts=True)
        ea, eb = ukey // n_v, ukey % n_v
        boundary_vertex = np.zeros(n_v, bool)
        boundary_vertex[ea[face_count == 1]] = True
        boundary_vertex[eb[face_count == 1]] = True
        adj = scipy.sparse.csr_matrix(
            (np.ones(2 * len(ukey)), (np.r_[ea, eb], np.r_[eb, ea])), shape=(n_v, n_v)
        )
        # Link condition: u and v may only share the vertices opposite their edge.
        common = (adj @ adj).multiply(adj).tocoo()
        upper = common.row < common.col
        shared = np.zeros(len(ukey))
        shared[np.searchsorted(ukey, common.row[upper] * n_v + common.col[upper])] = common.data[upper]
        link_ok = shared == face_count

        # -- candidate half-edge collapses u -> v (both directions of each edge)
        u = np.r_[ea, eb]
        w = np.r_[eb, ea]
        fc = np.r_[face_count, face_count]
        ok = np.r_[link_ok, link_ok]
        ok &= ~boundary_vertex[u] | (fc == 1)  # a boundary vertex only slides along its boundary
        ok &= piece_count[pieces[u]] > targets[pieces[u]]
        u, w = u[ok], w[ok]
        if not len(u):
            break
        q = quadric[u] + quadric[w]
        cost = np.einsum("ci,cij,cj->c", vh[w], q, vh[w])
        # A small length term orders collapses on flat areas (QEM = 0 there) so the result stays even.
        cost = (np.maximum(cost, 0.0) + 0.05 * mean_edge2 * _dot(v[u] - v[w], v[u] - v[w])) * weight[u]
        keep = cost <= np.quantile(cost, cheap_fraction)
        u, w, cost = u[keep], w[keep], cost[keep]

        # -- pick independent collapses in Luby-style passes. Collapse u -> w rewrites the faces around u
        # and the adjacency of N[u] (u's closed one-ring), and its own validity reads only the faces
        # around u and the adjacency of u and w. So two collapses commute when neither's {u, w} lies in
        # the other's N[u]: applied together they equal applied in turn. A pick is checked geometrically
        # before it locks anything, so a refused one frees its neighbourhood.
        corner_order = np.argsort(tris.ravel(), kind="stable")
        face_indptr = np.r_[0, np.cumsum(np.bincount(tris.ravel(), minlength=n_v))]
        rank = np.empty(len(u), np.int64)
        rank[np.argsort(cost, kind="stable")] = np.arange(len(u))
        ring_owner, ring_pos = _csr_expand(adj.indptr, u)
        ring_c = np.r_[ring_owner, np.arange(len(u))]  # (candidate, vertex of its N[u])
        ring_v = np.r_[adj.indices[ring_pos], u]
        ends_c = np.r_[np.arange(len(u)), np.arange(len(u))]  # (candidate, u or w)
        ends_v = np.r_[u, w]
        active = np.ones(len(u), bool)
        locked_ring = np.zeros(n_v, bool)
        locked_ends = np.zeros(n_v, bool)
        chosen = np.zeros(len(u), bool)
        allowance = piece_count - targets
        big = np.iinfo(np.int64).max
        for _pass in range(8):
            if not active.any():
                break
            lr, le = active[ring_c], active[ends_c]
            best_ring = np.full(n_v, big)  # best rank whose N[u] holds the vertex
            np.minimum.at(best_ring, ring_v[lr], rank[ring_c[lr]])
            best_ends = np.full(n_v, big)  # best rank whose {u, w} holds the vertex
            np.minimum.at(best_ends, ends_v[le], rank[ends_c[le]])
            beaten = np.bincount(ends_c[le], weights=best_ring[ends_v[le]] < rank[ends_c[le]], minlength=len(u))
            beaten += np.bincount(ring_c[lr], weights=best_ends[ring_v[lr]] < rank[ring_c[lr]], minlength=len(u))
            pick = np.flatnonzero(active & (beaten == 0))
            active[pick] = False
            keeps = _collapse_keeps_shape(v, tris, corner_order, face_indptr, u[pick], w[pick], cos_max, min_quality)
            pick = pick[keeps]
            # Keep each piece at or above its target: the cheapest picks within a piece go first.
            pick = pick[np.lexsort((rank[pick], pieces[u[pick]]))]
            pp = pieces[u[pick]]
            start = np.r_[0, np.flatnonzero(np.diff(pp)) + 1] if len(pp) else np.zeros(0, np.int64)
            within = np.arange(len(pick)) - np.repeat(start, np.diff(np.r_[start, len(pick)]))
            pick = pick[within < allowance[pp]]
            np.subtract.at(allowance, pieces[u[pick]], 1)
            chosen[pick] = True
            is_pick = np.zeros(len(u), bool)
            is_pick[pick] = True
            locked_ring[ring_v[is_pick[ring_c]]] = True
            locked_ends[ends_v[is_pick[ends_c]]] = True
            blocked = np.bincount(ends_c, weights=locked_ring[ends_v], minlength=len(u))
            blocked += np.bincount(ring_c, weights=locked_ends[ring_v], minlength=len(u))
            active &= (blocked == 0) & (allowance[pieces[u]] > 0)
        if not chosen.any():
            break

        # -- apply: every chosen u becomes its w; faces holding both vanish
        cu, cw = u[chosen], w[chosen]
        remap = np.arange(n_v)
        remap[cu] = cw
        tris = remap[tris]
        tris = tris[(tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 2] != tris[:, 0])]
        quadric[cw] += quadric[cu]
        alive[cu] = False
        np.subtract.at(piece_count, pieces[cu], 1)
    return tris


# ---------------------------------------------------------------------------------------------- quads
def quadrangulate(
    vertices: np.ndarray, triangles: np.ndarray, *, max_dihedral_deg: float = 20.0, min_score: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Merge pairs of adjacent triangles into quads where the quad is flat, convex and near-square.

    Args:
        vertices: (V, 3); triangles: (F, 3) consistently oriented.

    Returns:
        face_vertex_counts (P,) int32 of 3s and 4s and face_vertex_indices (N,) int64. A quad (p, s, q, r)
        is written so that its fan triangulation from corner 0 gives back exactly the two source triangles
        (p, s, q) and (p, q, r), so :attr:`facerig.mesh.Mesh.triangles` matches ``triangles`` as a set.
    """
    tris = np.asarray(triangles, np.int64)
    n_f, n_v = len(tris), len(vertices)
    e0 = tris[:, [0, 1, 2]].ravel()
    e1 = tris[:, [1, 2, 0]].ravel()
    opp = tris[:, [2, 0, 1]].ravel()
    face = np.repeat(np.arange(n_f), 3)
    key = np.minimum(e0, e1) * n_v + np.maximum(e0, e1)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    pair = np.flatnonzero(ks[1:] == ks[:-1])
    h1, h2 = order[pair], order[pair + 1]  # the two half-edges of each interior edge
    f1, f2 = face[h1], face[h2]
    p, q, r, s = e0[h1], e1[h1], opp[h1], opp[h2]
    if not len(p):
        return np.full(n_f, 3, np.int32), tris.ravel()
    v = np.asarray(vertices, np.float64)
    n1 = _cross(v[q] - v[p], v[r] - v[p])
    n2 = _cross(v[p] - v[q], v[s] - v[q])
    flat = _dot(n1, n2) > np.cos(np.radians(max_dihedral_deg)) * _norm(n1) * _norm(n2)
    # Corner angles of quad (p, s, q, r): a convex near-square has all four near 90°.
    quad = np.stack([p, s, q, r], axis=1)
    xyz = v[quad]
    prev = np.roll(xyz, 1, axis=1) - xyz
    nxt = np.roll(xyz, -1, axis=1) - xyz
    cos = (prev * nxt).sum(2) / np.maximum(np.linalg.norm(prev, axis=2) * np.linalg.norm(nxt, axis=2), 1e-300)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    score = 1.0 - np.abs(angle - 90.0).max(axis=1) / 90.0
    ok = flat & (angle.max(axis=1) < 170.0) & (score >= min_score)
    cand = np.flatnonzero(ok)
    # Greedy best-first matching in parallel passes: an edge wins if it beats every edge on its two faces.
    taken = np.zeros(n_f, bool)
    chosen = []
    rank = np.empty(len(cand), np.int64)
    rank[np.argsort(-score[cand], kind="stable")] = np.arange(len(cand))
    active = np.ones(len(cand), bool)
    big = np.iinfo(np.int64).max
    for _pass in range(8):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        best = np.full(n_f, big)
        np.minimum.at(best, f1[cand[idx]], rank[idx])
        np.minimum.at(best, f2[cand[idx]], rank[idx])
        win = idx[(best[f1[cand[idx]]] == rank[idx]) & (best[f2[cand[idx]]] == rank[idx])]
        chosen.append(cand[win])
        taken[f1[cand[win]]] = True
        taken[f2[cand[win]]] = True
        active &= ~(taken[f1[cand]] | taken[f2[cand]])
    merged = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    singles = tris[~taken]
    quads = quad[merged]
    counts = np.r_[np.full(len(singles), 3, np.int32), np.full(len(quads), 4, np.int32)]
    return counts, np.r_[singles.ravel(), quads.ravel()].astype(np.int64)


# ---------------------------------------------------------------------------------------------- remesh
@dataclass(frozen=True)
class RemeshOptions:
    """How one head is re-meshed; :func:`remesh` draws the random parts from its ``rng``."""

    budget: int = 3000  # vertex budget for the whole mesh
    min_piece_vertices: int = 10  # small components keep at least this many (or all they have)
    quads: bool = False  # merge triangle pairs into a quad-dominant mesh
    relax: float = 0.5  # tangential relaxation step (0 keeps the decimated vertices on source vertices)
    relax_iterations: int = 2
    density_contrast: float = 0.0  # strength of a random smooth density field (0 = even density)


@dataclass(frozen=True)
class SurfaceTransfer:
    """New vertices as barycentric points of source triangles.

    Attributes:
        source_vertices: (N, 3) int64 source vertex indices of the triangle each new vertex lies on.
        barycentrics: (N, 3) float64 weights (rows sum to 1).
        n_source: number of source vertices.
    """

    source_vertices: np.ndarray
    barycentrics: np.ndarray
    n_source: int

    @property
    def matrix(self) -> scipy.sparse.csr_matrix:
        """(N, n_source) sparse interpolation matrix."""
        n = len(self.source_vertices)
        rows = np.repeat(np.arange(n), 3)
        return scipy.sparse.csr_matrix(
            (self.barycentrics.ravel(), (rows, self.source_vertices.ravel())), shape=(n, self.n_source)
        )

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Carry per-source-vertex values over: (n_source, ...) -> (N, ...), or (P, n_source, 3) -> (P, N, 3)."""
        values = np.asarray(values)
        if values.ndim == 3 and values.shape[1] == self.n_source and values.shape[0] != self.n_source:
            p = values.shape[0]
            flat = np.moveaxis(values, 0, 1).reshape(self.n_source, -1)
            out = self.matrix @ flat
            return np.moveaxis(out.reshape(-1, p, values.shape[2]), 1, 0).astype(values.dtype)
        flat = values.reshape(self.n_source, -1)
        return (self.matrix @ flat).reshape((-1,) + values.shape[1:]).astype(values.dtype)


@dataclass(frozen=True)
class Remeshed:
    """A re-meshed surface and how it maps back to the source.

    Attributes:
        vertices: (N, 3) float64 positions, on the source surface.
        triangles: (F, 3) int64 triangles (the fan triangulation of the polygons).
        face_vertex_counts: (P,) int32 polygon sizes (3 or 4); face_vertex_indices: (M,) int64 corners.
        transfer: each new vertex as a barycentric point of a source triangle.
        pieces: (N,) int64 connected piece of each new vertex, numbered as ``source_pieces``.
        source_pieces: (V,) int64 connected piece of each source vertex (-1: in no source triangle).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    face_vertex_counts: np.ndarray
    face_vertex_indices: np.ndarray
    transfer: SurfaceTransfer
    pieces: np.ndarray
    source_pieces: np.ndarray


def _piece_targets(vertices: np.ndarray, triangles: np.ndarray, pieces: np.ndarray, options: RemeshOptions):
    n_pieces = int(pieces.max()) + 1
    area = 0.5 * _norm(_face_normals(vertices, triangles))
    piece_area = np.bincount(pieces[triangles[:, 0]], weights=area, minlength=n_pieces)
    have = np.bincount(pieces, minlength=n_pieces)
    floor = np.minimum(have, options.min_piece_vertices)
    # Pieces whose area share falls under their floor get the floor; the rest share what is left.
    free = np.ones(n_pieces, bool)
    for _ in range(n_pieces):
        left = options.budget - floor[~free].sum()
        share = left * piece_area / max(piece_area[free].sum(), 1e-300)
        newly = free & (share < floor)
        if not newly.any():
            break
        free &= ~newly
    # When every piece sits at its floor the shares are meaningless (0/0): zero them before the cast.
    target = np.where(free, np.round(np.where(free, share, 0.0)).astype(np.int64), floor)
    return np.clip(target, floor, have)


def _smooth_field(points: np.ndarray, rng: np.random.Generator, n_bumps: int = 6) -> np.ndarray:
    """(N,) smooth random field in about [-1, 1]: a sum of Gaussian bumps at random surface points."""
    scale = float(np.ptp(points, axis=0).max())
    centres = points[rng.integers(0, len(points), n_bumps)]
    widths = scale * rng.uniform(0.1, 0.3, n_bumps)
    signs = rng.choice([-1.0, 1.0], n_bumps)
    d2 = ((points[:, None, :] - centres[None]) ** 2).sum(2)
    field = (signs * np.exp(-d2 / (2 * widths**2))).sum(1)
    return np.clip(field, -1.0, 1.0)


def _relax(
    new_v: np.ndarray,
    tris: np.ndarray,
    fixed: np.ndarray,
    step: float,
    iterations: int,
    project,
) -> tuple[np.ndarray, np.ndarray]:
    """Tangential Laplacian relaxation, projected back onto the source; vertices of spoiled faces revert.

    Returns the relaxed (N, 3) positions and an (N,) bool mask of the vertices that moved.
    """
    n = len(new_v)
    rows = tris[:, [0, 1, 2, 1, 2, 0]].ravel()
    cols = tris[:, [1, 2, 0, 0, 1, 2]].ravel()
    adj = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    adj.data[:] = 1.0
    degree = np.asarray(adj.sum(1)).ravel()
    x = new_v.copy()
    for _ in range(iterations):
        lap = adj @ x / np.maximum(degree, 1)[:, None] - x
        normal = vertex_normals(x, tris)
        lap -= _dot(lap, normal)[:, None] * normal
        x = np.where(fixed[:, None], x, x + step * lap)
        x = project(x)
    moved = ~fixed
    # Revert vertices of faces that flipped or degraded; repeat since a revert can spoil a neighbour.
    n_ref = _face_normals(new_v, tris)
    q_ref = triangle_quality(new_v, tris)
    for _ in range(10):
        n_now = _face_normals(x, tris)
        spoiled = (_dot(n_ref, n_now) <= 0.5 * _norm(n_ref) * _norm(n_now)) | (
            triangle_quality(x, tris) < 0.5 * q_ref
        )
        if not spoiled.any():
            break
        back = np.unique(tris[spoiled].ravel())
        x[back] = new_v[back]
        moved[back] = False
    return x, moved


def remesh(
    vertices: np.ndarray,
    triangles: np.ndarray,
    options: RemeshOptions,
    rng: np.random.Generator,
) -> Remeshed:
    """Re-mesh a (possibly multi-component) surface to about ``options.budget`` vertices.

    Args:
        vertices: (V, 3) source positions; triangles: (F, 3) int manifold source triangles. Vertices not
            referenced by any triangle are ignored.
        options: budget and style; rng: the only source of randomness (same rng state, same result).

    Every connected piece of the source is kept (each gets an area share of the budget, at least
    ``min_piece_vertices``) and re-meshed on its own: no new edge ever joins two pieces and new vertices
    are projected only onto their own piece.
    """
    v = np.asarray(vertices, np.float64)
    tris = np.asarray(triangles, np.int64)
    pieces = connected_pieces(len(v), tris)
    used = np.zeros(len(v), bool)
    used[tris.ravel()] = True
    # Renumber pieces over used vertices only (unused vertices each formed a singleton piece).
    _, pieces = np.unique(np.where(used, pieces, -1), return_inverse=True)
    pieces = pieces - (0 if used.all() else 1)
    targets = _piece_targets(v, tris, np.where(used, pieces, 0), options)
    weight = None
    if options.density_contrast > 0:
        weight = np.exp(options.density_contrast * _smooth_field(v, rng))
    kept_tris = decimate(v, tris, np.where(used, pieces, 0), targets, weight)

    keep = np.unique(kept_tris.ravel())
    new_index = np.full(len(v), -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    new_tris = new_index[kept_tris]
    new_v = v[keep]
    new_pieces = pieces[keep]

    # Barycentrics of the unmoved vertices: a corner of any source triangle that holds them.
    corner_face = np.full(len(v), -1, np.int64)
    corner_slot = np.zeros(len(v), np.int64)
    corner_face[tris.ravel()] = np.repeat(np.arange(len(tris)), 3)
    corner_slot[tris.ravel()] = np.tile(np.arange(3), len(tris))
    src_tri = corner_face[keep]
    bary = np.zeros((len(keep), 3))
    bary[np.arange(len(keep)), corner_slot[keep]] = 1.0

    if options.relax > 0 and options.relax_iterations > 0:
        tri_pieces = pieces[tris[:, 0]]
        boundary = np.zeros(len(new_v), bool)
        e0 = new_tris[:, [0, 1, 2]].ravel()
        e1 = new_tris[:, [1, 2, 0]].ravel()
        key = np.minimum(e0, e1) * len(new_v) + np.maximum(e0, e1)
        ukey, counts = np.unique(key, return_counts=True)
        open_ = ukey[counts == 1]
        boundary[open_ // len(new_v)] = True
        boundary[open_ % len(new_v)] = True

        index = SurfaceIndex(v, tris, tri_pieces)

        def project(x: np.ndarray) -> np.ndarray:
            return index.points(*index.query(x, new_pieces)[:2])

        relaxed, moved = _relax(new_v, new_tris, boundary, options.relax, options.relax_iterations, project)
        if moved.any():
            t, b, _ = index.query(relaxed[moved], new_pieces[moved])
            src_tri[moved], bary[moved] = t, b
            new_v = new_v.copy()
            new_v[moved] = index.points(t, b)

    if options.quads:
        counts, corners = quadrangulate(new_v, new_tris)
    else:
        counts, corners = np.full(len(new_tris), 3, np.int32), new_tris.ravel().copy()
    out_tris = fan_triangles(counts, corners)
    transfer = SurfaceTransfer(tris[src_tri], bary, len(v))
    return Remeshed(new_v, out_tris, counts, corners, transfer, new_pieces, np.where(used, pieces, -1))
