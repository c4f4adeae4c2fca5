"""Exporter test rigs built from real ICT-FaceKit data, without the network.

The neutral is the ICT head (26,719 vertices, 17 components, quads + triangles, face-varying UVs, 12 usemtl
groups, centimetres, Y-up). Shape deltas are real ICT expressions (expression OBJ − neutral), so shapes are
sparse and move some components and not others, as network output for a FACS pose does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facerig.io import load_mesh
from facerig.mesh import Mesh
from facerig.rig import Rig

REPO_ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_SCRIPT = Path(__file__).with_name("gltf_validate.mjs")

# FACS full name -> ICT expressions whose deltas sum to it (the vocabulary's ICT map, for the shapes used here).
FACS_FROM_ICT = {
    "JawDrop": ("jawOpen",),
    "LeftEyeClosed": ("eyeBlink_L",),
    "RightEyeClosed": ("eyeBlink_R",),
    "LeftLipCornerPuller": ("mouthSmile_L",),
    "RightLipCornerPuller": ("mouthSmile_R",),
    "EyesLookLeft": ("eyeLookOut_L", "eyeLookIn_R"),
    "LeftEyeUpperLidRaiser": ("eyeWide_L",),
    "Pucker": ("mouthPucker",),
    # ICT has no Corrugator, so a ground-truth rig built from ICT carries it as an all-zero shape.
    "Corrugator": (),
}
# ICT's expressions compose linearly, so a real combined pose has no corrective; a scaled real expression
# stands in for the corrective's (equally sparse, equally local) delta.
CORRECTIVE = ("JawDrop_LeftLipCornerPuller", ("JawDrop", "LeftLipCornerPuller"), "mouthStretch_L", 0.5)

# Components of the small rig (0-based inclusive vertex ranges, from data/README.md): the left eye region.
LEFT_EYE_RANGES = ((13294, 13677), (21451, 23020), (24591, 24794), (24999, 25022), (25047, 25198), (25351, 26034))


# ---------------------------------------------------------------------------------------------- rigs
def subset_mesh(mesh: Mesh, keep: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """The polygons whose corners all lie in the (V,) bool ``keep``, re-indexed; and the kept vertex ids."""
    counts = mesh.face_vertex_counts
    poly_of_corner = np.repeat(np.arange(mesh.n_polygons), counts)
    polygon_ok = np.ones(mesh.n_polygons, bool)
    np.logical_and.at(polygon_ok, poly_of_corner, keep[mesh.face_vertex_indices])
    corner_ok = polygon_ok[poly_of_corner]
    kept = np.flatnonzero(keep)
    new_index = np.full(mesh.n_vertices, -1, np.int64)
    new_index[kept] = np.arange(len(kept))
    used_groups = np.unique(mesh.polygon_groups[polygon_ok])
    group_map = np.full(len(mesh.group_names), -1)
    group_map[used_groups] = np.arange(len(used_groups))
    subset = Mesh(
        mesh.vertices[kept],
        counts[polygon_ok],
        new_index[mesh.face_vertex_indices[corner_ok]],
        uvs=mesh.uvs,
        uv_indices=mesh.uv_indices[corner_ok],
        polygon_groups=group_map[mesh.polygon_groups[polygon_ok]],
        group_names=tuple(mesh.group_names[g] for g in used_groups),
        name=f"{mesh.name}_subset",
        source=mesh.source,
    )
    return subset, kept


@pytest.fixture(scope="session")
def ict_neutral(ict_neutral_path: Path) -> Mesh:
    return load_mesh(ict_neutral_path)


@pytest.fixture(scope="session")
def ict_deltas(ict_dir: Path, ict_neutral: Mesh) -> dict[str, np.ndarray]:
    """ICT expression name -> (V, 3) float32 delta, for the expressions the test rigs use."""
    names = {n for sources in FACS_FROM_ICT.values() for n in sources} | {CORRECTIVE[2]}
    return {n: (load_mesh(ict_dir / f"{n}.obj").vertices - ict_neutral.vertices).astype(np.float32) for n in names}


def make_rig(mesh: Mesh, ict_deltas: dict[str, np.ndarray], kept: np.ndarray | None = None) -> Rig:
    """A rig of the FACS_FROM_ICT shapes plus one corrective, on ``mesh`` (``kept``: its ICT vertex ids)."""
    rows = slice(None) if kept is None else kept
    names, deltas = [], []
    for facs, sources in FACS_FROM_ICT.items():
        names.append(facs)
        zero = np.zeros((mesh.n_vertices, 3), np.float32)
        deltas.append(sum((ict_deltas[s][rows] for s in sources), zero))
    corrective, drivers, source, scale = CORRECTIVE
    names.append(corrective)
    deltas.append(scale * ict_deltas[source][rows])
    return Rig(
        neutral=mesh,
        shape_names=tuple(names),
        deltas=np.stack(deltas),
        corrective_recipes={corrective: drivers},
        metadata={"model": "ict-ground-truth", "note": "exporter test rig"},
    )


@pytest.fixture(scope="session")
def full_rig(ict_neutral: Mesh, ict_deltas: dict[str, np.ndarray]) -> Rig:
    """The whole 26,719-vertex ICT head (17 components, 12 groups) with 10 shapes, one a corrective."""
    return make_rig(ict_neutral, ict_deltas)


@pytest.fixture(scope="session")
def small_rig(ict_neutral: Mesh, ict_deltas: dict[str, np.ndarray]) -> Rig:
    """The left-eye components (3,018 vertices, 7 groups) with the same 10 shapes.

    Mouth shapes move these vertices only by ICT's 1e-5 cm OBJ rounding noise, and Corrugator not at all.
    """
    keep = np.zeros(ict_neutral.n_vertices, bool)
    for lo, hi in LEFT_EYE_RANGES:
        keep[lo : hi + 1] = True
    mesh, kept = subset_mesh(ict_neutral, keep)
    return make_rig(mesh, ict_deltas, kept)


# ---------------------------------------------------------------------------------------------- validator
@pytest.fixture(scope="session")
def gltf_validator():
    """A function running the Khronos glTF-Validator (npm) on a .glb/.gltf file; returns its JSON report."""
    assert (REPO_ROOT / "node_modules" / "gltf-validator").is_dir(), "run `npm ci` in the repository root"

    def validate(path: Path) -> dict:
        result = subprocess.run(
            ["node", str(VALIDATOR_SCRIPT), str(path)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return validate
