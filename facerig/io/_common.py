"""What every mesh reader shares: input limits, reading a source safely, and assembling the final Mesh.

Readers parse their format into plain arrays and hand them to :func:`assemble_mesh`, which owns the
checks that do not depend on the format (finite coordinates, index ranges, degenerate polygons, empty
groups), so every format reports the same problems in the same words.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from facerig.errors import ConfigError, MeshLoadError
from facerig.geometry.triangles import cross_rows, norm_rows
from facerig.io._select import name_matches
from facerig.mesh import Mesh, source_name

MeshSource = Union[str, Path, bytes]
"""A file path, or the file's bytes already in memory."""

BYTES_LABEL = "<bytes>"

# Signatures of common non-mesh files, so a PNG renamed .obj says what it is instead of "no vertices".
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"glTF": "a binary glTF (GLB) file",
    b"PXR-USDC": "a binary USD (usdc) file",
    b"ply\n": "a PLY file",
    b"\x7fELF": "an executable",
}

RIG_SHAPES = 96
"""Shapes a rig carries per vertex (the default vocabulary's 47 poses and 48 correctives, rounded up)."""

# Peak-memory model of loading and then rigging a mesh, in bytes per element. Loading holds the parsed
# positions and their float64 world copy, and per corner the raw and resolved indices plus the fan
# triangles' corner positions of the degenerate-face check: the load estimate is 1.2-1.5x tracemalloc's
# peak on the ICT neutral, spot, suzanne, robot_expressive.glb and 200k-vertex OBJ/PLY grids (checked in
# tests/io/test_sandbox.py). Rigging holds the neutral and, per vertex, every shape's float32 delta twice
# (the rig's own array and the exporter's copy).
_LOAD_BYTES_PER_VERTEX = 250
_LOAD_BYTES_PER_CORNER = 150
_RIG_BYTES_PER_VERTEX = 2 * RIG_SHAPES * 3 * 4 + 200
_RIG_BYTES_PER_CORNER = 16
TEXT_PARSE_BYTES_PER_BYTE = 10
"""Working memory per byte of a text mesh (OBJ, ascii PLY) on top of the per-element costs: byte masks and
per-byte line/token indices (measured: ~7.4 for OBJ lines that are skipped, ~4.5 for ascii PLY)."""


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on what one input may cost; inputs are untrusted, so every reader checks these.

    Every limit is checked from headers, counts and file sizes before the memory is allocated.

    Attributes:
        max_file_bytes: largest input accepted (512 MiB by default), counting every file it references
            (glTF buffers, USD layers) as often as it is referenced.
        max_vertices: largest vertex count accepted, summed over all parts of the file. The default is
            the largest that :func:`estimate_peak_bytes` fits in the default memory budget.
        max_memory_bytes: memory budget for loading and rigging one input (2 GiB by default); see
            :func:`estimate_peak_bytes`.
    """

    max_file_bytes: int = 512 * 1024**2
    max_vertices: int = 750_000
    max_memory_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_vertices", "max_memory_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"LoadLimits.{name} must be a positive whole number, got {value!r}")


def estimate_load_bytes(n_vertices: int, n_corners: int, parse_bytes: int = 0) -> int:
    """Upper estimate of the memory a reader holds at its peak while loading a mesh of this size.

    Args:
        n_vertices: vertex count.
        n_corners: polygon corner count (3 per triangle, 4 per quad).
        parse_bytes: the reader's working memory for the file itself (its bytes, text-parsing buffers).
    """
    return int(parse_bytes + n_vertices * _LOAD_BYTES_PER_VERTEX + n_corners * _LOAD_BYTES_PER_CORNER)


def estimate_peak_bytes(n_vertices: int, n_corners: int, parse_bytes: int = 0) -> int:
    """Upper estimate of the memory that loading, then rigging, a mesh of this size holds at its peak:
    the larger of :func:`estimate_load_bytes` and the rig's (the neutral plus every shape's delta)."""
    rig = n_vertices * _RIG_BYTES_PER_VERTEX + n_corners * _RIG_BYTES_PER_CORNER
    return max(estimate_load_bytes(n_vertices, n_corners, parse_bytes), int(rig))


def check_cost(
    limits: LoadLimits, label: str | Path, *, n_vertices: int = 0, n_corners: int = 0, parse_bytes: int = 0
) -> None:
    """Raise before allocating when a mesh of this size is over the vertex limit or the memory budget."""
    check_vertex_count(n_vertices, limits, label)
    peak = estimate_peak_bytes(n_vertices, n_corners, parse_bytes)
    if peak > limits.max_memory_bytes:
        counted = [f"{n:,} {what}" for n, what in ((n_vertices, "vertices"), (n_corners, "face corners")) if n]
        size = " and ".join(counted) or "it"
        raise MeshLoadError(
            f"loading and rigging {size} would need about {peak / 2**20:,.0f} MiB, over the memory budget of "
            f"{limits.max_memory_bytes / 2**20:,.0f} MiB (LoadLimits.max_memory_bytes)",
            label,
        )


def max_array(limits: LoadLimits) -> tuple[int, int]:
    """(elements, bytes): the longest and the largest array any mesh within ``limits`` has.

    Its longest arrays are per face corner (faceVertexIndices, face-varying UVs; as many as :func:`check_cost`
    admits with the memory budget) or per vertex (``max_vertices``); its widest elements a double 3-vector per
    vertex (24 bytes) and a double UV per corner (16 bytes). A reader that learns an array's declared length
    before allocating it (binary USD: :mod:`facerig.io._crate`) refuses a longer or larger one there, since
    :func:`check_cost` would refuse the mesh once it is read.
    """
    corners = limits.max_memory_bytes // max(_LOAD_BYTES_PER_CORNER, _RIG_BYTES_PER_CORNER)
    return max(limits.max_vertices, corners), max(24 * limits.max_vertices, 16 * corners)


@dataclass(frozen=True)
class Source:
    """A resolved input: its bytes and how to name it."""

    data: bytes  # the file's bytes; empty for readers that let a library open the path (USD)
    label: str  # names the input in error messages: the path, or "<bytes>"
    name: str  # Mesh.name: the file stem
    path: str | None  # Mesh.source


def check_file(path: str | Path, limits: LoadLimits) -> Path:
    """Check that ``path`` is a regular, non-empty file within ``limits``; return it as a Path.

    Only ``stat`` looks at it: a FIFO or device is refused without being opened (opening one blocks).
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MeshLoadError("file not found", path) from None
    except OSError as exc:  # a symlink loop, a path component that is a file, no permission
        raise MeshLoadError(f"cannot read: {exc.strerror or exc}", path) from None
    if stat.S_ISDIR(info.st_mode):
        raise MeshLoadError("is a directory, not a mesh file", path)
    if not stat.S_ISREG(info.st_mode):
        raise MeshLoadError("is not a regular file", path)
    if info.st_size == 0:
        raise MeshLoadError("file is empty", path)
    if info.st_size > limits.max_file_bytes:
        raise MeshLoadError(
            f"file is {info.st_size:,} bytes, over the limit of {limits.max_file_bytes:,} (LoadLimits.max_file_bytes)",
            path,
        )
    return path


def read_source(source: MeshSource, limits: LoadLimits) -> Source:
    """Read a path (after :func:`check_file`) or take bytes as they are, applying the same limits."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise MeshLoadError("input is empty", BYTES_LABEL)
        if len(data) > limits.max_file_bytes:
            limit = limits.max_file_bytes
            raise MeshLoadError(f"input is {len(data):,} bytes, over the limit of {limit:,}", BYTES_LABEL)
        return Source(data, BYTES_LABEL, "mesh", None)
    path = check_file(source, limits)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshLoadError(f"cannot read: {exc.strerror or exc}", path) from None
    return Source(data, str(path), source_name(path), str(path))


def reject_binary(data: bytes, label: str, format_name: str) -> None:
    """Raise if ``data`` is clearly not text (a known binary signature, or NUL bytes near the start)."""
    head = data[:65536]
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise MeshLoadError(f"not a text {format_name} file: it looks like {what}", label)
    if b"\x00" in head:
        raise MeshLoadError(f"not a text {format_name} file: it contains binary data", label)


def check_vertex_count(count: int, limits: LoadLimits, label: str | Path) -> None:
    if count > limits.max_vertices:
        raise MeshLoadError(
            f"{count:,} vertices, over the limit of {limits.max_vertices:,} (LoadLimits.max_vertices)", label
        )


def concatenate_uvs(
    uvs: Sequence[np.ndarray | None], uv_indices: Sequence[np.ndarray | None], parts: str, warnings: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One UV array and per-corner indices into it from several parts' own, or (None, None) when a part has none.

    Args:
        uvs, uv_indices: per part, (T_i, 2) UVs and (N_i,) corner indices into them, or None when it has none.
        parts: what a part is called in the warning ("meshes", "mesh nodes").
        warnings: gets "UVs dropped: ..." when only some parts have UVs.
    """
    if all(uv is not None for uv in uvs):
        starts = np.cumsum([0] + [len(uv) for uv in uvs[:-1]])
        return np.concatenate(uvs), np.concatenate([index + start for index, start in zip(uv_indices, starts)])
    if any(uv is not None for uv in uvs):
        missing = sum(uv is None for uv in uvs)
        warnings.append(f"UVs dropped: {missing} of {len(uvs)} {parts} have no texture coordinates")
    return None, None


def reversed_winding(counts: np.ndarray) -> np.ndarray:
    """(N,) permutation of corner slots that reverses every polygon's winding (for mirroring transforms).

    ``corners[reversed_winding(counts)]`` lists each polygon's corners in the opposite order.
    """
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(int(counts.sum())) - starts
    return starts + np.repeat(counts, counts) - 1 - local


_AREA_CHUNK = 1 << 18  # triangles per step of the degenerate-polygon check (~6 MB per (n, 3) array)


def _degenerate_polygons(
    vertices: np.ndarray, counts: np.ndarray, corners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(P,) bool masks: polygons that repeat a vertex index, and polygons of (near) zero area.

    Large temporaries are built in place or a chunk of triangles at a time: this runs on every file, and at a
    million polygons each (N, 3) float64 copy is 100 MB.
    """
    n_poly = len(counts)
    # A repeated index shows as two equal neighbours once corners are sorted by (polygon, vertex).
    key = np.repeat(np.arange(n_poly, dtype=np.int64), counts)
    key *= len(vertices) + 1
    key += corners
    key.sort()
    same = key[1:] == key[:-1]
    repeated = np.zeros(n_poly, bool)
    repeated[key[1:][same] // (len(vertices) + 1)] = True
    del key, same

    # Area of the fan triangulation (corner 0, k, k+1); the same fan Mesh.triangles uses.
    starts = np.cumsum(counts) - counts
    tris_per = counts - 2
    tri_poly = np.repeat(np.arange(n_poly), tris_per)
    k = np.arange(len(tri_poly)) - np.repeat(np.cumsum(tris_per) - tris_per, tris_per)
    first = starts[tri_poly]
    twice_area = np.empty(len(tri_poly))
    for start in range(0, len(tri_poly), _AREA_CHUNK):
        chunk = slice(start, start + _AREA_CHUNK)
        a = vertices[corners[first[chunk]]]
        b = vertices[corners[first[chunk] + k[chunk] + 1]]
        c = vertices[corners[first[chunk] + k[chunk] + 2]]
        twice_area[chunk] = norm_rows(cross_rows(b - a, c - a))  # np.cross and np.linalg.norm's arithmetic
    area = np.bincount(tri_poly, weights=twice_area, minlength=n_poly) * 0.5
    # "Zero" relative to the model's size: a polygon narrower than ~1e-9 of the bounding-box diagonal
    # carries no surface; a fixed absolute epsilon would be wrong for both millimetres and kilometres.
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    flat = area <= (1e-9 * diagonal) ** 2
    return repeated, flat & ~repeated


def assemble_mesh(
    source: Source,
    vertices: np.ndarray,
    counts: np.ndarray,
    corners: np.ndarray,
    *,
    uvs: np.ndarray | None = None,
    uv_indices: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] = (),
    up_axis: str | None = None,
    meters_per_unit: float | None = None,
    warnings: Sequence[str] = (),
) -> Mesh:
    """Check parsed arrays, drop degenerate polygons (reported in ``warnings``) and build the Mesh.

    Args:
        vertices: (V, 3) float positions.
        counts: (P,) corner count per polygon.
        corners: (N,) 0-based vertex index per corner, N = counts.sum().
        uvs, uv_indices: (T, 2) texture coordinates and (N,) per-corner index into them, or both None.
        groups: (P,) index into ``group_names`` (None: one group); empty groups are removed.
    Raises:
        MeshLoadError: no vertices/faces, non-finite coordinates, bad indices, nothing left after dropping.
    """
    label = source.label
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    counts = np.asarray(counts, dtype=np.int64)
    corners = np.asarray(corners, dtype=np.int64)
    warnings = list(warnings)
    if len(vertices) == 0:
        raise MeshLoadError("no vertices found", label)
    if len(counts) == 0:
        raise MeshLoadError(f"{len(vertices):,} vertices but no faces (a point cloud is not a mesh)", label)
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise MeshLoadError(
            f"{int((~finite).sum()):,} vertices have NaN or infinite coordinates (first: vertex {first})", label
        )
    if (counts < 3).any():
        first = int(np.flatnonzero(counts < 3)[0])
        raise MeshLoadError(f"face {first} has {int(counts[first])} corners; a face needs at least 3", label)
    if int(counts.sum()) != len(corners):
        raise MeshLoadError(f"faces list {int(counts.sum()):,} corners but {len(corners):,} indices were read", label)
    if len(corners) and (corners.min() < 0 or corners.max() >= len(vertices)):
        bad = corners[(corners < 0) | (corners >= len(vertices))][0]
        raise MeshLoadError(f"face vertex index {int(bad)} out of range for {len(vertices):,} vertices", label)
    if uvs is not None:
        uvs = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
        uv_indices = np.asarray(uv_indices, dtype=np.int64)
        if len(uv_indices) and (uv_indices.min() < 0 or uv_indices.max() >= len(uvs)):
            bad = uv_indices[(uv_indices < 0) | (uv_indices >= len(uvs))][0]
            raise MeshLoadError(f"texture coordinate index {int(bad)} out of range for {len(uvs):,} UVs", label)
        if not np.isfinite(uvs).all():
            raise MeshLoadError("texture coordinates contain NaN or infinite values", label)
    groups = np.zeros(len(counts), np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    group_names = list(group_names) or [source.name]

    repeated, flat = _degenerate_polygons(vertices, counts, corners)
    drop = repeated | flat
    if drop.any():
        keep_corner = np.repeat(~drop, counts)
        counts, corners, groups = counts[~drop], corners[keep_corner], groups[~drop]
        if uv_indices is not None:
            uv_indices = uv_indices[keep_corner]
        parts = []
        if repeated.any():
            parts.append(f"{int(repeated.sum()):,} with a repeated vertex")
        if flat.any():
            parts.append(f"{int(flat.sum()):,} with zero area")
        warnings.append(f"dropped {int(drop.sum()):,} degenerate faces ({', '.join(parts)})")
        if len(counts) == 0:
            raise MeshLoadError("every face is degenerate (repeated vertices or zero area)", label)

    # Groups that own no polygon (an OBJ `g` with no faces, a primitive of points) are noise for exporters.
    used = np.unique(groups)
    if len(used) != len(group_names):
        remap = np.full(len(group_names), -1, np.int64)
        remap[used] = np.arange(len(used))
        groups = remap[groups]
        group_names = [group_names[i] for i in used]

    return Mesh(
        vertices=vertices,
        face_vertex_counts=counts.astype(np.int32),
        face_vertex_indices=corners,
        uvs=uvs,
        uv_indices=uv_indices if uvs is not None else None,
        polygon_groups=groups,
        group_names=tuple(group_names),
        up_axis=up_axis,
        meters_per_unit=meters_per_unit,
        name=source.name,
        source=source.path,
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------- blend shapes
# Most offsets (shapes × vertices) a file's blend shapes may expand to: 1.2 GB as float32. Morph targets can
# share one accessor, or be all-zero accessors without data, so the file's size does not bound this.
MAX_SHAPE_OFFSETS = 100_000_000


@dataclass(frozen=True, eq=False)
class BlendShapes:
    """A neutral mesh and the named blend shapes a file stores for it (glTF morph targets, USD BlendShapes).

    Attributes:
        mesh: the neutral, exactly as :func:`facerig.io.load_mesh` reads the file (same vertices, same order).
        names: (S,) shape names as the file spells them; a name shared by several meshes of the file is one
            shape (each mesh contributes its own vertices' offsets).
        deltas: (S, V, 3) float32 offsets in the mesh's frame and units: node/prim transforms applied (their
            linear part), zero on the vertices a shape does not store.
    """

    mesh: Mesh
    names: tuple[str, ...]
    deltas: np.ndarray


def check_shape_budget(n_shapes: int, n_vertices: int, label: str) -> None:
    """Raise before allocating when ``n_shapes`` dense shapes of ``n_vertices`` exceed :data:`MAX_SHAPE_OFFSETS`."""
    if n_shapes * n_vertices > MAX_SHAPE_OFFSETS:
        raise MeshLoadError(
            f"{n_shapes:,} blend shapes × {n_vertices:,} vertices is over the limit of {MAX_SHAPE_OFFSETS:,} offsets",
            label,
        )


def select_groups(mesh: Mesh, select: str) -> Mesh:
    """Only the polygon groups of ``mesh`` whose name matches ``select`` (:mod:`facerig.io._select`), re-indexed.

    How ``select`` works for formats without a node hierarchy (OBJ ``o``/``g``/``usemtl`` groups, PLY's one group).

    Raises:
        MeshLoadError: no group matches (the message lists the group names).
    """
    chosen = np.array([name_matches(select, [name]) for name in mesh.group_names])
    if not chosen.any():
        raise MeshLoadError(
            f"no group named like {select!r}; groups: {', '.join(mesh.group_names)}", mesh.source or mesh.name
        )
    polygons = chosen[mesh.polygon_groups]
    corners = np.repeat(polygons, mesh.face_vertex_counts)
    indices = mesh.face_vertex_indices[corners]
    used = np.unique(indices)
    new_index = np.full(mesh.n_vertices, -1, np.int64)
    new_index[used] = np.arange(len(used))
    group_map = np.cumsum(chosen) - 1
    return replace(
        mesh,
        vertices=mesh.vertices[used],
        face_vertex_counts=mesh.face_vertex_counts[polygons],
        face_vertex_indices=new_index[indices],
        uv_indices=None if mesh.uv_indices is None else mesh.uv_indices[corners],
        polygon_groups=group_map[mesh.polygon_groups[polygons]],
        group_names=tuple(name for name, keep in zip(mesh.group_names, chosen) if keep),
    )
