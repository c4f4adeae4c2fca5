"""Seconds per part of `facerig.nn.operators` against vertex count, and what the coarse eigen path costs in accuracy.

Meshes: geodesic spheres of about 1.7k, 5k, 10k and 27k vertices (radius 0.5: head-sized in the canonical
frame), plus the ICT-FaceKit neutral (26,719 vertices, 56 components) scaled to about 1 unit. Per mesh one
row: Laplacian + mass, normals + gradient, exact eigen-solve, coarse eigen path (``--eig-max-vertices``), the
whole cold `compute_operators` with the coarse path where it applies, and the coarse path's error against the
exact solve: largest relative eigenvalue error over the non-zero eigenvalues, and the largest principal angle
between the exact and approximate eigenspaces up to the last clear spectral gap at or below K.

    python bench/operators_speed.py [--k 64] [--eig-max-vertices 4000] [--threads 1] [--no-ict]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facerig.geometry.primitives import geodesic_sphere  # noqa: E402
from facerig.nn.operators import (  # noqa: E402
    _clean_triangles,
    compute_operators,
    cotan_laplacian,
    laplace_eigenpairs,
    tangent_gradient,
    vertex_normals,
)

SPHERE_FREQUENCIES = (13, 22, 32, 52)  # 10 f^2 + 2 vertices: 1,692 / 4,842 / 10,242 / 27,042


def ict_neutral() -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # the test suite's data locator: unpacks ICT-FaceKit once

    from facerig.io import load_mesh

    mesh = load_mesh(conftest.ict_dir.__wrapped__() / "generic_neutral_mesh.obj")
    vertices = (mesh.vertices - mesh.vertices.mean(axis=0)) / np.ptp(mesh.vertices, axis=0).max()
    return vertices, np.asarray(mesh.triangles)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def accuracy(exact: tuple, approx: tuple, mass: np.ndarray) -> tuple[float, float, int]:
    """(largest relative error of the non-zero eigenvalues, largest principal angle in degrees, its dimension)."""
    (evals, evecs), (approx_evals, approx_evecs) = exact, approx
    nonzero = evals > 1e-6 * evals.max()
    relative = float((np.abs(approx_evals - evals)[nonzero] / evals[nonzero]).max())
    # Compare subspaces only up to a clear gap: inside a (near-)degenerate cluster single vectors are arbitrary.
    gaps = [q for q in range(1, len(evals)) if evals[q] - evals[q - 1] > 0.02 * max(evals[q], 1e-12)]
    q = max(gaps) if gaps else len(evals)
    cosines = np.linalg.svd(evecs[:, :q].T @ (mass[:, None] * approx_evecs[:, :q]), compute_uv=False)
    return relative, float(np.degrees(np.arccos(min(1.0, cosines.min())))), q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=64, help="eigenpairs")
    parser.add_argument("--eig-max-vertices", type=int, default=4000, help="coarse eigen path above this size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (BLAS threads: set OMP_NUM_THREADS)")
    parser.add_argument("--no-ict", action="store_true", help="spheres only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    meshes = [(f"sphere f={f}", *geodesic_sphere(f)) for f in SPHERE_FREQUENCIES]
    if not args.no_ict:
        meshes.append(("ICT neutral", *ict_neutral()))

    print(f"k = {args.k}, eig_max_vertices = {args.eig_max_vertices}; seconds")
    header = (
        f"{'mesh':<14}{'V':>7}{'laplacian':>11}{'gradient':>10}{'eig exact':>11}{'eig coarse':>12}"
        f"{'cold total':>12}{'eval rel err':>14}{'angle (deg)':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, vertices, triangles in meshes:
        vertices = vertices.astype(np.float64)
        clean = _clean_triangles(np.asarray(triangles, np.int64))
        (laplacian, mass), t_lap = timed(cotan_laplacian, vertices, clean)
        normals, t_normals = timed(vertex_normals, vertices, clean)
        _, t_grad = timed(tangent_gradient, vertices, clean, normals)
        exact, t_exact = timed(laplace_eigenpairs, vertices, clean, laplacian, mass, args.k)
        big = len(vertices) > args.eig_max_vertices
        if big:
            approx, t_coarse = timed(
                laplace_eigenpairs, vertices, clean, laplacian, mass, args.k, eig_max_vertices=args.eig_max_vertices
            )
            relative, angle, q = accuracy(exact, approx, mass)
            error_columns = f"{relative:>14.1e}{angle:>9.3f} ({q})"
        else:
            t_coarse, error_columns = float("nan"), f"{'-':>14}{'-':>13}"
        _, t_total = timed(
            compute_operators, vertices, triangles, args.k, eig_max_vertices=args.eig_max_vertices if big else None
        )
        print(
            f"{name:<14}{len(vertices):>7}{t_lap:>11.3f}{t_normals + t_grad:>10.3f}{t_exact:>11.3f}"
            f"{t_coarse:>12.3f}{t_total:>12.3f}{error_columns}"
        )


if __name__ == "__main__":
    main()
