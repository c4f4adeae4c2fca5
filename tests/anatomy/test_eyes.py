"""Eyeballs found by shape and turned rigidly, and the shells around them bound to the skin: synthetic heads
with known answers, and the ICT head against the dataset builder's own gaze ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerig import load_mesh
from facerig.anatomy.eyes import GAZE_DEGREES, find_eyeballs, gaze_rotation, turn_eyeballs
from facerig.geometry import fit_sphere
from facerig.anatomy.shells import bind_shells, find_eye_shells
from facerig.canonical.frame import canonical_frame
from facerig.mesh import Mesh
from facerig.vocabulary import load_vocabulary

ACTIONS = list(load_vocabulary().action_names)


def _sphere(centre, radius: float, rings: int = 12, segments: int = 16, cap: float = np.pi):
    """A UV sphere (closed when cap = pi; a cap of that polar angle about +Z otherwise) as (vertices, triangles)."""
    closed = cap >= np.pi
    thetas = np.linspace(0, cap, rings + 1)[1:-1] if closed else np.linspace(0, cap, rings + 1)[1:]
    phis = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.array([[np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)] for t in thetas for p in phis])
    points = np.vstack([[0, 0, 1], ring] + ([[0, 0, -1]] if closed else []))
    tris = [[0, 1 + s, 1 + (s + 1) % segments] for s in range(segments)]
    for r in range(len(thetas) - 1):
        a, b = 1 + r * segments, 1 + (r + 1) * segments
        for s in range(segments):
            t = (s + 1) % segments
            tris += [[a + s, b + s, b + t], [a + s, b + t, a + t]]
    if closed:
        last, bottom = 1 + (len(thetas) - 1) * segments, len(points) - 1
        tris += [[last + s, bottom, last + (s + 1) % segments] for s in range(segments)]
    return np.asarray(centre) + radius * points, np.asarray(tris)


def _head(*parts) -> Mesh:
    vertices, triangles, offset = [], [], 0
    for points, tris in parts:
        vertices.append(points)
        triangles.append(tris + offset)
        offset += len(points)
    return Mesh.from_triangles(np.vstack(vertices), np.vstack(triangles))


LEFT, RIGHT = (0.33, -0.13, 0.75), (-0.33, -0.13, 0.75)


def _back(part, centre):
    """A part around ``centre`` mirrored front to back (+Z is where the face looks)."""
    points, tris = part
    return points * np.array([1.0, 1.0, -1.0]) + np.array([0.0, 0.0, 2 * centre[2]]), tris[:, ::-1]


def test_finds_a_left_right_pair_of_closed_spheres_and_ignores_the_rest() -> None:
    mesh = _head(_sphere((0, 0, 0), 1.0, 24, 32),  # the skin: far too large
                 _sphere(LEFT, 0.16), _sphere(RIGHT, 0.16),
                 _sphere(LEFT, 0.12, 3, 4), _sphere(RIGHT, 0.12, 3, 4),  # an iris piece inside each: too few
                 # vertices to count as an eye on its own, but part of the eye it sits in
                 _sphere((0.7, 0.3, 0.2), 0.12, 3, 4),  # a small sphere-like piece elsewhere: not an eye
                 _sphere((0.33, -0.13, 0.76), 0.17, cap=0.6),  # a shell in front of the left eye: a cap, not an eye
                 _sphere((0.0, -0.8, 0.6), 0.08))  # a small closed sphere on the midline (a tongue tip, say)
    eyes = find_eyeballs(mesh.vertices, mesh.component_labels)
    assert len(eyes) == 2
    for eye, centre in zip(eyes, (LEFT, RIGHT)):
        np.testing.assert_allclose(eye.centre, centre, atol=1e-3)
        assert eye.radius == pytest.approx(0.16, rel=0.02)
        assert len(eye.vertices) == len(_sphere(LEFT, 0.16)[0]) + len(_sphere(LEFT, 0.12, 3, 4)[0])


@pytest.mark.parametrize("parts", [
    [_sphere(LEFT, 0.16)],  # one eye only
    [_sphere(LEFT, 0.16), _sphere(RIGHT, 0.08)],  # two spheres of different sizes
    [_sphere(LEFT, 0.16), _sphere((-0.33, 0.4, 0.75), 0.16)],  # not mirror images
    # caps open to the front (their backs face the face's front): the linings of the eye sockets, not eyeballs
    [_back(_sphere(LEFT, 0.16, cap=1.6), LEFT), _back(_sphere(RIGHT, 0.16, cap=1.6), RIGHT)],
    [_sphere(LEFT, 0.16, cap=0.8), _sphere(RIGHT, 0.16, cap=0.8)],  # shallow caps facing front: corneas or shells
])
def test_no_eyeballs_without_a_clear_pair(parts) -> None:
    mesh = _head(_sphere((0, 0, 0), 1.0), *parts)
    assert find_eyeballs(mesh.vertices, mesh.component_labels) == ()


@pytest.mark.parametrize("cap", [np.pi / 2, 1.6, 2.2])
def test_eyeballs_modelled_as_their_front_half_are_found(cap: float) -> None:
    """Game heads often keep only the visible half of each eyeball: a sphere open at the back still turns as one."""
    mesh = _head(_sphere((0, 0, 0), 1.0, 24, 32), _sphere(LEFT, 0.16, cap=cap), _sphere(RIGHT, 0.16, cap=cap))
    eyes = find_eyeballs(mesh.vertices, mesh.component_labels)
    assert len(eyes) == 2
    for eye, centre in zip(eyes, (LEFT, RIGHT)):
        np.testing.assert_allclose(eye.centre, centre, atol=1e-3)
        assert eye.radius == pytest.approx(0.16, rel=0.02)


def test_gaze_rotation_turns_the_front_towards_the_look() -> None:
    row = np.zeros(len(ACTIONS))
    np.testing.assert_allclose(gaze_rotation(row, ACTIONS), np.eye(3))
    front = np.array([0.0, 0.0, 1.0])
    sin = np.sin(np.radians(GAZE_DEGREES))
    for action, axis, sign in [("EyesLookLeft", 0, 1), ("EyesLookRight", 0, -1), ("EyesLookUp", 1, 1),
                               ("EyesLookDown", 1, -1)]:
        row = np.zeros(len(ACTIONS))
        row[ACTIONS.index(action)] = 1.0
        turned = gaze_rotation(row, ACTIONS) @ front
        assert sign * turned[axis] == pytest.approx(sin), action
        row[ACTIONS.index(action)] = 0.5  # half a look, half the angle
        assert sign * (gaze_rotation(row, ACTIONS) @ front)[axis] == pytest.approx(np.sin(np.radians(GAZE_DEGREES / 2)))
    both = np.zeros(len(ACTIONS))
    both[[ACTIONS.index("EyesLookLeft"), ACTIONS.index("EyesLookUp")]] = 1.0
    rotation = gaze_rotation(both, ACTIONS)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    turned = rotation @ front
    assert turned[0] > 0.3 and turned[1] == pytest.approx(sin)  # up by the full angle, then turned left


def test_turn_eyeballs_replaces_only_the_eyeballs_with_a_rigid_turn() -> None:
    mesh = _head(_sphere((0, 0, 0), 1.0), _sphere(LEFT, 0.16), _sphere(RIGHT, 0.16))
    eyes = find_eyeballs(mesh.vertices, mesh.component_labels)
    rng = np.random.default_rng(0)
    predicted = rng.normal(scale=0.01, size=(3, mesh.n_vertices, 3)).astype(np.float32)
    activations = np.zeros((3, len(ACTIONS)), np.float32)
    activations[1, ACTIONS.index("EyesLookLeft")] = 1.0
    activations[2, ACTIONS.index("JawDrop")] = 1.0
    turned = turn_eyeballs(predicted, mesh.vertices, eyes, activations, ACTIONS)
    on_eyes = np.concatenate([eye.vertices for eye in eyes])
    off_eyes = np.setdiff1d(np.arange(mesh.n_vertices), on_eyes)
    np.testing.assert_array_equal(turned[:, off_eyes], predicted[:, off_eyes])  # the network's output elsewhere
    assert not turned[[0, 2]][:, on_eyes].any()  # no gaze: the eyes stay exactly still
    for eye in eyes:
        points = mesh.vertices[eye.vertices]
        np.testing.assert_allclose(np.linalg.norm(points + turned[1, eye.vertices] - eye.centre, axis=1),
                                   np.linalg.norm(points - eye.centre, axis=1), rtol=1e-5)
        assert turned[1, eye.vertices][:, 0].max() > 0.16 * 0.4  # the front swings left by about r sin 25°


def test_matches_the_dataset_builders_gaze_on_the_ict_head(ict_neutral_path: Path) -> None:
    """The rig turns ICT's eyeballs exactly as the training data's EyesLook ground truth does."""
    from facerig.trainer.dataset import gaze_deltas
    from facerig.trainer.ict import PARTS

    mesh = load_mesh(ict_neutral_path)
    canonical = canonical_frame(mesh).to_canonical(mesh.vertices)
    eyes = find_eyeballs(canonical, mesh.component_labels)
    ranges = {name: (lo, hi) for name, lo, hi, _ in PARTS}
    for eye, name in zip(eyes, ("eyeball_left", "eyeball_right")):  # +X is the character's left
        np.testing.assert_array_equal(eye.vertices, np.arange(ranges[name][0], ranges[name][1] + 1))
    parts = np.zeros(mesh.n_vertices, np.int64)
    for index, (name, lo, hi, _) in enumerate(PARTS):
        parts[lo:hi + 1] = index
    truth = gaze_deltas(canonical, parts, GAZE_DEGREES)  # the builder's ground truth, in the canonical frame
    activations = np.eye(len(ACTIONS), dtype=np.float32)
    turned = turn_eyeballs(np.zeros((len(ACTIONS), mesh.n_vertices, 3), np.float32), canonical, eyes,
                           activations, ACTIONS)
    np.testing.assert_allclose(turned, truth, atol=1e-5)
    assert fit_sphere(canonical[eyes[0].vertices])[1] == pytest.approx(eyes[0].radius)


def test_the_rig_turns_eyes_by_the_models_training_angle(ict_neutral_path: Path, tmp_path: Path) -> None:
    """A model records the gaze angle of its training data; `rig_mesh` turns the eyeballs by that angle."""
    from facerig.nn.model import fresh_model
    from facerig.nn.network import NetworkConfig
    from facerig.rigging.pipeline import rig_mesh

    mesh = load_mesh(ict_neutral_path)
    model = fresh_model(NetworkConfig(width=8, n_blocks=1, k_eig=16, global_width=8, global_dim=4))
    turns = {}
    for degrees in (GAZE_DEGREES, 10.0):
        model.metadata["gaze_degrees"] = degrees
        rig = rig_mesh(mesh, model, cache_dir=tmp_path)
        eye = find_eyeballs(canonical_frame(mesh).to_canonical(mesh.vertices), mesh.component_labels)[0]
        points = mesh.vertices[eye.vertices]
        centre = fit_sphere(points)[0]
        before, after = points - centre, points + rig.delta("EyesLookLeft")[eye.vertices] - centre
        cosines = (before * after).sum(1) / np.linalg.norm(before, axis=1) / np.linalg.norm(after, axis=1)
        turns[degrees] = np.degrees(np.arccos(np.clip(cosines, -1, 1))).max()  # points on the equator turn fully
    assert turns[GAZE_DEGREES] == pytest.approx(GAZE_DEGREES, abs=0.5)
    assert turns[10.0] == pytest.approx(10.0, abs=0.5)


# ---------------------------------------------------------------- eye shells (facerig.anatomy.shells)
def _head_with_shells() -> tuple[Mesh, dict[str, np.ndarray]]:
    parts = {"skin": _sphere((0, 0, 0), 1.0, 24, 32),
             "left_eye": _sphere(LEFT, 0.16), "right_eye": _sphere(RIGHT, 0.16),
             "lashes": _sphere((0.33, -0.13, 0.76), 0.2, cap=0.5),  # a thin piece in front of the left eye
             "tongue": _sphere((0.0, -0.8, 0.6), 0.08)}  # a small piece far from both eyes
    mesh = _head(*parts.values())
    ends = np.cumsum([len(points) for points, _ in parts.values()])
    return mesh, {name: np.arange(end - len(points), end) for (name, (points, _)), end in zip(parts.items(), ends)}


def test_shells_around_an_eye_move_as_the_skin_under_them() -> None:
    mesh, parts = _head_with_shells()
    eyes = find_eyeballs(mesh.vertices, mesh.component_labels)
    binding = find_eye_shells(mesh.vertices, mesh.component_labels, eyes)
    np.testing.assert_array_equal(binding.vertices, parts["lashes"])  # not the eyeballs, not the far tongue
    assert np.isin(binding.skin_vertices, parts["skin"]).all()
    np.testing.assert_allclose(binding.weights.sum(1), 1.0)

    rng = np.random.default_rng(0)
    predicted = rng.normal(size=(3, mesh.n_vertices, 3)).astype(np.float32)
    predicted[1, parts["skin"]] = [0.0, -0.2, 0.05]  # row 1: the whole skin translates
    bound = bind_shells(predicted, binding)
    np.testing.assert_allclose(bound[1, parts["lashes"]], np.broadcast_to([0.0, -0.2, 0.05], (len(parts["lashes"]), 3)),
                               atol=1e-6)  # the shell rides along exactly
    # in any row, each shell vertex moves by the weighted motion of its skin vertices ...
    expected = np.einsum("sk,rskc->rsc", binding.weights, predicted[:, binding.skin_vertices])
    np.testing.assert_allclose(bound[:, parts["lashes"]], expected, rtol=1e-5, atol=1e-6)
    # ... which are the nearest skin vertices
    gaps = mesh.vertices[parts["lashes"], None] - mesh.vertices[None, parts["skin"]]
    nearest = np.linalg.norm(gaps, axis=2).argmin(1)
    assert (binding.skin_vertices == parts["skin"][nearest][:, None]).any(1).all()
    others = np.setdiff1d(np.arange(mesh.n_vertices), parts["lashes"])
    np.testing.assert_array_equal(bound[:, others], predicted[:, others])  # everything else is untouched
    assert bound is not predicted and not np.shares_memory(bound, predicted)


def test_no_shells_are_bound_without_an_eyeball_pair() -> None:
    mesh, _ = _head_with_shells()
    assert find_eye_shells(mesh.vertices, mesh.component_labels, ()) is None
    predicted = np.ones((2, mesh.n_vertices, 3), np.float32)
    assert bind_shells(predicted, None) is predicted
