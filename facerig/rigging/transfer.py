"""Template deformation transfer: the classical rigging baseline, with the same output as the network.

``rig_by_transfer(mesh)`` registers a FACS-rigged template head to the target and copies the template's pose
displacements across. The template ships with facerig (``facerig/data/template/``, made by
:mod:`facerig.trainer.make_template`): the ICT-FaceKit neutral re-meshed to 6k vertices with every component,
and its 47 FACS deltas from the vocabulary's ICT map (float16). No ICT archive is needed at run time.

Method, all in the canonical frame (:mod:`facerig.canonical.frame`: cranium radius 1, +X the character's left):

1. **Similarity ICP** of the template skin onto the target skin (each mesh's largest-area component):
   closest points on the target surface, pairs trimmed at 2.5 × their median distance and where normals
   disagree, Umeyama's closed-form rotation + uniform scale + translation.
2. **Non-rigid fit** of the template skin: minimise ``Σ wᵢ |xᵢ − cᵢ|² + α Σ_edges |(xᵢ − xⱼ) − (vᵢ − vⱼ)|²``
   (closest-point data term with area weights; membrane smoothness of the displacement over the template's
   edges), one sparse linear solve per step, α decreasing over the steps. Inner components (eyes, teeth,
   lashes) follow the skin's displacement, inverse-distance-weighted from their nearest skin vertices.
3. **Displacement transfer**: each target vertex takes the barycentric interpolation of the template deltas at
   its closest point on the registered template (skin vertices on the template skin only, so a lip never
   picks up a tooth's motion; other components on the template's inner parts, unless those are far),
   rotated and scaled by the ICP similarity. This is displacement transfer, not Sumner–Popović
   deformation-gradient transfer: deltas are not re-oriented by the local non-rigid frame.

Corrugator and FlatPucker (no ICT counterpart) and every corrective come out as zero deltas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial import cKDTree

from facerig.anatomy.eyes import find_eyeballs, turn_eyeballs
from facerig.canonical.frame import CanonicalFrame, canonical_frame
from facerig.errors import FacerigError
from facerig.geometry import SurfaceIndex, skin_mask, vertex_areas, vertex_normals
from facerig.mesh import Mesh
from facerig.rig import Rig
from facerig.timings import RigTimings
from facerig.vocabulary import Vocabulary, load_vocabulary

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "data" / "template" / "template.npz"
ICP_ITERATIONS = 30
TRIM_FACTOR = 2.5  # pairs farther than this × the median pair distance are outliers (neck cut, hair, ...)
MIN_NORMAL_DOT = 0.0  # pairs whose normals face apart are on opposite sides of a thin part (lips, lids)
# Membrane stiffness per non-rigid step, relative to the (unit mean) data weights: stiff first to fix the
# coarse shape, softer later to follow detail.
STIFFNESS_SCHEDULE = (50.0, 20.0, 8.0, 3.0, 1.5)
INNER_NEIGHBOURS = 8  # skin vertices whose displacement an inner-component vertex follows
# Both meshes are in canonical units (cranium radius 1), so the similarity scale should stay near 1; a free
# scale lets ICP shrink the template onto part of a target that covers less than the template does.
SCALE_RANGE = (0.8, 1.25)
# A target inner component lands on the template's inner parts unless their mean distance exceeds
# factor × the distance to the whole template + slack (canonical units; 0.02 is about 2 mm on a human head).
INNER_MATCH_FACTOR = 2.0
INNER_MATCH_SLACK = 0.02


class TransferError(FacerigError):
    """The template cannot be loaded or registered to the target."""


# ---------------------------------------------------------------------------------------------- template
@dataclass(frozen=True, eq=False)
class Template:
    """A rigged template head in its own units and axes (Y up, face along +Z).

    Attributes:
        vertices: (V, 3) float64 neutral positions.
        triangles: (F, 3) int64 triangles.
        action_names: A FACS action full names.
        deltas: (A, V, 3) float32 per-action displacements (zeros for unlabelled actions).
        labelled: (A,) bool, False where the template has no source for the action.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    action_names: tuple[str, ...]
    deltas: np.ndarray
    labelled: np.ndarray

    @cached_property
    def mesh(self) -> Mesh:
        return Mesh.from_triangles(self.vertices, self.triangles, up_axis="Y", name="template")

    @cached_property
    def frame(self) -> CanonicalFrame:
        return canonical_frame(self.mesh, up="+Y", front="+Z")

    @cached_property
    def canonical_vertices(self) -> np.ndarray:
        """(V, 3) float64 vertices in the template's canonical frame."""
        return self.frame.to_canonical(self.vertices)

    @cached_property
    def skin(self) -> np.ndarray:
        """(V,) bool skin mask (:func:`skin_mask`)."""
        return skin_mask(self.vertices, self.triangles)


def load_template(path: str | Path | None = None) -> Template:
    """Read a template ``.npz`` (the bundled one when ``path`` is None); see :mod:`facerig.trainer.make_template`.

    Raises:
        TransferError: the file is missing or lacks a key.
    """
    path = Path(path) if path is not None else TEMPLATE_PATH
    if not path.is_file():
        raise TransferError("template file is missing; regenerate it with facerig.trainer.make_template", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return Template(
                vertices=data["vertices"].astype(np.float64),
                triangles=data["triangles"].astype(np.int64),
                action_names=tuple(str(n) for n in data["action_names"]),
                deltas=data["deltas"].astype(np.float32),
                labelled=data["labelled"].astype(bool),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise TransferError(f"not a readable template ({exc})", path) from None


def similarity_fit(source: np.ndarray, target: np.ndarray, weights: np.ndarray,
                   scale_range: tuple[float, float] = (0.0, np.inf)) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted Umeyama: (scale s, (3, 3) rotation R, (3,) translation t) minimising Σ w |s R p + t − q|².

    ``s`` is clipped to ``scale_range`` (the translation is then the best one for the clipped scale).
    """
    w = weights / weights.sum()
    mu_p, mu_q = w @ source, w @ target
    p, q = source - mu_p, target - mu_q
    cov = (q * w[:, None]).T @ p
    u, sigma, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag(d) @ vt
    variance = float(w @ np.einsum("ij,ij->i", p, p))
    scale = float((sigma * d).sum() / variance) if variance > 0 else 1.0
    scale = float(np.clip(scale, *scale_range))
    return scale, rotation, mu_q - scale * rotation @ mu_p


# ---------------------------------------------------------------------------------------------- registration
@dataclass(frozen=True)
class Registration:
    """The template fitted to a target, in the target's canonical frame.

    Attributes:
        vertices: (V_template, 3) float64 registered template positions.
        scale, rotation: the similarity part (template canonical -> target canonical), applied to deltas.
        skin_rms: RMS distance of the registered template skin to the target skin (canonical units).
    """

    vertices: np.ndarray
    scale: float
    rotation: np.ndarray
    skin_rms: float


def _pairs(points: np.ndarray, normals: np.ndarray, surface: SurfaceIndex,
           face_normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of ``points`` on ``surface`` and a (N,) 0/1 inlier weight; ``face_normals`` are the
    surface's (F, 3) unit triangle normals."""
    tri, bary, dist = surface.query(points)
    closest = surface.points(tri, bary)
    inlier = dist <= TRIM_FACTOR * max(float(np.median(dist)), 1e-12)
    agree = inlier & (np.einsum("ij,ij->i", normals, face_normals[tri]) > MIN_NORMAL_DOT)
    # A target with inside-out (or inconsistent) winding would fail the normal test almost everywhere: its
    # normals carry no information then, so only the distance trim applies.
    if agree.sum() >= 0.25 * inlier.sum():
        inlier = agree
    return closest, inlier.astype(np.float64)


def _edge_laplacian(n: int, triangles: np.ndarray) -> scipy.sparse.csr_matrix:
    """(n, n) uniform graph Laplacian D − A over the triangles' edges."""
    rows = triangles[:, [0, 1, 2, 1, 2, 0]].ravel()
    cols = triangles[:, [1, 2, 0, 0, 1, 2]].ravel()
    adjacency = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    adjacency.data[:] = 1.0
    return (scipy.sparse.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency).tocsr()


def register(template: np.ndarray, template_tris: np.ndarray, template_skin: np.ndarray,
             target: np.ndarray, target_tris: np.ndarray, target_skin: np.ndarray) -> Registration:
    """Fit the template to the target (both (V, 3) canonical positions); see the module docstring.

    Args:
        template, template_tris: template vertices and triangles; template_skin: (V_t,) bool skin mask.
        target, target_tris: target vertices and triangles; target_skin: (V,) bool skin mask.
    """
    skin_tris = template_tris[template_skin[template_tris].all(axis=1)]
    target_skin_tris = target_tris[target_skin[target_tris].all(axis=1)]
    index = np.flatnonzero(template_skin)
    local = np.full(len(template), -1, np.int64)
    local[index] = np.arange(len(index))
    tris = local[skin_tris]  # (F_s, 3) over skin vertices
    rest = template[index]
    area = vertex_areas(rest, tris)
    area = area / area.mean()
    surface = SurfaceIndex(target, target_skin_tris)
    target_normals = surface.face_normals

    # 1. similarity ICP
    scale, rotation, shift = 1.0, np.eye(3), np.zeros(3)
    normals0 = vertex_normals(rest, tris)
    for _ in range(ICP_ITERATIONS):
        moved = scale * rest @ rotation.T + shift
        closest, inlier = _pairs(moved, normals0 @ rotation.T, surface, target_normals)
        new = similarity_fit(rest, closest, area * inlier, SCALE_RANGE)
        change = abs(new[0] - scale) + np.abs(new[1] - rotation).max() + np.abs(new[2] - shift).max()
        scale, rotation, shift = new
        if change < 1e-6:
            break
    aligned = scale * template @ rotation.T + shift  # every template vertex, inner parts included

    # 2. non-rigid membrane fit of the skin
    laplacian = _edge_laplacian(len(index), tris)
    x = aligned[index].copy()
    rhs_rest = laplacian @ x
    for stiffness in STIFFNESS_SCHEDULE:
        closest, inlier = _pairs(x, vertex_normals(x, tris), surface, target_normals)
        w = area * inlier
        # A tiny pull to the rigid fit keeps the system definite where no vertex has a partner.
        system = (scipy.sparse.diags(w + 1e-4) + stiffness * laplacian).tocsc()
        solve = scipy.sparse.linalg.factorized(system)
        rhs = w[:, None] * closest + 1e-4 * aligned[index] + stiffness * rhs_rest
        x = np.stack([solve(rhs[:, k]) for k in range(3)], axis=1)
    _, _, dist = surface.query(x)

    # 3. inner parts follow the skin displacement
    registered = aligned.copy()
    registered[index] = x
    inner = np.flatnonzero(~template_skin)
    if len(inner):
        k = min(INNER_NEIGHBOURS, len(index))
        d, nearest = cKDTree(aligned[index]).query(aligned[inner], k=k)
        d, nearest = d.reshape(len(inner), k), nearest.reshape(len(inner), k)
        w = 1.0 / np.maximum(d, 1e-9) ** 2
        w /= w.sum(axis=1, keepdims=True)
        registered[inner] += np.einsum("nk,nkd->nd", w, (x - aligned[index])[nearest])
    return Registration(registered, float(scale), rotation, float(np.sqrt(np.mean(dist**2))))


def transfer_deltas(registered: np.ndarray, template_tris: np.ndarray, template_skin: np.ndarray,
                    template_deltas: np.ndarray, target: np.ndarray, target_parts: np.ndarray,
                    target_skin: np.ndarray) -> np.ndarray:
    """Interpolate template deltas at each target vertex's closest point on the registered template.

    Target skin vertices look on the template skin only. Each other target component looks on the
    template's inner parts (a tooth lands on a tooth, not on the lip in front of it) unless those are
    clearly farther than the template as a whole (:data:`INNER_MATCH_FACTOR`): a hat or a separate ear
    then takes the motion of the skin under it.

    Args:
        registered: (V_t, 3) registered template; template_tris: (F_t, 3); template_skin: (V_t,) bool.
        template_deltas: (A, V_t, 3) deltas, already in the target's canonical frame.
        target: (V, 3) target canonical vertices; target_parts: (V,) int connected component of each;
            target_skin: (V,) bool.

    Returns:
        (A, V, 3) float32 deltas at the target vertices.
    """
    corners = np.zeros((len(target), 3), np.int64)
    bary = np.zeros((len(target), 3))

    def land(rows: np.ndarray, tris: np.ndarray) -> np.ndarray:
        tri, bary[rows], dist = SurfaceIndex(registered, tris).query(target[rows])
        corners[rows] = tris[tri]
        return dist

    skin_tri = template_skin[template_tris].all(axis=1)
    inner_tri = ~template_skin[template_tris].any(axis=1)
    rows = np.flatnonzero(target_skin)
    if len(rows):
        land(rows, template_tris[skin_tri])
    rows = np.flatnonzero(~target_skin)
    if len(rows):
        anywhere = land(rows, template_tris)
        if inner_tri.any():
            keep_corners, keep_bary = corners[rows].copy(), bary[rows].copy()
            inner = land(rows, template_tris[inner_tri])
            parts = np.unique(target_parts[rows], return_inverse=True)[1]
            count = np.bincount(parts)
            inner_mean = np.bincount(parts, inner) / count
            any_mean = np.bincount(parts, anywhere) / count
            fallback = (inner_mean > INNER_MATCH_FACTOR * any_mean + INNER_MATCH_SLACK)[parts]
            corners[rows[fallback]], bary[rows[fallback]] = keep_corners[fallback], keep_bary[fallback]
    return np.einsum("vk,avkd->avd", bary, template_deltas[:, corners]).astype(np.float32)


# ---------------------------------------------------------------------------------------------- rigging
def rig_by_transfer(
    mesh: Mesh,
    *,
    vocabulary: Vocabulary | None = None,
    template: Template | None = None,
    up: str | None = None,
    front: str | None = None,
    turn_eyes: bool = True,
) -> Rig:
    """Rig a neutral head by deformation transfer from the bundled ICT template.

    Args:
        mesh: the neutral head (any units and axes the canonical frame understands).
        vocabulary: the shapes to build; the default vocabulary when None. Actions the template lacks and
            all correctives get zero deltas.
        template: the rigged template; the bundled one when None.
        up, front: axis overrides, as for :func:`facerig.rigging.pipeline.rig_mesh`.
        turn_eyes: turn the head's eyeballs rigidly for gaze, as :func:`facerig.rigging.pipeline.rig_mesh` does.

    Returns:
        A :class:`Rig` with ``vocabulary.shape_names`` shapes, deltas in the mesh's own units and axes;
        ``metadata["method"] == "transfer"``.
    """
    start = time.perf_counter()
    vocabulary = vocabulary or load_vocabulary()
    template = template or load_template()
    frame = canonical_frame(mesh, up=up, front=front)
    # Like the network, the transfer works on the welded surface (facerig.geometry.weld) and every copy of a
    # point takes the same delta.
    surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    target = frame.to_canonical(surface.vertices)
    target_parts = surface.component_labels
    target_skin = mesh.welded.skin
    template_skin = template.skin

    fit = register(template.canonical_vertices, template.triangles, template_skin, target, surface.triangles,
                   target_skin)
    # Template deltas: template units -> template canonical -> (similarity) target canonical.
    to_target = fit.scale * template.frame.scale * (fit.rotation @ template.frame.rotation)
    source = template.deltas @ to_target.T.astype(np.float32)  # (A, V_t, 3)
    canonical = transfer_deltas(fit.vertices, template.triangles, template_skin, source, target, target_parts,
                                target_skin)

    deltas = np.zeros((len(vocabulary.shape_names), surface.n_vertices, 3), np.float32)
    column = {name: i for i, name in enumerate(template.action_names)}
    for i, name in enumerate(vocabulary.action_names):
        j = column.get(name)
        if j is not None and template.labelled[j]:
            deltas[i] = canonical[j]
    # The eyeballs turn as in the network's rig (facerig.anatomy.eyes): the template's eye turn, carried by nearest
    # surface points, would bend them.
    eyeballs = find_eyeballs(target, target_parts) if turn_eyes else ()
    n_actions = len(vocabulary.action_names)
    deltas[:n_actions] = turn_eyeballs(deltas[:n_actions], target, eyeballs, np.eye(n_actions, dtype=np.float32),
                                       vocabulary.action_names)
    deltas = frame.deltas_from_canonical(deltas[:, to_surface]).astype(np.float32)

    return Rig.from_vocabulary(
        mesh,
        vocabulary,
        deltas,
        method="transfer",
        frame=frame,
        eyeballs_turned=len(eyeballs),
        timings=RigTimings(total=time.perf_counter() - start),
        transfer={"skin_rms_canonical": round(fit.skin_rms, 6), "similarity_scale": round(fit.scale, 6)},
    )
