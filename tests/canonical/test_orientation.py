"""Up and front found from the head's geometry alone, in every axis-aligned pose of the same head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facerig.canonical.frame import axis_label, axis_rotations, parse_axis
from facerig.canonical.orientation import CONFIDENT, detect_orientation
from facerig.io import load_mesh
from facerig.mesh import Mesh

ICT_HEAD = Path(__file__).resolve().parents[2] / "examples" / "ict_head.obj"  # +Y up, face toward +Z, cm


@pytest.fixture(scope="module")
def ict_head() -> Mesh:
    return load_mesh(ICT_HEAD)


@pytest.mark.parametrize(
    ("rotation", "up", "front"),
    [
        (np.eye(3), "+Y", "+Z"),  # as modelled: OBJ/glTF convention
        (np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), "+Z", "-Y"),  # Blender/3ds Max: Z up, facing -Y
        (np.diag([-1.0, 1.0, -1.0]), "+Y", "-Z"),  # turned to face -Z
    ],
    ids=["y-up", "z-up", "facing-minus-z"],
)
def test_named_poses_of_the_ict_head(ict_head: Mesh, rotation: np.ndarray, up: str, front: str) -> None:
    found = detect_orientation(replace(ict_head, vertices=ict_head.vertices @ rotation.T))
    assert (found.up, found.front) == (up, front)
    assert found.confident and found.confidence >= CONFIDENT


def test_every_axis_aligned_pose_and_unit_gives_the_head_its_frame(ict_head: Mesh) -> None:
    up, front = parse_axis("+Y"), parse_axis("+Z")
    for index, rotation in enumerate(axis_rotations()):
        scale = (0.01, 0.1, 1.0, 10.0)[index % 4]  # m, dm, cm, mm from centimetres: the answer ignores size
        found = detect_orientation(replace(ict_head, vertices=ict_head.vertices @ rotation.T * scale + 3.0))
        assert (found.up, found.front) == (axis_label(rotation @ up), axis_label(rotation @ front)), rotation
        assert found.confident


def test_a_non_human_head_is_reported_unsure(heads_dir: Path) -> None:
    """Suzanne (a monkey: flat face, no nose) gives no clear answer, so the caller must warn."""
    found = detect_orientation(load_mesh(heads_dir / "suzanne.obj"))
    assert not found.confident and found.confidence < CONFIDENT
    assert set(found.margins) == {"lateral", "front", "up"}


@pytest.fixture(scope="module")
def sparse_lod(ict_head: Mesh) -> Mesh:
    """The example head re-meshed to 1,751 vertices, a game LOD: few, uneven vertices on the face's midline."""
    from facerig.geometry.remesh import RemeshOptions, remesh

    result = remesh(ict_head.vertices, ict_head.triangles, RemeshOptions(budget=1750), np.random.default_rng(0))
    return Mesh(result.vertices, result.face_vertex_counts, result.face_vertex_indices, name="lod")


def test_a_sparse_lod_is_not_turned_upside_down(sparse_lod: Mesh) -> None:
    """Read from the vertices, this head's midline profile had empty slices on the forehead and was found upside
    down with confidence 0.41, so it was rigged upside down (and the network barely moved it). The eyeballs above the
    nose tip now decide, on surface samples that do not depend on the tessellation."""
    up, front = parse_axis("+Y"), parse_axis("+Z")
    for rotation in axis_rotations()[::3]:
        found = detect_orientation(replace(sparse_lod, vertices=sparse_lod.vertices @ rotation.T))
        assert (found.up, found.front) == (axis_label(rotation @ up), axis_label(rotation @ front)), rotation
        assert found.confident and found.up_cue == "eyes"


def test_without_eyeballs_a_sparse_head_is_found_right_or_reported_unsure(sparse_lod: Mesh) -> None:
    """The skin alone (eyeballs, teeth and lashes removed) leaves the profile cue: it must not be confidently wrong."""
    welded = sparse_lod.welded
    skin_triangles = welded.surface.triangles[welded.skin[welded.surface.triangles].all(axis=1)]
    skin = Mesh.from_triangles(welded.surface.vertices, skin_triangles, name="skin")
    found = detect_orientation(skin)
    assert found.up_cue == "profile"
    assert (found.up, found.front) == ("+Y", "+Z") or not found.confident


def test_another_artists_head_cropped_under_the_chin(makehuman_archive: Path) -> None:
    """MakeHuman's head ends just under the chin, so the profile falls away about as much on both sides of the
    nose (the profile cue alone: -Y with confidence 0.10 on the first identity); its eyes decide, in every pose."""
    from facerig.trainer.dataset import BuildOptions, head_geometry, plan_samples
    from facerig.trainer.makehuman import MakeHumanSource, load_makehuman

    source = MakeHumanSource(load_makehuman(makehuman_archive))
    options = BuildOptions(rigged=2, unrigged=0, factor_rigged=1, seed=5)
    up, front = parse_axis("+Y"), parse_axis("+Z")
    for spec in plan_samples(options, "mh_")[0]:
        head = Mesh.from_triangles(head_geometry(source, options, spec), source.triangles, name=spec.name)
        for rotation in axis_rotations()[::5]:
            found = detect_orientation(replace(head, vertices=head.vertices @ rotation.T))
            assert (found.up, found.front) == (axis_label(rotation @ up), axis_label(rotation @ front)), spec.name
            assert found.confidence > 0.5 and found.up_cue == "eyes"


# ---------------------------------------------------------------------------------------------- in the rig
def _pose_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(S,) cosine between two (S, V, 3) shape stacks, per shape, over all vertices."""
    dot = (a * b).sum(axis=(1, 2))
    return dot / np.maximum(np.linalg.norm(a, axis=(1, 2)) * np.linalg.norm(b, axis=(1, 2)), 1e-30)


@pytest.mark.slow  # four rigs of the example head by the bundled model
def test_the_same_head_in_any_pose_and_unit_rigs_the_same_without_flags(ict_head: Mesh, tmp_path) -> None:
    """Y-up, Z-up and -Z-facing copies of one head, in mm, dm and m, saved as OBJ (no orientation in the
    file): with no --up/--front, each rig is the canonical one turned into the copy's axes and units."""
    from facerig.rigging.pipeline import load_model, rig_mesh

    model = load_model()
    reference = rig_mesh(ict_head, model, cache_dir=tmp_path)
    assert reference.metadata["canonical_frame"]["axes"]["source"] == "geometry"
    labelled = [i for i, name in enumerate(reference.shape_names) if np.abs(reference.deltas[i]).max() > 0]
    variants = {
        "z-up mm": (np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), 10.0),
        "facing -z dm": (np.diag([-1.0, 1.0, -1.0]), 0.1),
        "y-up m": (np.eye(3), 0.01),
    }
    for name, (rotation, scale) in variants.items():
        moved = replace(ict_head, vertices=scale * ict_head.vertices @ rotation.T, up_axis=None)
        rig = rig_mesh(moved, model, cache_dir=tmp_path)
        assert rig.metadata["canonical_frame"]["axes"]["source"] == "geometry", name
        assert rig.metadata["warnings"] == [], name
        expected = scale * reference.deltas @ rotation.T.astype(np.float32)
        cosines = _pose_cosines(rig.deltas[labelled], expected[labelled])
        assert cosines.min() >= 0.99, (name, cosines.min())


def test_a_head_whose_shape_does_not_decide_keeps_the_default_and_says_so(heads_dir) -> None:
    """Suzanne (a cartoon monkey with open eye sockets) is not clear enough: +Y up, +Z front, with a warning."""
    from facerig.canonical.frame import canonical_frame

    frame = canonical_frame(load_mesh(heads_dir / "suzanne.obj"))
    assert (frame.axes.up, frame.axes.front, frame.axes.source) == ("+Y", "+Z", "default")
    assert "--up/--front" in frame.axes.warning
    assert canonical_frame(load_mesh(heads_dir / "suzanne.obj"), up="+Y").axes.source == "arguments"


def test_a_surface_folded_inside_its_box_is_sampled_within_a_bound() -> None:
    """The detector samples the skin's area at a step set by the box; a connected strip of 20,000 triangles criss-crossing
    one box has ~4,000 heads' worth of area (150 million points at that step), so the step grows instead."""
    import tracemalloc

    rng = np.random.default_rng(0)
    vertices = rng.uniform(-1.0, 1.0, size=(20_002, 3))
    strip = np.stack([np.arange(20_000), np.arange(1, 20_001), np.arange(2, 20_002)], axis=1)
    mesh = Mesh.from_triangles(vertices, strip, name="folded")
    tracemalloc.start()
    try:
        found = detect_orientation(mesh)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6, f"{peak / 1e6:.0f} MB"
    assert not found.confident  # noise has no face
