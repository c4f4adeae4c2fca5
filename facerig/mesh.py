"""The neutral mesh: source arrays as read from a file, plus derived data cached on first use.

A :class:`Mesh` is immutable. It keeps the file's own polygons (quads, n-gons) and face-varying UVs so that
exporters can write back what the artist gave us; the network only ever sees :attr:`Mesh.triangles`.
Every array is read-only, so cached derived data can never go stale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from facerig.errors import MeshLoadError
from facerig.geometry import connected_components, largest_area_component, vertex_areas, weld_vertices


def _readonly(array: np.ndarray | None, dtype: type) -> np.ndarray | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Mesh:
    """A polygon mesh in its file's units and axes.

    Attributes:
        vertices: (V, 3) float64 positions.
        face_vertex_counts: (P,) int32 corner count of each polygon (3, 4, ...).
        face_vertex_indices: (N,) int64 polygon corners, flattened; N = face_vertex_counts.sum().
        uvs: (T, 2) float32 texture coordinates, or None.
        uv_indices: (N,) int64 per-corner index into ``uvs`` (face-varying), or None.
        polygon_groups: (P,) int32 index into ``group_names`` (OBJ groups, glTF primitives, USD meshes).
        group_names: names of the polygon groups; empty means one unnamed group.
        up_axis: "Y" or "Z" when the file states it, else None.
        meters_per_unit: the file's stated unit, else None.
        name: a short name for the mesh (the file stem by default).
        source: the file it was read from, if any.
        warnings: what the loader repaired or dropped (degenerate faces, ...), for reports.
    """

    vertices: np.ndarray
    face_vertex_counts: np.ndarray
    face_vertex_indices: np.ndarray
    uvs: np.ndarray | None = None
    uv_indices: np.ndarray | None = None
    polygon_groups: np.ndarray | None = None
    group_names: tuple[str, ...] = ()
    up_axis: str | None = None
    meters_per_unit: float | None = None
    name: str = "mesh"
    source: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "vertices", _readonly(self.vertices, np.float64))
        set_(self, "face_vertex_counts", _readonly(self.face_vertex_counts, np.int32))
        set_(self, "face_vertex_indices", _readonly(self.face_vertex_indices, np.int64))
        set_(self, "uvs", _readonly(self.uvs, np.float32))
        set_(self, "uv_indices", _readonly(self.uv_indices, np.int64))
        if self.polygon_groups is None:
            set_(self, "polygon_groups", _readonly(np.zeros(len(self.face_vertex_counts)), np.int32))
        else:
            set_(self, "polygon_groups", _readonly(self.polygon_groups, np.int32))
        set_(self, "group_names", tuple(self.group_names) or ("mesh",))
        set_(self, "warnings", tuple(self.warnings))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _fail(self, reason: str) -> None:
        raise MeshLoadError(reason, self.source if self.source else self.name)

    def _validate(self) -> None:
        v, counts, corners = self.vertices, self.face_vertex_counts, self.face_vertex_indices
        if v.ndim != 2 or v.shape[1] != 3:
            self._fail(f"vertices must be (V, 3), got {v.shape}")
        if len(v) == 0:
            self._fail("the mesh has no vertices")
        if not np.isfinite(v).all():
            bad = int((~np.isfinite(v).all(axis=1)).sum())
            self._fail(f"{bad} vertices have NaN or infinite coordinates")
        if len(counts) == 0:
            self._fail("the mesh has no faces")
        if (counts < 3).any():
            self._fail("a polygon has fewer than 3 corners")
        if int(counts.sum()) != len(corners):
            self._fail(f"polygon corner counts sum to {int(counts.sum())} but {len(corners)} indices given")
        if corners.min() < 0 or corners.max() >= len(v):
            self._fail(f"face vertex index out of range [0, {len(v)}): min {corners.min()}, max {corners.max()}")
        if self.uvs is not None or self.uv_indices is not None:
            if self.uvs is None or self.uv_indices is None or len(self.uv_indices) != len(corners):
                self._fail("UVs must come with one uv index per polygon corner")
            if len(self.uv_indices) and (self.uv_indices.min() < 0 or self.uv_indices.max() >= len(self.uvs)):
                self._fail("uv index out of range")
        if len(self.polygon_groups) != len(counts):
            self._fail("polygon_groups must have one entry per polygon")
        if len(counts) and (self.polygon_groups.min() < 0 or self.polygon_groups.max() >= len(self.group_names)):
            self._fail("polygon group index out of range")
        if self.up_axis not in (None, "Y", "Z"):
            self._fail(f"up_axis must be 'Y', 'Z' or None, got {self.up_axis!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_triangles(cls, vertices: np.ndarray, triangles: np.ndarray, **kwargs) -> "Mesh":
        """A mesh of triangles only: (V, 3) vertices and (F, 3) vertex indices."""
        triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
        return cls(vertices, np.full(len(triangles), 3, np.int32), triangles.reshape(-1), **kwargs)

    def with_vertices(self, vertices: np.ndarray) -> "Mesh":
        """The same connectivity, UVs and metadata with new vertex positions."""
        return replace(self, vertices=vertices)

    # ------------------------------------------------------------------ derived data (cached)
    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_polygons(self) -> int:
        return len(self.face_vertex_counts)

    @cached_property
    def polygon_starts(self) -> np.ndarray:
        """(P,) int64 offset of each polygon's first corner in ``face_vertex_indices``."""
        starts = np.zeros(self.n_polygons, np.int64)
        np.cumsum(self.face_vertex_counts[:-1], out=starts[1:])
        starts.setflags(write=False)
        return starts

    @cached_property
    def _triangulation(self) -> tuple[np.ndarray, np.ndarray]:
        # Fan triangulation per polygon: corner 0 with (k, k+1). Exact for the convex quads of head meshes,
        # and it keeps every original vertex.
        counts = self.face_vertex_counts.astype(np.int64)
        tris_per_poly = counts - 2
        poly_of_tri = np.repeat(np.arange(self.n_polygons), tris_per_poly)
        first = np.repeat(self.polygon_starts, tris_per_poly)
        k = np.arange(len(poly_of_tri)) - np.repeat(np.cumsum(tris_per_poly) - tris_per_poly, tris_per_poly)
        corners = self.face_vertex_indices
        tris = np.stack([corners[first], corners[first + k + 1], corners[first + k + 2]], axis=1)
        tris.setflags(write=False)
        poly_of_tri.setflags(write=False)
        return tris, poly_of_tri

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3) int64 triangle vertex indices (polygons fan-triangulated)."""
        return self._triangulation[0]

    @property
    def triangle_polygon(self) -> np.ndarray:
        """(F,) int64 index of the polygon each triangle came from."""
        return self._triangulation[1]

    @cached_property
    def component_labels(self) -> np.ndarray:
        """(V,) int64 connected-component id of each vertex (vertices joined by triangle edges)."""
        labels = connected_components(self.n_vertices, self.triangles)
        labels.setflags(write=False)
        return labels

    @cached_property
    def welded(self) -> "WeldedSurface":
        """The surface every consumer of geometry sees: seam-split copies of a point welded into one vertex
        (:mod:`facerig.geometry.weld`). Canonical frames, operators, the network and the transfer work on it,
        and map their results back with :attr:`WeldedSurface.to_surface`."""
        to_surface = weld_vertices(self.vertices, self.triangles, self.component_labels)
        to_surface.setflags(write=False)
        n_welded = int(to_surface.max()) + 1
        if n_welded == self.n_vertices:
            return WeldedSurface(surface=self, to_surface=to_surface)
        welded_vertices = np.empty((n_welded, 3), self.vertices.dtype)
        welded_vertices[to_surface] = self.vertices
        surface = Mesh.from_triangles(
            welded_vertices,
            to_surface[self.triangles],
            up_axis=self.up_axis,
            meters_per_unit=self.meters_per_unit,
            name=self.name,
            source=self.source,
        )
        return WeldedSurface(surface=surface, to_surface=to_surface)

    @property
    def n_components(self) -> int:
        return int(self.component_labels.max()) + 1

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over vertex positions and polygon connectivity (not UVs or names)."""
        digest = hashlib.sha256()
        for array in (self.vertices, self.face_vertex_counts, self.face_vertex_indices):
            digest.update(str(array.dtype).encode())
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def summary(self) -> dict:
        """Plain facts for `facerig info` and reports."""
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return {
            "name": self.name,
            "source": self.source,
            "vertices": self.n_vertices,
            "polygons": self.n_polygons,
            "triangles": int(len(self.triangles)),
            "components": self.n_components,
            "groups": list(self.group_names),
            "has_uvs": self.uvs is not None,
            "up_axis": self.up_axis,
            "meters_per_unit": self.meters_per_unit,
            "bbox_min": lo.tolist(),
            "bbox_max": hi.tolist(),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, eq=False)
class WeldedSurface:
    """A mesh's welded triangle surface.

    Attributes:
        surface: the welded triangle mesh (W vertices; the mesh itself when nothing welds).
        to_surface: (V,) int64 welded vertex of each of the mesh's vertices; per-vertex results on the surface
            come back to the mesh as ``values[to_surface]``, so every copy of a point gets the same value.
    """

    surface: Mesh
    to_surface: np.ndarray

    @property
    def is_identity(self) -> bool:
        return self.surface.n_vertices == len(self.to_surface)

    @property
    def component_labels(self) -> np.ndarray:
        """(V,) welded piece of each of the mesh's vertices (a seam-split piece counts as one)."""
        return self.surface.component_labels[self.to_surface]

    @cached_property
    def vertex_areas(self) -> np.ndarray:
        """(W,) each welded vertex's share of the surface area (a third of its triangles' areas)."""
        areas = vertex_areas(self.surface.vertices, self.surface.triangles)
        areas.setflags(write=False)
        return areas

    @cached_property
    def skin(self) -> np.ndarray:
        """(W,) bool: the welded piece with the largest surface area, the skin (inner parts, eyeballs, teeth
        and lashes are separate, smaller pieces). The canonical frame's sphere fit and the orientation
        detector both start from it."""
        mask = largest_area_component(self.surface.component_labels, self.vertex_areas)
        mask.setflags(write=False)
        return mask


def source_name(path: str | Path) -> str:
    """The mesh name used for a file: its stem without facerig's own suffixes."""
    name = Path(path).name
    for suffix in (".facerig.npz",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
