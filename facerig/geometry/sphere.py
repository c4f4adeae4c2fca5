"""Algebraic (Kåsa) sphere fits: the cranium of the canonical frame and the eyeballs use the same fit."""

from __future__ import annotations

import numpy as np

__all__ = ["SphereFitter", "fit_sphere"]

# A fit whose normal equations are this badly conditioned has no unique sphere (coplanar or collinear
# points). Refusing it, instead of trusting whatever the LAPACK kernel returns for a singular system, keeps
# the result the same on every CPU.
MAX_CONDITION = 1e10


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
