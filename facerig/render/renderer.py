"""facerig's own differentiable mesh renderer (pure PyTorch, CPU-friendly; SPEC §6).

PyTorch3D does not install here, so training renders with this module. It does five things:

* :class:`PerspectiveCamera` projects world points to screen pixels plus depth.
* :func:`rasterize` z-buffers triangles at pixel centres into :class:`Fragments` (which face covers each
  pixel, its perspective-correct barycentrics, its depth). Rasterization itself is not differentiable.
* :func:`interpolate` turns per-vertex attributes into an image. It is differentiable with respect to the
  attributes and, when given the screen-space vertices, with respect to their positions too (barycentrics
  are recomputed differentiably for each pixel's face).
* :func:`soft_silhouette` is a SoftRas-style coverage image, differentiable with respect to positions.
* :func:`shade`, :func:`render_displacement` and :func:`render_views` build the images training compares.

Conventions: pixel ``(row i, column j)`` has its centre at screen ``(x, y) = (j + 0.5, i + 0.5)``; screen x
grows to the right and y downwards; depth is the distance along the camera's viewing axis in world units.
Everything is vectorised: each triangle is tested against the pixel centres of its screen bounding box, all
triangles at once, in chunks that bound memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

# Candidate (triangle, pixel) pairs tested per chunk: bounds peak memory to a few tens of MB.
_CHUNK_PAIRS = 1 << 18
# Screen-space triangles with |2 * area| below this many square pixels cover no pixel centre reliably.
_MIN_AREA2 = 1e-9
# Soft-silhouette contributions below this probability are dropped; it sets the blur radius.
_SILHOUETTE_EPS = 1e-5


# ----------------------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class PerspectiveCamera:
    """A pinhole camera looking from ``eye`` at ``target``.

    Attributes:
        eye: camera position in world units.
        target: the point the camera looks at (projects to the image centre).
        up: world direction that appears upwards in the image.
        fov_degrees: vertical field of view.
        image_size: (H, W) in pixels. Pixels are square, so the horizontal field follows from W / H.
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_degrees: float = 20.0
    image_size: tuple[int, int] = (256, 256)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "eye", tuple(float(v) for v in self.eye))
        set_(self, "target", tuple(float(v) for v in self.target))
        set_(self, "up", tuple(float(v) for v in self.up))
        set_(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))
        if not 0.0 < self.fov_degrees < 180.0:
            raise ValueError(f"fov_degrees must be in (0, 180), got {self.fov_degrees}")
        if min(self.image_size) < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        forward = np.subtract(self.target, self.eye)
        if np.linalg.norm(forward) == 0.0 or np.linalg.norm(np.cross(forward, self.up)) < 1e-12:
            raise ValueError("camera eye must differ from target and up must not be parallel to the view")

    @property
    def focal_length(self) -> float:
        """Focal length in pixels (same on both axes)."""
        return 0.5 * self.image_size[0] / math.tan(math.radians(self.fov_degrees) / 2.0)

    @property
    def world_to_view(self) -> np.ndarray:
        """(3, 3) float64 rows: the camera's right, up and forward axes in world coordinates."""
        forward = np.subtract(self.target, self.eye)
        forward = forward / np.linalg.norm(forward)
        right = np.cross(forward, self.up)
        right = right / np.linalg.norm(right)
        return np.stack([right, np.cross(right, forward), forward])

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Project world points to the screen.

        Args:
            points: (..., 3) world positions, in front of the camera (depth > 0).

        Returns:
            (..., 3) of the same dtype: screen x and y in pixels and depth in world units. Differentiable.
        """
        view = torch.as_tensor(self.world_to_view, dtype=points.dtype, device=points.device)
        eye = torch.as_tensor(self.eye, dtype=points.dtype, device=points.device)
        cam = (points - eye) @ view.T  # (..., 3) right, up, forward
        depth = cam[..., 2]
        height, width = self.image_size
        f = self.focal_length
        x = 0.5 * width + f * cam[..., 0] / depth
        y = 0.5 * height - f * cam[..., 1] / depth
        return torch.stack([x, y, depth], dim=-1)


def frontal_camera(
    vertices: torch.Tensor | np.ndarray,
    image_size: int | tuple[int, int],
    fov_degrees: float = 20.0,
    margin: float = 1.1,
) -> PerspectiveCamera:
    """A camera that frames a canonical head (+Y up, face looks +Z) from the front.

    The camera sits on the +Z side of the bounding box, looks along -Z at the box centre and is far
    enough back that the box's front face, the largest in projection, fills the image up to ``margin``.

    Args:
        vertices: (V, 3) positions in the canonical frame.
        image_size: H = W, or (H, W), in pixels.
        fov_degrees: vertical field of view; small values give a near-orthographic look.
        margin: 1.0 touches the image border; 1.1 leaves 10% of air.
    """
    points = np.asarray(
        vertices.detach().cpu().numpy() if isinstance(vertices, torch.Tensor) else vertices, np.float64
    )
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"vertices must be (V, 3) with V > 0, got shape {points.shape}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    low, high = points.min(axis=0), points.max(axis=0)
    centre = 0.5 * (low + high)
    half = np.maximum(0.5 * (high - low), 1e-9)
    tan_half = math.tan(math.radians(fov_degrees) / 2.0)
    aspect = size[1] / size[0]
    distance = margin * max(half[1], half[0] / aspect) / tan_half
    eye = (centre[0], centre[1], high[2] + distance)
    return PerspectiveCamera(
        eye=eye, target=tuple(centre), up=(0.0, 1.0, 0.0), fov_degrees=fov_degrees, image_size=size
    )


# ------------------------------------------------------------------------------------------- rasterizer
@dataclass(frozen=True)
class Fragments:
    """The rasterizer's answer for each pixel (H, W).

    Attributes:
        pix_to_face: (H, W) int64 index of the nearest face covering the pixel centre, -1 for background.
        bary: (H, W, 3) perspective-correct barycentrics of the pixel centre in that face, 0 on background.
        zbuf: (H, W) depth of the surface at the pixel centre, +inf on background.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor

    @property
    def image_size(self) -> tuple[int, int]:
        return (int(self.pix_to_face.shape[0]), int(self.pix_to_face.shape[1]))

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) bool: pixels covered by the mesh."""
        return self.pix_to_face >= 0


def _check_inputs(screen_vertices: torch.Tensor, faces: torch.Tensor) -> None:
    if screen_vertices.ndim != 2 or screen_vertices.shape[1] != 3:
        raise ValueError(f"screen_vertices must be (V, 3), got {tuple(screen_vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype != torch.int64:
        raise ValueError(f"faces must be (F, 3) int64, got {tuple(faces.shape)} {faces.dtype}")


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    return (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))


def _barycentric_planes(tri: torch.Tensor) -> torch.Tensor:
    """Barycentrics as planes over the screen: w_k(x, y) = A_k x + B_k y + C_k.

    Args:
        tri: (K, 3, >=2) triangle corners, screen x and y in the first two columns; non-zero area.

    Returns:
        (K, 3, 3): [k] = (A_k, B_k, C_k) for corner k, whatever the winding.
    """
    x, y = tri[:, :, 0], tri[:, :, 1]  # (K, 3)
    x1, y1 = x.roll(-1, dims=1), y.roll(-1, dims=1)  # corner k + 1
    x2, y2 = x.roll(-2, dims=1), y.roll(-2, dims=1)  # corner k + 2
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # w_k is the signed area of (p, corner k+1, corner k+2) over the triangle's, expanded in p
    planes = torch.stack([y1 - y2, x2 - x1, x1 * y2 - x2 * y1], dim=-1)
    return planes / area2[:, None, None]


def _screen_barycentrics(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """(K, 3) screen-space (affine) barycentrics of points (px, py) (K,) in triangles (K, 3, >=2)."""
    planes = _barycentric_planes(tri)
    return planes[..., 0] * px[:, None] + planes[..., 1] * py[:, None] + planes[..., 2]


def _perspective_correct(bary: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen barycentrics (K, 3) and corner depths (K, 3) -> (perspective-correct barycentrics, depth)."""
    weighted = bary / depth
    inv_depth = weighted.sum(dim=-1)  # inverse depth is affine in screen space
    return weighted / inv_depth[:, None], 1.0 / inv_depth


def _valid_faces(screen_vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F,) bool: faces entirely in front of the camera, finite, with non-zero screen area."""
    tri = screen_vertices[faces]  # (F, 3, 3)
    area2 = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (tri[:, 2, 0] - tri[:, 0, 0]) * (
        tri[:, 1, 1] - tri[:, 0, 1]
    )
    return (tri[..., 2] > 0).all(dim=1) & torch.isfinite(tri).all(dim=(1, 2)) & (area2.abs() > _MIN_AREA2)


def _pixel_pairs(
    tri_xy: torch.Tensor, pad: float, image_size: tuple[int, int]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Enumerate (triangle, pixel) pairs whose pixel centre lies in the triangle's box grown by ``pad``.

    Args:
        tri_xy: (F, 3, 2) float64 screen corners.
        pad: box growth in pixels.

    Yields:
        Chunks of at most about ``_CHUNK_PAIRS`` pairs: (row of ``tri_xy`` (K,), pixel column (K,),
        pixel row (K,)), all int64.
    """
    height, width = image_size
    low = tri_xy.amin(dim=1) - pad
    high = tri_xy.amax(dim=1) + pad
    # pixel j has its centre at j + 0.5, so the centres in [low, high] are ceil(low - .5) .. floor(high - .5);
    # clamped on both sides before the cast, as faces grazing the camera plane have huge coordinates
    j0 = torch.ceil(low[:, 0] - 0.5).clamp(0, width).long()
    j1 = torch.floor(high[:, 0] - 0.5).clamp(-1, width - 1).long()
    i0 = torch.ceil(low[:, 1] - 0.5).clamp(0, height).long()
    i1 = torch.floor(high[:, 1] - 0.5).clamp(-1, height - 1).long()
    box_w = (j1 - j0 + 1).clamp(min=0)
    counts = box_w * (i1 - i0 + 1).clamp(min=0)
    ends = torch.cumsum(counts, dim=0)
    device = tri_xy.device
    start = 0
    while start < len(tri_xy):
        before = int(ends[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(ends, before + _CHUNK_PAIRS, right=True)), start + 1)
        n = counts[start:stop]
        local = torch.repeat_interleave(torch.arange(start, stop, device=device), n)
        offset = torch.arange(int(n.sum()), device=device) - torch.repeat_interleave(ends[start:stop] - n - before, n)
        if len(local):
            yield local, j0[local] + offset % box_w[local], i0[local] + offset // box_w[local]
        start = stop


def _pixel_centres(flat_index: torch.Tensor, width: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen (x, y) of the centres of pixels given by flat index row * W + column."""
    return (flat_index % width).to(dtype) + 0.5, (flat_index // width).to(dtype) + 0.5


def _merge_nearest(
    best_key: torch.Tensor, best_id: torch.Tensor, pixel: torch.Tensor, key: torch.Tensor, ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer merge: per pixel keep the smallest key and its id (ties to the smaller id).

    Args:
        best_key, best_id: (H * W,) the buffers so far (earlier chunks hold smaller ids and win ties).
        pixel, key, ids: (K,) this chunk's candidates.
    """
    chunk_key = torch.full_like(best_key, math.inf).scatter_reduce(0, pixel, key, reduce="amin")
    winner = key == chunk_key[pixel]
    chunk_id = torch.full_like(best_id, torch.iinfo(torch.int64).max).scatter_reduce(
        0, pixel[winner], ids[winner], reduce="amin"
    )
    better = chunk_key < best_key
    return torch.where(better, chunk_key, best_key), torch.where(better, chunk_id, best_id)


def rasterize(
    screen_vertices: torch.Tensor, faces: torch.Tensor, image_size: int | tuple[int, int]
) -> Fragments:
    """Z-buffered rasterization of triangles at pixel centres.

    A pixel belongs to a face when its centre is inside the face or on its edge; of several such faces the
    nearest wins (smallest depth, ties to the lower face index). Faces with a corner at depth <= 0 (behind
    the camera) or with zero screen area are skipped. Both windings are drawn (no back-face culling).

    Args:
        screen_vertices: (V, 3) screen x, y in pixels and depth (:meth:`PerspectiveCamera.project`).
        faces: (F, 3) int64 vertex indices.
        image_size: H = W, or (H, W).

    Returns:
        :class:`Fragments`; bary and zbuf have the dtype of ``screen_vertices`` and carry no gradient.
    """
    _check_inputs(screen_vertices, faces)
    height, width = _size(image_size)
    with torch.no_grad():
        sv = screen_vertices.detach().to(torch.float64)
        face_ids = torch.nonzero(_valid_faces(sv, faces)).flatten()
        tri = sv[faces[face_ids]]  # (Fv, 3, 3)
        # per face, in rows for contiguous per-pair gathers: 3 barycentric planes, then 3 inverse depths
        table = torch.cat([_barycentric_planes(tri).reshape(-1, 9), 1.0 / tri[..., 2]], dim=1).T.contiguous()
        best_depth = torch.full((height * width,), math.inf, dtype=torch.float64, device=sv.device)
        best_face = torch.full((height * width,), -1, dtype=torch.int64, device=sv.device)
        for local, col, row in _pixel_pairs(tri[..., :2], 0.0, (height, width)):
            t = table[:, local]  # (12, K)
            x, y = col.double() + 0.5, row.double() + 0.5
            w0, w1, w2 = (t[3 * k] * x + t[3 * k + 1] * y + t[3 * k + 2] for k in range(3))
            inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            depth = 1.0 / (w0 * t[9] + w1 * t[10] + w2 * t[11])  # inverse depth is affine in screen space
            best_depth, best_face = _merge_nearest(
                best_depth, best_face, (row * width + col)[inside], depth[inside], face_ids[local[inside]]
            )

        covered = torch.nonzero(best_face >= 0).flatten()
        px, py = _pixel_centres(covered, width, torch.float64)
        corners = sv[faces[best_face[covered]]]
        bary, depth = _perspective_correct(_screen_barycentrics(corners, px, py), corners[..., 2])
        dtype = screen_vertices.dtype
        bary_image = torch.zeros((height * width, 3), dtype=dtype, device=sv.device)
        bary_image.index_copy_(0, covered, bary.to(dtype))
        zbuf = torch.full((height * width,), math.inf, dtype=dtype, device=sv.device)
        zbuf.index_copy_(0, covered, depth.to(dtype))
    return Fragments(
        pix_to_face=best_face.reshape(height, width),
        bary=bary_image.reshape(height, width, 3),
        zbuf=zbuf.reshape(height, width),
    )


def interpolate(
    fragments: Fragments,
    faces: torch.Tensor,
    vertex_attributes: torch.Tensor,
    screen_vertices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Interpolate per-vertex attributes over the rasterized faces.

    Args:
        fragments: from :func:`rasterize` of the same faces.
        faces: (F, 3) int64.
        vertex_attributes: (V, C) values to interpolate; gradients flow back to them.
        screen_vertices: (V, 3) the screen positions that were rasterized. When given, each pixel's
            perspective-correct barycentrics are recomputed from them, so gradients also flow to the
            positions (with the pixel-to-face assignment held fixed). When None, ``fragments.bary`` is used.

    Returns:
        (H, W, C) in the attributes' dtype; 0 on background pixels.
    """
    height, width = fragments.image_size
    flat_faces = fragments.pix_to_face.reshape(-1)
    covered = torch.nonzero(flat_faces >= 0).flatten()
    face = flat_faces[covered]
    if screen_vertices is None:
        bary = fragments.bary.reshape(-1, 3)[covered].to(vertex_attributes.dtype)
    else:
        _check_inputs(screen_vertices, faces)
        px, py = _pixel_centres(covered, width, screen_vertices.dtype)
        corners = screen_vertices[faces[face]]  # (K, 3, 3)
        bary, _ = _perspective_correct(_screen_barycentrics(corners, px, py), corners[..., 2])
    values = (bary[..., None] * vertex_attributes[faces[face]]).sum(dim=1)  # (K, C)
    channels = vertex_attributes.shape[1]
    out = vertex_attributes.new_zeros((height * width, channels))
    out = out.index_copy(0, covered, values.to(vertex_attributes.dtype))
    return out.reshape(height, width, channels)


# ------------------------------------------------------------------------------------------- silhouette
def _contour_edges(
    tri_xy: torch.Tensor, faces: torch.Tensor, valid: torch.Tensor, num_vertices: int
) -> torch.Tensor:
    """(F, 3) bool: can edge k (corner k to corner k+1) of each face bound the silhouette?

    An edge is interior when exactly two drawn faces share it and they lie on opposite sides of it in
    screen space: the union of the two then covers both sides, so the edge cannot bound the silhouette.
    Mesh boundaries, folds (a front- next to a back-facing face), non-manifold edges and edges next to a
    skipped face are contour edges. This is what keeps a SoftRas-style silhouette free of seams along
    the interior edges of single-layer surfaces.

    Args:
        tri_xy: (F, 3, 2) screen corners; faces: (F, 3) int64; valid: (F,) bool faces that are drawn.
    """
    a = faces
    b = faces.roll(-1, dims=1)
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    key = (low * num_vertices + high).reshape(-1)
    _, edge_id = torch.unique(key, return_inverse=True)
    # side of the opposite corner relative to the edge directed from its lower to its higher vertex index
    corner = torch.arange(3, device=tri_xy.device)
    p_low = torch.where((a < b)[..., None], tri_xy[:, corner], tri_xy[:, (corner + 1) % 3])
    p_high = torch.where((a < b)[..., None], tri_xy[:, (corner + 1) % 3], tri_xy[:, corner])
    p_opp = tri_xy[:, (corner + 2) % 3]
    d = p_high - p_low
    e = p_opp - p_low
    side = torch.where(valid[:, None], torch.sign(d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]), 0.0)
    side = side.reshape(-1)
    n_edges = int(edge_id.max()) + 1 if len(key) else 0
    drawn = valid[:, None].expand(-1, 3).reshape(-1).to(side.dtype)
    counts = torch.zeros(n_edges, dtype=side.dtype, device=side.device).index_add_(0, edge_id, drawn)
    side_sum = torch.zeros(n_edges, dtype=side.dtype, device=side.device).index_add_(0, edge_id, side)
    side_abs = torch.zeros(n_edges, dtype=side.dtype, device=side.device).index_add_(0, edge_id, side.abs())
    interior = (counts == 2) & (side_abs == 2) & (side_sum == 0)
    return ~interior[edge_id].reshape(-1, 3)


def _nearest_on_segment(
    px: torch.Tensor, py: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dy) (K,) from the point nearest (px, py) on the segment a -> a + e to (px, py)."""
    qx, qy = px - ax, py - ay
    t = ((qx * ex + qy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0)
    return qx - t * ex, qy - t * ey


def _edge_table(tri_xy: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """(21, F) per-face rows for :func:`soft_silhouette`'s edge search, 7 per edge k (corner k -> k+1).

    Rows: start x, y; direction x, y; outward unit normal x, y (away from the third corner); usable (0/1).
    ``tri_xy`` is (F, 3, 2); ``usable`` (F, 3) bool. Rows, not columns, so per-pair gathers are contiguous.
    """
    rows = []
    for k in range(3):
        a, b, c = tri_xy[:, k], tri_xy[:, (k + 1) % 3], tri_xy[:, (k + 2) % 3]
        e = b - a
        normal = torch.stack([-e[:, 1], e[:, 0]], dim=1) / e.norm(dim=1, keepdim=True)
        normal = normal * torch.where(((c - a) * normal).sum(dim=1, keepdim=True) > 0, -1.0, 1.0)
        rows += [a[:, 0], a[:, 1], e[:, 0], e[:, 1], normal[:, 0], normal[:, 1], usable[:, k].to(e.dtype)]
    return torch.stack(rows).contiguous()


def _maybe_open(tri_xy: torch.Tensor, contour: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    """(F, 3) bool: contour edges with an uncovered pixel within one pixel of their bounding box.

    The others cannot pass :func:`soft_silhouette`'s open test anywhere (a fold in front of other surface)
    and are dropped before the per-pixel search.

    Args:
        tri_xy: (F, 3, 2) screen corners; contour: (F, 3) bool.
        gaps: (H + 2, W + 2) bool uncovered pixels, with a one-pixel uncovered border (outside the image).
    """
    counts = torch.nn.functional.pad(gaps.to(torch.int64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    rows, cols = gaps.shape
    result = []
    for k in range(3):
        a, b = tri_xy[:, k], tri_xy[:, (k + 1) % 3]
        # padded pixel (i + 1, j + 1) holds image pixel (i, j); its span for points within 1 px of the box
        c0 = (torch.floor(torch.minimum(a[:, 0], b[:, 0]) - 1.0) + 1).clamp(0, cols - 1).long()
        c1 = (torch.floor(torch.maximum(a[:, 0], b[:, 0]) + 1.0) + 1).clamp(0, cols - 1).long()
        r0 = (torch.floor(torch.minimum(a[:, 1], b[:, 1]) - 1.0) + 1).clamp(0, rows - 1).long()
        r1 = (torch.floor(torch.maximum(a[:, 1], b[:, 1]) + 1.0) + 1).clamp(0, rows - 1).long()
        inside_box = counts[r1 + 1, c1 + 1] - counts[r0, c1 + 1] - counts[r1 + 1, c0] + counts[r0, c0]
        result.append(inside_box > 0)
    return contour & torch.stack(result, dim=1)


def soft_silhouette(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: int | tuple[int, int],
    sigma: float = 1.0,
    fragments: Fragments | None = None,
) -> torch.Tensor:
    """Soft coverage: a sigmoid of the signed squared distance to the nearest outline edge (SoftRas-style).

    silhouette(p) = sigmoid(+d^2 / sigma) at pixel centres p covered by the mesh and sigmoid(-d^2 / sigma)
    elsewhere, where d is the distance from p to the nearest outline edge: a contour edge
    (:func:`_contour_edges`: mesh boundaries, folds between front- and back-facing faces) that is open
    where it passes p, i.e. the pixel one pixel beyond the edge point nearest p is not covered.
    Differentiable with respect to the screen positions, through each pixel's nearest outline edge.

    Plain SoftRas blurs every edge of every face and combines faces as 1 - prod_j (1 - D_j). That leaves
    seams (0.75 on an edge shared by two faces) inside single-layer surfaces and marks folds seen in front
    of other surface, and the product double counts the front and back layers that meet at a closed mesh's
    rim, which moved the 0.5 level one pixel outwards on a test sphere. Here the 0.5 level is the hard
    mask's edge and covered pixels away from the outline are exactly 1.

    Only pixels within ``sqrt(sigma * ln(1 / eps))`` of the outline (3.4 px for sigma = 1,
    eps = ``_SILHOUETTE_EPS``) go through autograd, one edge each, so memory stays bounded; covered pixels
    farther in are exactly 1 and uncovered ones farther out exactly 0.

    Args:
        screen_vertices, faces, image_size: as for :func:`rasterize`.
        sigma: blur in square pixels; smaller is sharper.
        fragments: ``rasterize(screen_vertices, faces, image_size)`` if the caller has it (saves a pass).

    Returns:
        (H, W) in [0, 1], dtype of ``screen_vertices``.
    """
    _check_inputs(screen_vertices, faces)
    size = height, width = _size(image_size)
    radius2 = sigma * math.log(1.0 / _SILHOUETTE_EPS)
    with torch.no_grad():
        if fragments is None:
            fragments = rasterize(screen_vertices, faces, size)
        covered = fragments.mask
        if covered.shape != size:
            raise ValueError(f"fragments are {tuple(covered.shape)} pixels, not {size}")
        sv = screen_vertices.detach().to(torch.float64)
        valid = _valid_faces(sv, faces)
        tri_xy = sv[faces][..., :2]  # (F, 3, 2)
        gaps = torch.nn.functional.pad(~covered, (1, 1, 1, 1), value=True)  # outside the image is uncovered
        contour = _contour_edges(tri_xy, faces, valid, len(screen_vertices))
        face_ids = torch.nonzero(valid).flatten()
        usable = _maybe_open(tri_xy[face_ids], contour[face_ids], gaps)  # (Fv, 3)
        face_ids, usable = face_ids[usable.any(dim=1)], usable[usable.any(dim=1)]
        table = _edge_table(tri_xy[face_ids], usable)
        gaps = gaps.reshape(-1)
        best_dist2 = torch.full((height * width,), math.inf, dtype=torch.float64, device=sv.device)
        best_edge = torch.full((height * width,), -1, dtype=torch.int64, device=sv.device)  # face * 3 + edge
        for local, col, row in _pixel_pairs(tri_xy[face_ids], math.sqrt(radius2), size):
            t = table[:, local]  # (21, K)
            x, y = col.double() + 0.5, row.double() + 0.5
            dist2, edge = torch.full_like(x, math.inf), torch.zeros_like(col)
            for k in range(3):
                ax, ay, ex, ey, nx, ny, edge_usable = t[7 * k : 7 * k + 7]
                dx, dy = _nearest_on_segment(x, y, ax, ay, ex, ey)
                # open here: the pixel one pixel beyond the nearest edge point is uncovered
                beyond_col = (torch.floor(x - dx + nx) + 1).clamp(0, width + 1).long()
                beyond_row = (torch.floor(y - dy + ny) + 1).clamp(0, height + 1).long()
                open_ = (edge_usable > 0) & gaps[beyond_row * (width + 2) + beyond_col]
                d2 = torch.where(open_, dx * dx + dy * dy, math.inf)
                closer = d2 < dist2
                dist2, edge = torch.where(closer, d2, dist2), torch.where(closer, k, edge)
            near = dist2 < radius2
            best_dist2, best_edge = _merge_nearest(
                best_dist2, best_edge, (row * width + col)[near], dist2[near], (face_ids[local] * 3 + edge)[near]
            )
        pixel = torch.nonzero(best_edge >= 0).flatten()
        face, k = best_edge[pixel] // 3, best_edge[pixel] % 3
        sign = torch.where(covered.reshape(-1)[pixel], 1.0, -1.0).to(screen_vertices.dtype)

    a = screen_vertices[faces[face, k]]  # (K, 3), with gradient
    b = screen_vertices[faces[face, (k + 1) % 3]]
    px, py = _pixel_centres(pixel, width, screen_vertices.dtype)
    dx, dy = _nearest_on_segment(px, py, a[:, 0], a[:, 1], b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
    soft = torch.sigmoid(sign * (dx * dx + dy * dy) / sigma)
    silhouette = covered.reshape(-1).to(screen_vertices.dtype).index_copy(0, pixel, soft)
    return silhouette.reshape(height, width)


# ---------------------------------------------------------------------------------------------- shading
@dataclass(frozen=True)
class Light:
    """A directional light fixed to the camera, plus ambient light.

    Attributes:
        direction: towards the light, in the camera's (right, up, forward) frame; the default comes from
            above and slightly to the right of the camera, which gives shape cues on a frontal face.
        ambient: light every visible surface receives.
        diffuse: strength of the Lambertian term.
    """

    direction: tuple[float, float, float] = (0.3, 0.5, -1.0)
    ambient: float = 0.3
    diffuse: float = 0.7


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) unit area-weighted vertex normals of (V, 3) vertices and (F, 3) faces; differentiable."""
    tri = vertices[faces]
    face_normals = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    corner_normals = face_normals.repeat_interleave(3, dim=0)  # (3F, 3), one per face corner
    normals = vertices.new_zeros(vertices.shape).index_add(0, faces.reshape(-1), corner_normals)
    return normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def shade(
    fragments: Fragments,
    faces: torch.Tensor,
    vertices: torch.Tensor,
    screen_vertices: torch.Tensor,
    camera: PerspectiveCamera,
    albedo: torch.Tensor | None = None,
    light: Light = Light(),
) -> torch.Tensor:
    """Lambertian RGB image of a rasterized mesh, differentiable with respect to vertices and albedo.

    Lighting is two-sided (|n . l|) so that meshes with inward winding, common in the wild, are not
    rendered black.

    Args:
        fragments: :func:`rasterize` of ``screen_vertices``.
        faces: (F, 3) int64.
        vertices: (V, 3) world positions (for normals).
        screen_vertices: (V, 3) ``camera.project(vertices)``.
        camera: gives the light's world direction.
        albedo: (V, 3) vertex colours in [0, 1]; light grey when None.

    Returns:
        (H, W, 3) colours, 0 on background.
    """
    normals = vertex_normals(vertices, faces)
    if albedo is None:
        albedo = vertices.new_full(vertices.shape, 0.8)
    pixels = interpolate(fragments, faces, torch.cat([normals, albedo], dim=1), screen_vertices)
    normal = pixels[..., :3] / pixels[..., :3].norm(dim=-1, keepdim=True).clamp(min=1e-12)
    to_light = torch.as_tensor(
        camera.world_to_view.T @ np.asarray(light.direction), dtype=vertices.dtype, device=vertices.device
    )
    to_light = to_light / to_light.norm()
    intensity = light.ambient + light.diffuse * (normal @ to_light).abs()
    return pixels[..., 3:] * intensity[..., None]  # background albedo interpolates to 0


# ------------------------------------------------------------------------------------ 2D displacement
def render_displacement(
    vertices: torch.Tensor,
    deformed_vertices: torch.Tensor,
    faces: torch.Tensor,
    camera: PerspectiveCamera,
    fragments: Fragments | None = None,
) -> torch.Tensor:
    """Per-pixel 2D displacement (optical flow) from the neutral to the deformed mesh (seed appendix B).

    The neutral and deformed vertices are projected, their per-vertex screen difference becomes a vertex
    attribute, and the NEUTRAL mesh is rasterized with it, so each covered pixel says where the surface
    point it shows moves to. Units are pixels of ``camera.image_size`` (x right, y down), the convention of
    optical-flow estimators such as RAFT; the seed's ``flow / res * 0.5 + 0.5`` only squeezes it into a
    texture's 0..1 range, and :mod:`facerig.trainer.losses` applies the equivalent scale itself.

    Args:
        vertices: (V, 3) neutral world positions.
        deformed_vertices: (V, 3) or (P, V, 3) posed positions; gradients flow back to them.
        faces: (F, 3) int64.
        camera: the view.
        fragments: a rasterization of the neutral under ``camera`` to reuse (see :func:`render_views`).

    Returns:
        (H, W, 2), or (P, H, W, 2) for batched poses; 0 on background (``fragments.mask`` is False).
    """
    batched = deformed_vertices.ndim == 3
    posed = deformed_vertices if batched else deformed_vertices[None]
    if posed.shape[1:] != vertices.shape:
        raise ValueError(
            f"deformed_vertices {tuple(deformed_vertices.shape)} do not match vertices {tuple(vertices.shape)}"
        )
    neutral_screen = camera.project(vertices)
    if fragments is None:
        fragments = rasterize(neutral_screen, faces, camera.image_size)
    flow = camera.project(posed)[..., :2] - neutral_screen[:, :2]  # (P, V, 2)
    poses = flow.shape[0]
    attributes = flow.permute(1, 0, 2).reshape(len(vertices), poses * 2)  # one interpolation for all poses
    image = interpolate(fragments, faces, attributes)  # (H, W, P * 2)
    image = image.reshape(*fragments.image_size, poses, 2).permute(2, 0, 1, 3)
    return image if batched else image[0]


@dataclass(frozen=True)
class RenderedViews:
    """What training compares for a batch of P poses of one mesh under one camera.

    Attributes:
        image: (P, H, W, 3) shaded renders of the posed meshes.
        mask: (P, H, W) soft silhouettes of the posed meshes.
        flow: (P, H, W, 2) displacement fields in pixels, defined where ``neutral.mask`` is True.
        neutral: the rasterization of the neutral mesh shared by all flows.
    """

    image: torch.Tensor
    mask: torch.Tensor
    flow: torch.Tensor
    neutral: Fragments


def render_views(
    vertices: torch.Tensor,
    deformed_vertices: torch.Tensor,
    faces: torch.Tensor,
    camera: PerspectiveCamera,
    *,
    sigma: float = 1.0,
    albedo: torch.Tensor | None = None,
    light: Light = Light(),
) -> RenderedViews:
    """Image, soft mask and flow for each of P poses; the neutral is rasterized once for all flows.

    Args:
        vertices: (V, 3) neutral world positions.
        deformed_vertices: (P, V, 3) posed positions; every output is differentiable with respect to them.
        faces: (F, 3) int64.
        camera: the view (usually :func:`frontal_camera` of the neutral).
        sigma: soft-silhouette blur in square pixels.
        albedo: (V, 3) vertex colours, light grey when None.
    """
    if deformed_vertices.ndim != 3:
        raise ValueError(f"deformed_vertices must be (P, V, 3), got {tuple(deformed_vertices.shape)}")
    size = camera.image_size
    neutral = rasterize(camera.project(vertices), faces, size)
    flow = render_displacement(vertices, deformed_vertices, faces, camera, fragments=neutral)
    images, masks = [], []
    for posed in deformed_vertices:
        screen = camera.project(posed)
        fragments = rasterize(screen, faces, size)
        images.append(shade(fragments, faces, posed, screen, camera, albedo, light))
        masks.append(soft_silhouette(screen, faces, size, sigma, fragments))
    return RenderedViews(image=torch.stack(images), mask=torch.stack(masks), flow=flow, neutral=neutral)
