"""The one weld policy: which vertices are one point of the surface the rig, the transfer and the canonical
frame see.

Exporters split vertices along UV and normal seams (a glTF head often arrives as hundreds of pieces, a
flat-shaded one as one piece per face); diffusion cannot cross such a seam and a sphere fit to one split panel
is meaningless, so every consumer works on the welded surface and maps results back to the file's vertices.

Policy:
- Vertices closer than ``tolerance`` × the bounding-box diagonal are one point (default 1e-6: float round-off
  of a written file, far below any modelled gap; an eyelid slit or lip line is 1e-3 or more). Proximity is
  decided by a k-d tree radius search, not by rounding to a grid, so two copies of a point never fall on
  opposite sides of a grid line.
- A weld never gives an edge more than two faces. Eyelashes, tear lines and occlusion shells are often
  modelled on the eyelid's own vertex positions (ICT-FaceKit's are): welding them would fuse three sheets
  along the lid. Where a weld would do that, the smaller pieces that meet there stay apart; a seam split (two
  sheets along an edge) always welds.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from facerig.geometry.components import connected_components, largest_area_component
from facerig.geometry.triangles import vertex_areas

__all__ = ["WELD_TOLERANCE", "coincident_points", "skin_mask", "weld_vertices", "welded_pieces"]

WELD_TOLERANCE = 1e-6  # of the bounding-box diagonal


def coincident_points(vertices: np.ndarray, tolerance: float = WELD_TOLERANCE) -> np.ndarray:
    """(V,) int64 id of the point each vertex sits at: vertices within ``tolerance`` × the bounding-box
    diagonal of each other (transitively) share an id. Ids are 0..P-1."""
    vertices = np.asarray(vertices, np.float64)
    if tolerance <= 0:
        _, ids = np.unique(vertices, axis=0, return_inverse=True)
        return ids.reshape(-1).astype(np.int64)
    diagonal = float(np.linalg.norm(np.ptp(vertices, axis=0))) or 1.0
    # An unbalanced tree (midpoint splits) builds 2-3x faster and finds the same pairs; their order is irrelevant.
    pairs = cKDTree(vertices, balanced_tree=False).query_pairs(tolerance * diagonal, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(len(vertices), dtype=np.int64)
    return connected_components(len(vertices), np.concatenate([pairs, pairs[:, :1]], axis=1))


def weld_vertices(
    vertices: np.ndarray, triangles: np.ndarray, pieces: np.ndarray, tolerance: float = WELD_TOLERANCE
) -> np.ndarray:
    """(V,) int64 welded vertex of each vertex (ids 0..W-1); the identity when nothing welds.

    Args:
        vertices: (V, 3) positions; triangles: (F, 3); pieces: (V,) connected piece of each vertex
            (:func:`facerig.geometry.connected_components`).
        tolerance: weld distance as a fraction of the bounding-box diagonal (0: bit-identical positions only).
    """
    position_ids = coincident_points(vertices, tolerance)
    if int(position_ids.max()) + 1 == len(vertices):
        return np.arange(len(vertices), dtype=np.int64)
    triangles = np.asarray(triangles, np.int64)
    # Only faces with a corner at a shared position can take part in a weld: on a dense scan or subdivided head
    # that is a small fraction of the mesh, so both steps below look at those faces alone.
    shared = np.bincount(position_ids)[position_ids] > 1
    sheets = _sheets(triangles, np.asarray(pieces, np.int64), position_ids, shared)
    to_surface = _weld(position_ids, sheets, _pieces_kept_apart(triangles, sheets, position_ids, shared))
    if int(to_surface.max()) + 1 == len(vertices):  # every shared position kept apart: keep the file's order
        return np.arange(len(vertices), dtype=np.int64)
    return to_surface


def _sheets(triangles: np.ndarray, pieces: np.ndarray, position_ids: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """(V,) the file's pieces joined across every seam a full weld leaves manifold (two faces on the edge).

    The crowding rule decides between *sheets*, not between the file's pieces: a flat-shaded export makes
    every face a piece, and single faces joined one by one would keep a random half of an eyelid apart.
    Across an edge that stays two-faced when welded nothing can crowd, so those joins are safe and recover
    the surfaces an artist modelled; the edges left over are exactly the crowded ones.

    ``shared``: (V,) bool, the vertices whose position another vertex shares. Sheets are numbered by their
    lowest vertex (as :func:`facerig.geometry.connected_components` numbers pieces).
    """
    # Only an edge with an end at a shared position joins two different vertices, and every face on such an edge
    # has that corner: the faces with none are left out (edges of the faces kept that have no shared end may be
    # miscounted, but their ends are single vertices, so they join nothing).
    triangles = triangles[shared[triangles].any(axis=1)]
    corners = position_ids[triangles]
    ends = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    keys = np.concatenate([corners[:, [0, 1]], corners[:, [1, 2]], corners[:, [2, 0]]])
    # orient each edge by position id, so the two copies of a seam edge list their ends in the same order
    flip = keys[:, 0] > keys[:, 1]
    keys[flip], ends[flip] = keys[flip][:, ::-1], ends[flip][:, ::-1]
    proper = keys[:, 0] != keys[:, 1]
    keys, ends = keys[proper], ends[proper]
    code = keys[:, 0] * (int(position_ids.max()) + 1) + keys[:, 1]
    order = np.argsort(code, kind="stable")
    code, ends = code[order], ends[order]
    _, first, counts = np.unique(code, return_index=True, return_counts=True)
    pairs = first[counts == 2]
    joins = np.concatenate([ends[pairs], ends[pairs + 1]], axis=1)  # (u1, v1, u2, v2): u1~u2, v1~v2
    # Every file piece stays whole, so the sheets are the pieces joined by these links.
    links = pieces[np.concatenate([joins[:, [0, 2]], joins[:, [1, 3]]])]
    n, n_pieces = len(position_ids), int(pieces.max()) + 1
    piece_sheet = connected_components(n_pieces, np.concatenate([links, links[:, :1]], axis=1))
    first_of_piece = np.full(n_pieces, n, np.int64)
    first_of_piece[pieces[::-1]] = np.arange(n)[::-1]
    first_of_sheet = np.full(int(piece_sheet.max()) + 1, n, np.int64)
    np.minimum.at(first_of_sheet, piece_sheet, first_of_piece)
    number = np.empty(len(first_of_sheet), np.int64)
    number[np.argsort(first_of_sheet, kind="stable")] = np.arange(len(first_of_sheet))
    return number[piece_sheet][pieces]


def _weld(position_ids: np.ndarray, pieces: np.ndarray, apart: np.ndarray) -> np.ndarray:
    """(V,) welded vertex of each vertex: same position, and either both welding or both of one kept-apart piece."""
    weld_group = np.where(np.isin(pieces, apart), pieces + 1, 0)
    _, to_surface = np.unique(position_ids * (int(pieces.max()) + 2) + weld_group, return_inverse=True)
    return to_surface.reshape(-1).astype(np.int64)


def _pieces_kept_apart(
    triangles: np.ndarray, pieces: np.ndarray, position_ids: np.ndarray, shared: np.ndarray
) -> np.ndarray:
    """Sheets (:func:`_sheets`) that must not weld with the others.

    Only the pieces at an edge that a full weld crowds (more than two faces) are in question. They join the
    weld one by one, largest first, and each that would crowd an edge stays apart: the skin, then a seam-split
    piece of it, joins; a lash strip on the lid's rim does not. An edge crowded inside one piece is the file's
    own and keeps no piece apart.
    """
    sizes = np.bincount(pieces)
    # A weld can only crowd an edge whose two ends both share their position with another vertex, and every
    # face on such an edge has two such corners: the rest of the mesh, and the vertices on none of these faces,
    # need not be looked at.
    triangles = triangles[shared[triangles].sum(axis=1) >= 2]
    if len(triangles) == 0:
        return np.zeros(0, np.int64)
    vertices, local = np.unique(triangles, return_inverse=True)
    triangles = local.reshape(triangles.shape)
    position_ids, pieces = position_ids[vertices], pieces[vertices]
    edge_pieces = np.tile(pieces[triangles[:, 0]], 3)

    def crowded_pieces(apart: np.ndarray) -> set[int]:
        welded = _weld(position_ids, pieces, apart)[triangles]
        edges = np.sort(np.concatenate([welded[:, [0, 1]], welded[:, [1, 2]], welded[:, [2, 0]]]), axis=1)
        _, edge_ids, faces_per_edge = np.unique(edges[:, 0] * len(pieces) + edges[:, 1], return_inverse=True,
                                                return_counts=True)
        return set(np.unique(edge_pieces[faces_per_edge[edge_ids.reshape(-1)] > 2]).tolist())

    in_question = np.array(sorted(crowded_pieces(np.zeros(0, np.int64))), np.int64)
    if len(in_question) < 2:
        return np.zeros(0, np.int64)
    own_crowding = crowded_pieces(in_question)  # crowded with nothing welded to them: the file's own
    apart = list(in_question)
    for piece in in_question[np.argsort(-sizes[in_question], kind="stable")]:
        trial = np.array([p for p in apart if p != piece], np.int64)
        if crowded_pieces(trial) <= own_crowding:
            apart = list(trial)
    return np.array(sorted(apart), np.int64)


def welded_pieces(vertices: np.ndarray, triangles: np.ndarray, tolerance: float = WELD_TOLERANCE) -> np.ndarray:
    """(V,) int64 piece of each vertex, seam-split copies of a point counted as one (what an artist calls a
    part: the skin, an eyeball, a tooth row). :attr:`facerig.mesh.WeldedSurface.component_labels` for arrays."""
    triangles = np.asarray(triangles, np.int64)
    to_surface = weld_vertices(vertices, triangles, connected_components(len(vertices), triangles), tolerance)
    return connected_components(int(to_surface.max()) + 1, to_surface[triangles])[to_surface]


def skin_mask(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V,) bool: the welded piece with the largest surface area, the skin."""
    return largest_area_component(welded_pieces(vertices, triangles), vertex_areas(vertices, triangles))
