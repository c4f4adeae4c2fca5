"""Eye closure measured on geometry (facerig.anatomy.contact): what the lids leave visible of each eyeball, and the blink
contact step that lengthens a blink stopping short of it."""

import numpy as np
import pytest

import scipy.sparse

from facerig.anatomy.contact import (CLOSURE_TARGET, close_lids, closure, eye_patches, lip_seal, seal_lips,
                                   smallest_gains,
                                   visible_fraction)
from facerig.anatomy.eyes import Eyeball
from facerig.geometry.primitives import geodesic_sphere

CENTRES = (0.4, -0.4)  # left eye at +X (the character's own left), right at -X
HOLE = (0.1, 0.08)  # half width, half height of each eye opening


def _flat_skin(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An n x n grid over [-1, 1]^2 at z = 0, facing +Z: vertices, triangles, triangle centres."""
    steps = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(steps, steps)
    grid = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    index = np.arange(gx.size).reshape(gx.shape)
    quads = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], axis=-1).reshape(-1, 4)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    centres = grid[tris].mean(axis=1)
    return grid, tris, centres


def _face() -> tuple[np.ndarray, np.ndarray, tuple[Eyeball, Eyeball], np.ndarray]:
    """A flat skin facing +Z with two eye openings, an eyeball behind each."""
    grid, tris, centres = _flat_skin(51)
    opening = np.zeros(len(tris), bool)
    for x in CENTRES:
        opening |= (np.abs(centres[:, 0] - x) < HOLE[0]) & (np.abs(centres[:, 1]) < HOLE[1])
    tris = tris[~opening]
    sphere, sphere_tris = geodesic_sphere(3, 0.15)
    vertices, triangles, eyes = [grid], [tris], []
    for x in CENTRES:
        start = sum(len(v) for v in vertices)
        centre = np.array([x, 0.0, -0.15])
        vertices.append(sphere + centre)
        triangles.append(sphere_tris + start)
        eyes.append(Eyeball(np.arange(start, start + len(sphere)), centre, 0.15))
    skin = np.zeros(sum(len(v) for v in vertices), bool)
    skin[: len(grid)] = True
    return np.concatenate(vertices), np.concatenate(triangles), tuple(eyes), skin


def _blink(vertices: np.ndarray, side: int, amount: float) -> np.ndarray:
    """The upper rim of one opening and the skin above it pulled down by ``amount`` of the opening's height."""
    deltas = np.zeros_like(vertices)
    lid = (np.abs(vertices[:, 0] - CENTRES[side]) <= HOLE[0] + 0.02) & (vertices[:, 1] >= HOLE[1] - 1e-9)
    lid &= vertices[:, 2] == 0.0
    deltas[lid, 1] = -2 * HOLE[1] * amount
    return deltas


def test_closure_is_the_share_of_the_eyeball_the_lid_covers():
    vertices, triangles, eyes, skin = _face()
    assert 0.2 < visible_fraction(vertices, triangles, eyes[0], skin) < 0.5  # an opening shows part of the disc
    for amount in (0.0, 0.5, 1.0):
        blink = _blink(vertices, 0, amount)
        assert closure(vertices, triangles, eyes[0], skin, blink) == pytest.approx(amount, abs=0.1)
        assert closure(vertices, triangles, eyes[1], skin, blink) == pytest.approx(0.0, abs=1e-9)  # other eye open
    closed = vertices + _blink(vertices, 0, 1.0)  # a closed-eye scan: no eye to close
    assert closure(closed, triangles, eyes[0], skin, _blink(closed, 0, 0.5)) is None


def test_a_short_blink_is_lengthened_to_contact_and_a_full_one_left_alone():
    vertices, triangles, eyes, skin = _face()
    actions = ("JawDrop", "LeftEyeClosed", "RightEyeClosed")
    activations = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    short, full = _blink(vertices, 0, 0.6), _blink(vertices, 1, 0.95)
    jaw = np.zeros_like(vertices)
    jaw[vertices[:, 1] < -0.5, 1] = -0.1
    predicted = np.stack([0 * jaw, jaw, short, full, jaw + short])
    out, gains = close_lids(predicted, vertices, triangles, eyes, skin, activations, actions)
    assert closure(vertices, triangles, eyes[0], skin, out[2]) >= CLOSURE_TARGET
    assert closure(vertices, triangles, eyes[0], skin, out[4]) >= CLOSURE_TARGET  # the combination too
    assert gains["LeftEyeClosed"] > 1.0 and gains["RightEyeClosed"] == 1.0
    assert np.array_equal(out[3], full) and np.array_equal(out[1], jaw)  # closing blink and jaw untouched
    assert np.array_equal(out[4][vertices[:, 1] < -0.5], jaw[vertices[:, 1] < -0.5])  # only the lid region scales
    nothing, gains = close_lids(predicted, vertices, triangles, (), skin, activations, actions)
    assert nothing is predicted and gains == {}


def test_a_proxy_blink_is_measured_on_the_dense_head():
    """On a proxy, closure is measured on the dense head after carrying back; here the carry loses a tenth of the
    lid's travel (as a coarse lid margin does), so the gain must be larger than the proxy alone asks for."""
    vertices, triangles, eyes, skin = _face()
    actions = ("LeftEyeClosed", "RightEyeClosed")
    activations = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    predicted = np.stack([np.zeros_like(vertices), _blink(vertices, 0, 0.7), _blink(vertices, 1, 0.95)])
    carry = scipy.sparse.identity(len(vertices), format="csr") * 0.9
    patches = eye_patches(vertices, triangles, skin, eyes, carry)
    assert all(len(patch.canonical_vertices) < len(vertices) for patch in patches)  # only around each eye
    plain, plain_gains = close_lids(predicted, vertices, triangles, eyes, skin, activations, actions)
    dense, dense_gains = close_lids(predicted, vertices, triangles, eyes, skin, activations, actions, dense=patches)
    assert closure(vertices, triangles, eyes[0], skin, carry @ plain[1]) < CLOSURE_TARGET
    assert closure(vertices, triangles, eyes[0], skin, carry @ dense[1]) >= CLOSURE_TARGET
    assert dense_gains["LeftEyeClosed"] > plain_gains["LeftEyeClosed"] > 1.0


def test_smallest_gains_bisect_every_row_to_the_target_and_fall_back_to_the_best_gain():
    slopes = np.array([0.5, 0.8, 0.3])  # row 2 never reaches 0.8 within 2.0: its best gain is the largest
    gains = smallest_gains(lambda g, rows: slopes[rows] * g, 0.8, 2.0, 3)
    assert gains == pytest.approx([1.6, 1.0, 2.0], abs=0.01)
    # out of reach, and past a peak the measure falls (a lid sliding under the other): the peak's gain
    def peaked(g, rows):
        assert len(rows), "measured no rows"
        return 0.6 - np.abs(g - 1.5)

    assert smallest_gains(peaked, 0.9, 2.5, 1) == pytest.approx([1.5], abs=0.15)


def test_poses_measured_together_and_in_small_passes_match_one_by_one(monkeypatch):
    """The contact steps stack poses into one z-buffer and bound its pairs per pass; neither may change a measure."""
    import facerig.anatomy.contact as contact

    vertices, triangles, eyes, skin = _face()
    posed = np.stack([vertices + _blink(vertices, 0, amount) for amount in (0.0, 0.3, 0.6, 0.9)])
    one_by_one = [visible_fraction(pose, triangles, eyes[0], skin) for pose in posed]
    assert one_by_one[0] > one_by_one[1] > one_by_one[2] > one_by_one[3]
    assert np.array_equal(contact.visible_fractions(posed, triangles, eyes[0], skin), one_by_one)
    monkeypatch.setattr(contact, "_PAIRS_PER_PASS", 7)
    monkeypatch.setattr(contact, "_TRIANGLE_POSES_PER_PASS", 100)
    assert np.array_equal(contact.visible_fractions(posed, triangles, eyes[0], skin), one_by_one)


def test_a_blink_on_an_eye_already_shut_keeps_the_lid_still():
    """A closed-eye scan: the neutral's lid already covers the eyeball, so a blink would fold it over the lower lid;
    the lid region's motion is removed (gain 0) and the rest of the row kept."""
    vertices, triangles, eyes, skin = _face()
    shut = vertices + _blink(vertices, 0, 1.0)
    actions = ("JawDrop", "LeftEyeClosed")
    activations = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    blink = _blink(shut, 0, 0.5)
    blink[shut[:, 1] < -0.5, 1] = -0.05  # and something far from the eye
    predicted = np.stack([np.zeros_like(shut), blink, blink])
    out, gains = close_lids(predicted, shut, triangles, eyes, skin, activations, actions)
    assert gains["LeftEyeClosed"] == 0.0
    near_eye = np.linalg.norm(shut - eyes[0].centre, axis=1) < 1.4 * eyes[0].radius
    assert np.abs(blink[near_eye]).max() > 0 and np.abs(out[2][near_eye]).max() == 0.0
    far = shut[:, 1] < -0.5
    assert np.array_equal(out[2][far], blink[far]) and np.array_equal(out[1], blink)  # only blink rows, only the lid


def _mouth(parted: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A flat skin facing +Z with a mouth slit ``parted`` high (0: lips touching), and teeth (a plane) behind it."""
    grid, tris, centres = _flat_skin(41)
    tris = tris[~((np.abs(centres[:, 0]) < 0.3) & (np.abs(centres[:, 1]) < 0.1))]  # the slit, 0.2 high
    lips = np.abs(grid[:, 0]) <= 0.3
    grid[lips & (np.abs(grid[:, 1] - 0.1) < 1e-9), 1] -= 0.1 - parted / 2  # upper rim down, lower rim up
    grid[lips & (np.abs(grid[:, 1] + 0.1) < 1e-9), 1] += 0.1 - parted / 2
    teeth = np.array([[-0.5, -0.3, -0.1], [0.5, -0.3, -0.1], [0.5, 0.3, -0.1], [-0.5, 0.3, -0.1]])
    vertices = np.concatenate([grid, teeth])
    triangles = np.concatenate([tris, len(grid) + np.array([[0, 1, 2], [0, 2, 3]])])
    interior = np.zeros(len(vertices), bool)
    interior[len(grid):] = True
    return vertices, triangles, interior, ~interior


def test_lip_presser_closes_lips_the_neutral_parts_and_leaves_touching_lips_alone():
    actions = ("LipPresser", "JawDrop")
    activations = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    for parted, expected in ((0.1, "sealed"), (0.0, "not applied")):
        vertices, triangles, interior, skin = _mouth(parted)
        press = np.zeros_like(vertices)  # the rims move half the gap towards each other
        rims = skin & (np.abs(vertices[:, 0]) <= 0.35) & (np.abs(vertices[:, 1]) < 0.2)
        press[rims, 1] = -np.sign(vertices[rims, 1]) * parted / 4
        predicted = np.stack([np.zeros_like(vertices), press, np.zeros_like(vertices)])
        out, gains = seal_lips(predicted, vertices, triangles, interior, skin, activations, actions)
        if expected == "not applied":
            assert gains == {} and out is predicted
            continue
        zero = np.zeros_like(vertices)
        assert lip_seal(vertices, triangles, interior, skin, zero, press) < 0.6
        assert lip_seal(vertices, triangles, interior, skin, zero, out[1]) >= 0.95
        assert 1.5 < gains["LipPresser"] <= 2.5 and np.array_equal(out[2], predicted[2])
