"""Template deformation transfer: the classical rigging baseline, with the same output as the network.

``rig_by_transfer(mesh)`` registers a FACS-rigged template head to the target and copies the template's pose
displacements across. The template ships with facerig (``facerig/data/template/``, made by
:mod:`facerig.trainer.make_template`): the ICT-FaceKit neutral re-meshed to 6k vertices with every component,
and its 47 FACS deltas from the vocabulary's ICT map (float16). No ICT archive is needed at run time.

Method, all in the canonical frame (:mod:`facerig.canonical`: cranium radius 1, +X the character's left):

1. **Similarity ICP** of the template skin onto the target skin (each mesh's largest-area component):
   closest points on the target surface, pairs trimmed at 2.5 × their median distance and where normals
   disagree, Umeyama's closed-form rotation + uniform scale + translation.
2. **Non-rigid fit** of the template skin: minimise ``Σ wᵢ |xᵢ − cᵢ|² + α Σ_edges |(xᵢ − xⱼ) − (vᵢ − vⱼ)|²``
   (closest-point data term with area weights; membrane smoothness of the displacement over the template's
   edges), one sparse linear solve per step, α decreasing over the steps. Inner components (eyes, teeth,
   lashes) follow the skin's displacement, inverse-distance-weighted from their nearest skin vertices.
3. **Displacement transfer**: each target vertex takes the barycentric interpolation of the template deltas at
   its closest point on the registered template (skin vertices on the template skin only, so a lip never
   picks up a tooth's motion; other components on any template part), rotated and scaled by the ICP
   similarity. This is displacement transfer, not Sumner–Popović deformation-gradient transfer: deltas are
   not re-oriented by the local non-rigid frame.

Corrugator and FlatPucker (no ICT counterpart) and every corrective come out as zero deltas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial import cKDTree

from facerig.canonical import CanonicalFrame, canonical_frame
from facerig.errors import FacerigError
from facerig.mesh import Mesh
from facerig.rig import Rig
from facerig.trainer.remesh import closest_points
from facerig.vocabulary import Vocabulary, load_vocabulary

TEMPLATE_PATH = Path(__file__).resolve().parent / "data" / "template" / "template.npz"
ICP_ITERATIONS = 30
TRIM_FACTOR = 2.5  # pairs farther than this × the median pair distance are outliers (neck cut, hair, ...)
MIN_NORMAL_DOT = 0.0  # pairs whose normals face apart are on opposite sides of a thin part (lips, lids)
# Membrane stiffness per non-rigid step, relative to the (unit mean) data weights: stiff first to fix the
# coarse shape, softer later to follow detail.
STIFFNESS_SCHEDULE = (50.0, 20.0, 8.0, 3.0, 1.5)
INNER_NEIGHBOURS = 8  # skin vertices whose displacement an inner-component vertex follows


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


# ---------------------------------------------------------------------------------------------- geometry helpers
def _vertex_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V,) a third of the area of the triangles around each vertex."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    return np.bincount(triangles.ravel(), np.repeat(area / 3.0, 3), minlength=len(vertices))


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (zero for unreferenced vertices)."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1), 1e-300)[:, None]


def _face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    return face / np.maximum(np.linalg.norm(face, axis=1), 1e-300)[:, None]


def skin_mask(vertices: np.ndarray, triangles: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(V,) bool: the connected component with the largest surface area (the skin), as canonical.py picks it."""
    area = _vertex_areas(vertices, triangles)
    return labels == np.argmax(np.bincount(labels, area))


def similarity_fit(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted Umeyama: (scale s, (3, 3) rotation R, (3,) translation t) minimising Σ w |s R p + t − q|²."""
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


def _pairs(points: np.ndarray, normals: np.ndarray, target: np.ndarray, target_tris: np.ndarray,
           target_normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of ``points`` on the target surface and a (N,) 0/1 inlier weight."""
    tri, bary, dist = closest_points(points, target, target_tris)
    closest = np.einsum("nk,nkd->nd", bary, target[target_tris[tri]])
    inlier = dist <= TRIM_FACTOR * max(float(np.median(dist)), 1e-12)
    inlier &= np.einsum("ij,ij->i", normals, target_normals[tri]) > MIN_NORMAL_DOT
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
    area = _vertex_areas(rest, tris)
    area = area / area.mean()
    target_normals = _face_normals(target, target_skin_tris)

    # 1. similarity ICP
    scale, rotation, shift = 1.0, np.eye(3), np.zeros(3)
    normals0 = _vertex_normals(rest, tris)
    for _ in range(ICP_ITERATIONS):
        moved = scale * rest @ rotation.T + shift
        closest, inlier = _pairs(moved, normals0 @ rotation.T, target, target_skin_tris, target_normals)
        new = similarity_fit(rest, closest, area * inlier)
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
        closest, inlier = _pairs(x, _vertex_normals(x, tris), target, target_skin_tris, target_normals)
        w = area * inlier
        # A tiny pull to the rigid fit keeps the system definite where no vertex has a partner.
        system = (scipy.sparse.diags(w + 1e-4) + stiffness * laplacian).tocsc()
        solve = scipy.sparse.linalg.factorized(system)
        rhs = w[:, None] * closest + 1e-4 * aligned[index] + stiffness * rhs_rest
        x = np.stack([solve(rhs[:, k]) for k in range(3)], axis=1)
    _, _, dist = closest_points(x, target, target_skin_tris)

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
                    template_deltas: np.ndarray, target: np.ndarray, target_skin: np.ndarray) -> np.ndarray:
    """Interpolate template deltas at each target vertex's closest point on the registered template.

    Args:
        registered: (V_t, 3) registered template; template_tris: (F_t, 3); template_skin: (V_t,) bool.
        template_deltas: (A, V_t, 3) deltas, already in the target's canonical frame.
        target: (V, 3) target canonical vertices; target_skin: (V,) bool.

    Returns:
        (A, V, 3) float32 deltas at the target vertices.
    """
    # Groups: target skin may only land on template skin (group 0); other target parts anywhere (group 1
    # holds every template triangle, skin triangles duplicated into it).
    skin_tri = template_skin[template_tris].all(axis=1)
    tris = np.concatenate([template_tris[skin_tri], template_tris])
    groups = np.r_[np.zeros(int(skin_tri.sum()), np.int64), np.ones(len(template_tris), np.int64)]
    tri, bary, _ = closest_points(target, registered, tris, (~target_skin).astype(np.int64), groups)
    corners = tris[tri]  # (V, 3)
    return np.einsum("vk,avkd->avd", bary, template_deltas[:, corners]).astype(np.float32)


# ---------------------------------------------------------------------------------------------- rigging
def rig_by_transfer(
    mesh: Mesh,
    *,
    vocabulary: Vocabulary | None = None,
    template: Template | None = None,
    up: str | None = None,
    front: str | None = None,
) -> Rig:
    """Rig a neutral head by deformation transfer from the bundled ICT template.

    Args:
        mesh: the neutral head (any units and axes the canonical frame understands).
        vocabulary: the shapes to build; the default vocabulary when None. Actions the template lacks and
            all correctives get zero deltas.
        template: the rigged template; the bundled one when None.
        up, front: axis overrides, as for :func:`facerig.pipeline.rig_mesh`.

    Returns:
        A :class:`Rig` with ``vocabulary.shape_names`` shapes, deltas in the mesh's own units and axes;
        ``metadata["method"] == "transfer"``.
    """
    start = time.perf_counter()
    vocabulary = vocabulary or load_vocabulary()
    template = template or load_template()
    frame = canonical_frame(mesh, up=up, front=front)
    target = frame.to_canonical(mesh.vertices)
    target_skin = skin_mask(mesh.vertices, mesh.triangles, mesh.component_labels)
    template_canonical = template.frame.to_canonical(template.vertices)
    template_skin = skin_mask(template.vertices, template.triangles, template.mesh.component_labels)

    fit = register(template_canonical, template.triangles, template_skin, target, mesh.triangles, target_skin)
    # Template deltas: template units -> template canonical -> (similarity) target canonical.
    to_target = fit.scale * template.frame.scale * (fit.rotation @ template.frame.rotation)
    source = template.deltas @ to_target.T.astype(np.float32)  # (A, V_t, 3)
    canonical = transfer_deltas(fit.vertices, template.triangles, template_skin, source, target, target_skin)

    deltas = np.zeros((len(vocabulary.shape_names), mesh.n_vertices, 3), np.float32)
    column = {name: i for i, name in enumerate(template.action_names)}
    for i, name in enumerate(vocabulary.action_names):
        j = column.get(name)
        if j is not None and template.labelled[j]:
            deltas[i] = canonical[j]
    deltas = frame.deltas_from_canonical(deltas).astype(np.float32)

    metadata: dict[str, Any] = {
        "method": "transfer",
        "vocabulary_id": vocabulary.id,
        "canonical_frame": frame.to_dict(),
        "transfer": {"skin_rms_canonical": round(fit.skin_rms, 6), "similarity_scale": round(fit.scale, 6)},
        "timings_s": {"total": round(time.perf_counter() - start, 6)},
    }
    return Rig(
        neutral=mesh,
        shape_names=vocabulary.shape_names,
        deltas=deltas,
        corrective_recipes={c.name: c.bases for c in vocabulary.correctives},
        metadata=metadata,
    )
