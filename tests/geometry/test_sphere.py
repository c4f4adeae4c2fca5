"""Sphere fits (facerig.geometry.sphere) and the canonical frame's independence of the BLAS kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from facerig.geometry import fit_sphere


def test_fit_recovers_a_known_sphere() -> None:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(500, 3))
    points = 2.5 * directions / np.linalg.norm(directions, axis=1, keepdims=True) + [1.0, -3.0, 0.5]
    centre, radius = fit_sphere(points)
    np.testing.assert_allclose(centre, [1.0, -3.0, 0.5], atol=1e-9)
    assert radius == pytest.approx(2.5, abs=1e-9)


def test_coplanar_points_fix_no_sphere() -> None:
    """Seven points of a flat panel (the unwelded robot head's largest piece) used to give whatever the
    LAPACK kernel made of a singular system; now they give NaN on every machine."""
    rng = np.random.default_rng(1)
    panel = np.column_stack([rng.uniform(0, 1, 7), rng.uniform(0, 1, 7), np.zeros(7)])
    centre, radius = fit_sphere(panel)
    assert np.isnan(radius) and np.isnan(centre).all()


_FRAME_SCRIPT = """
import json, sys
from facerig.canonical.frame import canonical_frame
from facerig.io import load_mesh
frame = canonical_frame(load_mesh(sys.argv[1], select="Head"))
print(json.dumps(frame.to_dict()))
"""


@pytest.mark.slow  # four child Python processes
def test_the_robot_frame_does_not_depend_on_the_blas_kernel(heads_dir) -> None:
    """OpenBLAS picks a kernel per CPU; the canonical frame of the robot head (a flat-shaded glTF) must not."""
    frames = []
    for coretype in (None, "Haswell", "Sandybridge", "Prescott"):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        out = subprocess.run([sys.executable, "-c", _FRAME_SCRIPT, str(heads_dir / "robot_expressive.glb")],
                             env=env, capture_output=True, text=True, check=True, timeout=120)
        frames.append(json.loads(out.stdout))
    for frame in frames[1:]:
        np.testing.assert_allclose(frame["center"], frames[0]["center"], rtol=0, atol=1e-9)
        assert frame["scale"] == pytest.approx(frames[0]["scale"], rel=1e-9)
