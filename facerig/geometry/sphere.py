"""Algebraic (Kåsa) sphere fits: the cranium of the canonical frame and the eyeballs use the same fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SphereFitter", "SpherePart", "fit_sphere", "sphere_parts"]

# A fit whose normal equations are this badly conditioned has no unique sphere (coplanar or collinear
# points). Refusing it, instead of trusting whatever the LAPACK kernel returns for a singular system, keeps
# the result the same on every CPU.
MAX_CONDITION = 1e10

# What counts as a sphere-like part (an eyeball, found by :func:`sphere_parts`).
MIN_VERTICES = 20  # enough to tell a sphere; smaller sphere-like pieces only join a part they are concentric with
MIN_PIECE_VERTICES = 6
MAX_SPHERE_RESIDUAL = 0.08  # RMS distance to the fitted sphere / radius: a cornea's bulge is about 0.03
MAX_DIRECTION_BIAS = 0.4  # |mean unit direction from the centre|: 0 for a whole sphere, ~0.5 for a hemisphere
# A part open at the back (a game head's eyeball modelled as its front half: the back is never seen) counts too, when
# the caller knows where the front is: it must cover the front pole and reach back to the sphere's equator. A cap facing
# any other way is an eye socket's lining, and a shallower one (a cornea, an eye's wet-surface shell) is no eyeball.
# (The mean direction cannot tell: a cornea's dense vertices pull an ICT eyeball's front half to 0.77, near a cap's.)
FRONT_CAP_POLE_DEGREES = 20.0
FRONT_CAP_REACH_DEGREES = 80.0
CONCENTRIC = 0.25  # centres closer than this many radii: pieces of one part


class SphereFitter:
    """Weighted algebraic sphere fits to one point set: minimise Σ w (|p|² − 2 c·p − k)².

    The per-point features [x, y, z, 1, |p|²] are built once, so each fit is one (5, N) @ (N, 5) product
    and a 4x4 solve; robust fits (the canonical frame's reweighting loop) run it tens of times.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray | None = None) -> None:
        points = np.asarray(points, np.float64)
        weights = np.ones(len(points)) if weights is None else np.asarray(weights, np.float64)
        # Centre and normalise once for conditioning (any unit, any offset).
        self.offset = weights @ points / weights.sum()
        q = points - self.offset
        self.unit = float(np.sqrt(weights @ np.einsum("ij,ij->i", q, q) / weights.sum())) or 1.0
        q = q / self.unit
        self.features = np.concatenate([q, np.ones((len(q), 1)), np.einsum("ij,ij->i", q, q)[:, None]], axis=1)
        self.weights = weights / weights.sum()

    def fit(self, mask: np.ndarray | float = 1.0) -> tuple[np.ndarray, float]:
        """Fit with weights ``self.weights * mask``; returns (centre, radius) in input units, NaN if degenerate."""
        weighted = self.features * (self.weights * mask)[:, None]
        moments = weighted.T @ self.features  # (5, 5)
        # Normal equations of |q|² ≈ 2 c·q + k in the unknowns (c, k).
        lhs = moments[:4, :4] * np.array([2.0, 2.0, 2.0, 1.0])
        if not np.isfinite(lhs).all() or np.linalg.cond(lhs) > MAX_CONDITION:
            return np.full(3, np.nan), float("nan")
        c0, c1, c2, k = np.linalg.solve(lhs, moments[:4, 4])
        center = np.array([c0, c1, c2])
        radius_sq = k + center @ center
        if not (np.isfinite(radius_sq) and radius_sq > 0):
            return np.full(3, np.nan), float("nan")
        return center * self.unit + self.offset, float(np.sqrt(radius_sq)) * self.unit

    def distances(self, center: np.ndarray) -> np.ndarray:
        """(N,) distance of each point to ``center`` (input units)."""
        c = (center - self.offset) / self.unit
        squared = self.features @ np.array([-2 * c[0], -2 * c[1], -2 * c[2], c @ c, 1.0])
        return np.sqrt(np.clip(squared, 0.0, None)) * self.unit


def fit_sphere(points: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Least-squares sphere of (N, 3) points: (centre, radius), NaN when the points do not fix one."""
    return SphereFitter(points, weights).fit()


@dataclass(frozen=True, eq=False)
class SpherePart:
    """A closed, sphere-like part of a mesh (an eyeball).

    Attributes:
        vertices: (N,) int64 indices of its vertices in the mesh it was found on.
        centre: (3,) float64 centre of the fitted sphere, in that mesh's coordinates.
        radius: radius of the fitted sphere.
    """

    vertices: np.ndarray
    centre: np.ndarray
    radius: float


def sphere_parts(points: np.ndarray, component_labels: np.ndarray,
                 radius_range: tuple[float, float], front: np.ndarray | None = None) -> list[SpherePart]:
    """Closed, sphere-like components whose radius lies in ``radius_range``, concentric ones merged into one
    (an eyeball's sclera shell around its iris piece).

    Args:
        points: (V, 3) vertex positions, in the units of ``radius_range``.
        component_labels: (V,) int connected component of each vertex, with vertices split along UV or normal
            seams counted as one (:attr:`Mesh.component_labels` of a welded mesh).
        radius_range: (smallest, largest) radius of a part.
        front: (3,) unit direction the head looks along, when known: a sphere open at the back, down to a
            hemisphere facing it, counts too (:data:`FRONT_CAP_REACH_DEGREES`).
    """
    candidates = []
    order = np.argsort(component_labels, kind="stable")
    starts = np.flatnonzero(np.diff(component_labels[order], prepend=-1))
    for vertices in np.split(order, starts[1:]):
        if len(vertices) < MIN_PIECE_VERTICES:
            continue
        piece = points[vertices].astype(np.float64)
        centre, radius = fit_sphere(piece)
        if not radius_range[0] <= radius <= radius_range[1]:
            continue
        offsets = piece - centre
        distances = np.linalg.norm(offsets, axis=1)
        if np.sqrt(np.mean((distances - radius) ** 2)) > MAX_SPHERE_RESIDUAL * radius:
            continue
        directions = offsets / distances[:, None]
        if np.linalg.norm(directions.mean(axis=0)) > MAX_DIRECTION_BIAS and not _front_cap(directions, front):
            continue  # a cap or a shell around a sphere (the eye socket's lining), not a whole sphere
        candidates.append(SpherePart(vertices, centre, radius))
    return _merge_concentric(candidates, points)


def _front_cap(directions: np.ndarray, front: np.ndarray | None) -> bool:
    """Whether a part whose points lie in ``directions`` (unit, from its centre) is a sphere open at the back."""
    if front is None:
        return False
    cosines = directions @ front
    return bool(cosines.max() >= np.cos(np.radians(FRONT_CAP_POLE_DEGREES))
                and cosines.min() <= np.cos(np.radians(FRONT_CAP_REACH_DEGREES)))


def _merge_concentric(candidates: list[SpherePart], points: np.ndarray) -> list[SpherePart]:
    """One part per group of concentric spheres: an eye is often a sclera shell around an iris/lens piece."""
    groups: list[list[SpherePart]] = []
    for part in sorted(candidates, key=lambda candidate: -len(candidate.vertices)):
        for group in groups:
            if np.linalg.norm(group[0].centre - part.centre) < CONCENTRIC * min(group[0].radius, part.radius):
                group.append(part)
                break
        else:
            if len(part.vertices) >= MIN_VERTICES:
                groups.append([part])
    merged = []
    for group in groups:
        vertices = np.sort(np.concatenate([part.vertices for part in group]))
        centre, radius = fit_sphere(points[vertices].astype(np.float64))
        merged.append(SpherePart(vertices, centre, radius))
    return merged
