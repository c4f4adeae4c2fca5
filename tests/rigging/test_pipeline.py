"""rig_mesh end to end on real heads: vocabulary order, finiteness, units/axes round trip, neutral-only work once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerig.io import load_mesh
from facerig.mesh import Mesh
from facerig.nn.model import fresh_model
from facerig.rigging.pipeline import assemble_deltas, predict_mirror_averaged, rig_mesh, shrink_offsets
from facerig.vocabulary import load_vocabulary

REPO_EXAMPLE = "examples/ict_head.obj"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return fresh_model(seed=0, output_init_std=1e-2)


@pytest.fixture(scope="module")
def example_head(request) -> Mesh:
    return load_mesh(request.config.rootpath / REPO_EXAMPLE)


@pytest.mark.slow  # the network rigs the 4,000-vertex example head
def test_rig_of_remeshed_head_has_the_vocabulary_in_order(model, example_head, tmp_path) -> None:
    vocabulary = load_vocabulary()
    rig = rig_mesh(example_head, model, cache_dir=tmp_path)
    assert rig.shape_names == vocabulary.shape_names
    assert rig.n_shapes == 47 + 48
    assert rig.deltas.shape == (95, example_head.n_vertices, 3)
    assert np.isfinite(rig.deltas).all()
    assert set(rig.corrective_recipes) == {c.name for c in vocabulary.correctives}
    assert all(len(bases) in (2, 3) for bases in rig.corrective_recipes.values())
    assert rig.metadata["model_id"] == model.model_id
    assert "timings_s" not in rig.metadata  # a run's timings never enter the files the rig is saved to
    assert rig.timings.total >= rig.timings.network + rig.timings.operators > 0
    # a fresh model with a non-zero output head gives every action a real response
    assert (np.abs(rig.deltas[:47]).reshape(47, -1).max(axis=1) > 0).all()


def test_a_small_head_rigs_with_the_vocabulary_in_order(model, heads_dir, tmp_path) -> None:
    """The rig's layout, as above, on suzanne (507 vertices): the fast tier's check of it."""
    vocabulary = load_vocabulary()
    rig = rig_mesh(load_mesh(heads_dir / "suzanne.obj"), model, cache_dir=tmp_path)
    assert rig.shape_names == vocabulary.shape_names
    assert set(rig.corrective_recipes) == {c.name for c in vocabulary.correctives}
    assert rig.metadata["model_id"] == model.model_id and "timings_s" not in rig.metadata


@pytest.mark.slow  # two rigs of the example head
def test_deltas_come_back_in_the_input_units_and_axes(model, example_head, tmp_path) -> None:
    """Scaling the input by 10 and rotating it to Z-up gives the same deltas, scaled and rotated."""
    base = rig_mesh(example_head, model, cache_dir=tmp_path)
    to_z_up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)  # Y-up/+Z-front -> Z-up/-Y-front
    moved = Mesh(
        10.0 * example_head.vertices @ to_z_up.T, example_head.face_vertex_counts,
        example_head.face_vertex_indices, up_axis="Z", name="moved",
    )
    other = rig_mesh(moved, model, cache_dir=tmp_path)
    expected = 10.0 * base.deltas @ to_z_up.T
    scale = np.abs(expected).max()
    assert np.abs(other.deltas - expected).max() < 1e-3 * scale


def test_corrective_is_combined_minus_singles() -> None:
    vocabulary = load_vocabulary()
    _, row_names = vocabulary.activations()
    rng = np.random.default_rng(0)
    predicted = rng.normal(size=(len(row_names), 5, 3)).astype(np.float32)
    deltas = assemble_deltas(predicted, row_names, vocabulary)
    rows = {n: i for i, n in enumerate(row_names)}
    neutral = predicted[rows["neutral"]]
    corrective = vocabulary.correctives[0]
    expected = predicted[rows[corrective.name]] - neutral - sum(
        predicted[rows[b]] - neutral for b in corrective.bases
    )
    index = vocabulary.shape_names.index(corrective.name)
    np.testing.assert_allclose(deltas[index], expected, atol=1e-5)
    # and the linear rig with product-driven correctives reproduces the combined prediction
    jaw = vocabulary.shape_names.index("JawDrop")
    np.testing.assert_allclose(deltas[jaw], predicted[rows["JawDrop"]] - neutral, atol=1e-6)


def test_rig_any_supported_format(model, heads_dir, tmp_path) -> None:
    for path, options in ((heads_dir / "suzanne.obj", {}), (heads_dir / "robot_expressive.glb", {"select": "Head"})):
        mesh = load_mesh(path, **options)
        rig = rig_mesh(mesh, model, cache_dir=tmp_path)
        assert rig.deltas.shape == (95, mesh.n_vertices, 3)
        assert np.isfinite(rig.deltas).all()


def test_bundled_model_is_the_default(heads_dir, tmp_path) -> None:
    """`rig_mesh` with no model loads the packaged model shipped inside facerig, offline."""
    import json

    from facerig.nn.model import default_model_path

    shipped = json.loads((default_model_path() / "model.json").read_text())
    assert (default_model_path() / "model.pt").stat().st_size < 25 * 2**20
    rig = rig_mesh(load_mesh(heads_dir / "suzanne.obj"), cache_dir=tmp_path)
    assert rig.metadata["model_id"] == shipped["model_id"]
    assert np.isfinite(rig.deltas).all() and rig.n_shapes == 95


@pytest.mark.slow  # the bundled model rigs the example head twice, once unwelded
def test_a_flat_shaded_export_rigs_like_its_welded_original(example_head, tmp_path) -> None:
    """Every face its own vertices (Blender's flat-shaded export): the weld makes it one surface again, so the
    bundled model rigs it like the original, and every copy of a vertex gets the same offset."""
    from facerig.rigging.pipeline import load_model

    triangles = example_head.triangles
    flat = Mesh.from_triangles(example_head.vertices[triangles.ravel()], np.arange(triangles.size).reshape(-1, 3))
    model = load_model()
    original, split = rig_mesh(example_head, model, cache_dir=tmp_path), rig_mesh(flat, model, cache_dir=tmp_path)
    expected = original.deltas[:, triangles.ravel()]  # the original vertex of each corner
    moving = [i for i in range(original.n_shapes) if np.abs(expected[i]).max() > 0]
    cosines = [(split.deltas[i] * expected[i]).sum() / (np.linalg.norm(split.deltas[i]) * np.linalg.norm(expected[i]))
               for i in moving]
    assert len(moving) > 40 and min(cosines) >= 0.99, min(cosines)
    corners = triangles.ravel()
    first = np.unique(corners, return_index=True)[1]
    copies = split.deltas[:, first[np.searchsorted(np.unique(corners), corners)]]
    np.testing.assert_array_equal(split.deltas, copies)  # every copy of a vertex moves as one


def test_top_level_api_is_the_documented_one(heads_dir, model, tmp_path) -> None:
    import facerig

    rig = facerig.rig_mesh(facerig.load_mesh(heads_dir / "suzanne.obj"), model, cache_dir=tmp_path)
    assert isinstance(rig, facerig.Rig) and rig.n_shapes == 95


def test_mirror_averaged_prediction_is_exactly_reflection_equivariant(model) -> None:
    """Rigging a head's mirror image gives the mirror image of its rig, with Left and Right swapped."""
    from facerig.geometry.primitives import geodesic_sphere
    from facerig.nn.operators import compute_operators
    from facerig.vocabulary import mirror_permutation

    vertices, triangles = geodesic_sphere(6, radius=0.8)  # the dense (exact) eigen path: both solves agree
    rng = np.random.default_rng(2)
    vertices = (vertices * (1 + 0.1 * np.sin(vertices @ rng.normal(size=(3, 3))).sum(1, keepdims=True))).astype(np.float32)
    reflect = np.array([-1.0, 1.0, 1.0], np.float32)
    activations, _ = load_vocabulary().activations()
    activations = activations[:12]
    swapped = activations[:, mirror_permutation(model.action_names)]

    def averaged(points: np.ndarray, tris: np.ndarray, acts: np.ndarray) -> np.ndarray:
        return predict_mirror_averaged(model, points, tris, compute_operators(points, tris, model.k_eig), acts)

    rig = averaged(vertices, triangles, activations)
    mirrored_rig = averaged(vertices * reflect, triangles[:, ::-1].copy(), swapped)
    assert np.abs(rig).max() > 1e-3
    np.testing.assert_allclose(mirrored_rig * reflect, rig, atol=2e-4 * np.abs(rig).max())
    single = model.predict(vertices, compute_operators(vertices, triangles, model.k_eig), activations)
    assert np.abs(single - rig).max() > 0.05 * np.abs(rig).max()  # the average is not the single pass


def test_shrink_offsets_zeroes_what_is_below_the_floor_and_shortens_the_rest() -> None:
    offsets = np.array([[[0.0, 0.0, 0.0], [0.03, 0.04, 0.0], [0.3, 0.0, 0.4], [0.0, -2.0, 0.0]]], np.float32)
    shrunk = shrink_offsets(offsets, 0.1)
    np.testing.assert_array_equal(shrunk[0, :2], 0.0)  # 0 and 0.05 long: below the floor
    np.testing.assert_allclose(shrunk[0, 2], [0.24, 0.0, 0.32], rtol=1e-6)  # 0.5 long -> 0.4, same direction
    np.testing.assert_allclose(shrunk[0, 3], [0.0, -1.9, 0.0], rtol=1e-6)
    assert shrunk.dtype == np.float32
    assert shrink_offsets(offsets, 0.0) is offsets


@pytest.mark.slow  # two rigs of the example head
def test_the_rig_shrinks_offsets_by_the_models_floor(model, example_head, tmp_path) -> None:
    """The floor comes from the model's metadata unless given; the neutral stays exactly zero either way."""
    raw = rig_mesh(example_head, model, cache_dir=tmp_path, offset_floor=0.0, bind_eye_shells=False, turn_eyes=False,
                   anatomy=False)
    actions = len(load_vocabulary().action_names)  # the action shapes are the network's own rows
    floor = float(np.median(np.linalg.norm(raw.deltas[:actions], axis=2)))  # in mesh units ...
    scale = raw.metadata["canonical_frame"]["scale"]
    model.metadata["offset_floor"] = floor * scale  # ... and in canonical units, as models record it
    try:
        shrunk = rig_mesh(example_head, model, cache_dir=tmp_path, bind_eye_shells=False, turn_eyes=False,
                          anatomy=False)
    finally:
        del model.metadata["offset_floor"]
    assert shrunk.metadata["offset_floor"] == pytest.approx(floor * scale)
    np.testing.assert_allclose(shrunk.deltas[:actions], shrink_offsets(raw.deltas[:actions], floor),
                               rtol=1e-4, atol=1e-6 * floor)
    assert (np.linalg.norm(shrunk.deltas[:actions], axis=2) == 0).mean() >= 0.5  # the floor is the median length
