"""Where 2D targets come from (SPEC §4 "Unrigged heads", §5).

Rigged heads get their 2D targets by rendering their ground-truth poses (:func:`render_targets`). Heads
without a rig need a :class:`TargetSource`. The paper's source is a generative 2D face animator plus an
optical-flow estimator, whose weights cannot be downloaded here; the pipeline stays pluggable:

- :class:`DiskTargets` reads precomputed targets (from such models, or anything else) from a folder.
- :class:`TransferTargets`, the default, needs no external weights: it borrows the ground truth of the
  nearest rigged head. Both heads are in the canonical frame (centred, scaled, +Y up, face along +Z), so
  the same frontal camera frames both alike. The rigged head is aligned to the unrigged one by an affine fit
  of their landmarks when both have the same landmark set (else used as is), every unrigged vertex takes
  the displacement of its nearest aligned rigged vertex, and the result is rendered like a rigged head's GT:
  image, silhouette and flow. It is a deformation-transfer prior, blurrier than a learned animator, but its
  flow and images are mutually consistent and it exists for any head.

All targets are made under :func:`facerig.render.renderer.frontal_camera` of the head's canonical vertices with the
stage's image size and field of view; :class:`DiskTargets` files must be made the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from facerig.errors import DatasetError
from facerig.render.renderer import PerspectiveCamera, rasterize, render_views
from facerig.trainer.heads import Head

_CHAMFER_POINTS = 512  # vertices compared per head when choosing the nearest rigged head without landmarks


@dataclass(frozen=True)
class Targets2D:
    """2D supervision for B poses of one head under one camera.

    Attributes:
        image: (B, H, W, 3) float32 colours in [0, 1].
        mask: (B, H, W) float32 silhouettes in [0, 1].
        flow: (B, H, W, 2) float32 displacement fields in pixels, defined where ``neutral_mask`` is True.
        neutral_mask: (H, W) bool coverage of the neutral under the camera.
        landmarks: (B, L, 2) float32 landmark pixels of the posed head, or None when not known.
    """

    image: torch.Tensor
    mask: torch.Tensor
    flow: torch.Tensor
    neutral_mask: torch.Tensor
    landmarks: torch.Tensor | None


class TargetSource(Protocol):
    """Supplies 2D targets for heads without a rig."""

    def poses(self, head: Head) -> np.ndarray:
        """(P, A) float32 activation rows this source has targets for."""
        ...

    def targets(self, head: Head, rows: np.ndarray, camera: PerspectiveCamera, sigma: float) -> Targets2D:
        """Targets of the poses ``poses(head)[rows]`` under ``camera`` (``sigma``: silhouette blur)."""
        ...


@torch.no_grad()
def render_targets(
    vertices: torch.Tensor,
    deltas: torch.Tensor,
    faces: torch.Tensor,
    camera: PerspectiveCamera,
    sigma: float,
    landmarks: torch.Tensor | None = None,
) -> Targets2D:
    """Render the 2D targets of known displacements (a rigged head's ground truth).

    Args:
        vertices: (V, 3) neutral; deltas: (B, V, 3) displacements; faces: (F, 3) int64.
        landmarks: (L,) int64 vertex indices whose projections become the landmark targets.
    """
    posed = vertices[None] + deltas
    views = render_views(vertices, posed, faces, camera, sigma=sigma)
    points = None if landmarks is None or len(landmarks) == 0 else camera.project(posed[:, landmarks])[..., :2]
    return Targets2D(views.image, views.mask, views.flow, views.neutral.mask, points)


class TransferTargets:
    """The default source: the nearest rigged head's ground truth, transferred and rendered (module docstring)."""

    def __init__(self, bank: Sequence[Head]) -> None:
        """``bank``: rigged heads to borrow from (a handful is enough; each is kept in memory)."""
        self.bank = [head for head in bank if head.rigged and head.labelled.any()]
        if not self.bank:
            raise DatasetError("TransferTargets needs at least one rigged head with labelled poses")
        self._nearest: dict[str, int] = {}

    def poses(self, head: Head) -> np.ndarray:
        donor = self.bank[self._donor(head)]
        return donor.activations[donor.labelled]

    def targets(self, head: Head, rows: np.ndarray, camera: PerspectiveCamera, sigma: float) -> Targets2D:
        donor = self.bank[self._donor(head)]
        donor_deltas = donor.deltas[donor.labelled][rows]  # (B, Vd, 3)
        linear, offset = _landmark_affine(donor, head)
        aligned = donor.vertices @ linear.T + offset
        _, nearest = cKDTree(aligned).query(head.vertices)
        deltas = donor_deltas[:, nearest] @ linear.T  # displacements live in the aligned frame too
        vertices = torch.from_numpy(head.vertices)
        landmarks = torch.from_numpy(head.landmarks) if len(head.landmarks) else None
        return render_targets(vertices, torch.from_numpy(deltas.astype(np.float32)), torch.from_numpy(head.faces),
                              camera, sigma, landmarks)

    def _donor(self, head: Head) -> int:
        if head.id not in self._nearest:
            self._nearest[head.id] = int(np.argmin([_distance(donor, head) for donor in self.bank]))
        return self._nearest[head.id]


class DiskTargets:
    """Precomputed targets read from a folder.

    Layout: ``<root>/<head id>/targets.npz`` with
    ``activations`` (P, A) float32, ``image`` (P, H, W, 3) uint8 or float in [0, 1], ``mask`` (P, H, W) float
    in [0, 1], ``flow`` (P, H, W, 2) float pixels (x right, y down, neutral to posed, as
    :func:`facerig.render.renderer.render_displacement`), optional ``landmarks`` (P, L, 2) float pixels, and
    ``fov_degrees`` (scalar) — all made under ``frontal_camera(vertices, H, fov_degrees)`` of the head's
    canonical vertices.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError("2D target folder does not exist", self.root)

    def poses(self, head: Head) -> np.ndarray:
        with np.load(self._path(head), allow_pickle=False) as data:
            return np.asarray(data["activations"], np.float32)

    def targets(self, head: Head, rows: np.ndarray, camera: PerspectiveCamera, sigma: float) -> Targets2D:
        path = self._path(head)
        try:
            with np.load(path, allow_pickle=False) as data:
                image = np.asarray(data["image"][rows])
                mask, flow = np.asarray(data["mask"][rows], np.float32), np.asarray(data["flow"][rows], np.float32)
                points = np.asarray(data["landmarks"][rows], np.float32) if "landmarks" in data else None
                fov = float(data["fov_degrees"])
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"unreadable 2D targets: {error}", path) from None
        if image.shape[1:3] != camera.image_size or abs(fov - camera.fov_degrees) > 1e-6:
            raise DatasetError(
                f"targets are {image.shape[1:3]} px at fov {fov}, the stage renders {camera.image_size} at "
                f"fov {camera.fov_degrees}", path)
        image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
        vertices = torch.from_numpy(head.vertices)
        neutral = rasterize(camera.project(vertices), torch.from_numpy(head.faces), camera.image_size).mask
        return Targets2D(torch.from_numpy(image), torch.from_numpy(mask), torch.from_numpy(flow), neutral,
                         None if points is None else torch.from_numpy(points))

    def _path(self, head: Head) -> Path:
        path = self.root / head.id / "targets.npz"
        if not path.is_file():
            raise DatasetError(f"no 2D targets for head {head.id!r}", path)
        return path


# ----------------------------------------------------------------------------------------------- helpers
def _same_landmarks(a: Head, b: Head) -> bool:
    return len(a.landmarks) >= 4 and len(a.landmarks) == len(b.landmarks)


def _landmark_affine(donor: Head, head: Head) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) linear part and (3,) offset mapping the donor's landmarks onto the head's (identity without)."""
    if not _same_landmarks(donor, head):
        return np.eye(3), np.zeros(3)
    source = donor.vertices[donor.landmarks].astype(np.float64)
    target = head.vertices[head.landmarks].astype(np.float64)
    homogeneous = np.concatenate([source, np.ones((len(source), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(homogeneous, target, rcond=None)  # (4, 3)
    return solution[:3].T, solution[3]


def _distance(donor: Head, head: Head) -> float:
    """How unlike two canonical heads are: landmark RMS when comparable, else a subsampled chamfer distance."""
    if _same_landmarks(donor, head):
        gap = donor.vertices[donor.landmarks] - head.vertices[head.landmarks]
        return float(np.sqrt((gap**2).sum(axis=1).mean()))
    picks = [v[np.linspace(0, len(v) - 1, min(len(v), _CHAMFER_POINTS)).astype(int)] for v in (donor.vertices, head.vertices)]
    there, _ = cKDTree(picks[1]).query(picks[0])
    back, _ = cKDTree(picks[0]).query(picks[1])
    return float(there.mean() + back.mean())


def write_disk_targets(root: str | Path, head_id: str, activations: np.ndarray, targets: Targets2D,
                       fov_degrees: float) -> Path:
    """Write one head's targets in the :class:`DiskTargets` layout (atomically); returns the file."""
    from facerig.fileio import atomic_path

    path = Path(root) / head_id / "targets.npz"
    arrays = {
        "activations": np.asarray(activations, np.float32),
        "image": targets.image.numpy().astype(np.float32),
        "mask": targets.mask.numpy().astype(np.float32),
        "flow": targets.flow.numpy().astype(np.float32),
        "fov_degrees": np.float32(fov_degrees),
    }
    if targets.landmarks is not None:
        arrays["landmarks"] = targets.landmarks.numpy().astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path

