"""Eyeballs: found by their shape, turned rigidly for gaze.

An eyeball is the one part of a face that does not deform: studio rigs, ICT-FaceKit included, turn it with a
joint. A network that predicts per-vertex offsets has to discover that rotation about a sphere's centre from
data, and the bundled CPU model does not (its eyeball error equals the zero baseline's; see its model card).
So the rig does it exactly: :func:`find_eyeballs` finds a left/right pair of separate components that each wrap
most of a sphere, in the canonical frame, and :func:`turn_eyeballs` replaces the network's output on them with each
row's gaze rotation about the sphere's centre. An eyeball therefore turns by exactly the gaze angle, keeps its
shape, and stays in its socket; in every pose without gaze it stays still. A head with no such pair (one
fused surface, eyes cut open, a single eye) keeps the network's output unchanged.

The gaze convention is the dataset builder's (:func:`facerig.trainer.dataset.gaze_deltas`), so what the
rig produces is what the training data calls EyesLook: a full look turns the eye by the angle the model's
training data used (``gaze_degrees`` in its ``model.json``, :data:`GAZE_DEGREES` by default).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facerig.geometry import SpherePart, sphere_parts

GAZE_DEGREES = 25.0
# action -> (canonical axis, sign) of its rotation; +X is the character's left, +Y up, +Z the face's front
GAZE_ROTATIONS = {"EyesLookLeft": (1, 1.0), "EyesLookRight": (1, -1.0), "EyesLookUp": (0, -1.0),
                  "EyesLookDown": (0, 1.0)}

# What counts as an eyeball, in canonical units (the cranium radius is 1; ICT's eyeballs are 0.158); what counts as
# a sphere at all is :func:`facerig.geometry.sphere_parts`'.
RADIUS_RANGE = (0.05, 0.3)
MAX_RADIUS_MISMATCH = 0.25  # relative difference of the two radii
MAX_MIRROR_OFFSET = 1.0  # distance between one centre and the other's mirror image across X = 0, in radii


Eyeball = SpherePart  # an eyeball is a sphere-like part of an eye's size


def axis_rotation(axis: int, radians: float) -> np.ndarray:
    """(3, 3) right-handed rotation about coordinate ``axis``."""
    c, s = np.cos(radians), np.sin(radians)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def find_eyeballs(canonical_vertices: np.ndarray, component_labels: np.ndarray) -> tuple[Eyeball, ...]:
    """The head's two eyeballs (left, then right), or () when it has no clear pair.

    Args:
        canonical_vertices: (V, 3) the head's vertices in the canonical frame.
        component_labels: (V,) int connected component of each vertex, with vertices split along UV or normal
            seams counted as one (:attr:`Mesh.component_labels` of a welded mesh): a component must be a whole
            eyeball, or a whole piece of one.
    """
    eyes = sphere_like_parts(canonical_vertices, component_labels)
    left = [eye for eye in eyes if eye.centre[0] > eye.radius]  # eyes sit off the midline by more than their radius
    right = [eye for eye in eyes if eye.centre[0] < -eye.radius]
    if len(left) != 1 or len(right) != 1:
        return ()
    left_eye, right_eye = left[0], right[0]
    mean_radius = 0.5 * (left_eye.radius + right_eye.radius)
    mirrored = right_eye.centre * np.array([-1.0, 1.0, 1.0])
    if (abs(left_eye.radius - right_eye.radius) > MAX_RADIUS_MISMATCH * mean_radius
            or np.linalg.norm(left_eye.centre - mirrored) > MAX_MIRROR_OFFSET * mean_radius):
        return ()
    return left_eye, right_eye


def sphere_like_parts(canonical_vertices: np.ndarray, component_labels: np.ndarray) -> list[Eyeball]:
    """Everything that could be an eyeball, paired or not: closed, sphere-like components of an eye's size
    (:data:`RADIUS_RANGE`), or spheres open at the back down to a hemisphere facing the canonical front (+Z: eyeballs
    modelled as their visible half), concentric ones merged into one (a sclera shell around an iris piece). Args as
    for :func:`find_eyeballs`.
    """
    return sphere_parts(canonical_vertices, component_labels, RADIUS_RANGE, front=np.array([0.0, 0.0, 1.0]))


def gaze_rotation(activation: np.ndarray, action_names: Sequence[str], degrees: float = GAZE_DEGREES) -> np.ndarray:
    """(3, 3) eye rotation of one activation row: the horizontal look applied after the vertical one."""
    rotation = np.eye(3)
    for action, (axis, sign) in GAZE_ROTATIONS.items():
        if action in action_names and activation[action_names.index(action)] != 0:
            angle = sign * np.radians(degrees) * float(activation[action_names.index(action)])
            turn = axis_rotation(axis, angle)
            rotation = turn @ rotation if axis == 1 else rotation @ turn
    return rotation


def turn_eyeballs(predicted: np.ndarray, canonical_vertices: np.ndarray, eyeballs: Sequence[Eyeball],
                  activations: np.ndarray, action_names: Sequence[str], degrees: float = GAZE_DEGREES) -> np.ndarray:
    """Replace the eyeballs' offsets in every row with that row's rigid gaze turn.

    Args:
        predicted: (R, V, 3) canonical offsets per activation row (not modified).
        canonical_vertices: (V, 3) the neutral head in the canonical frame.
        eyeballs: from :func:`find_eyeballs` on the same vertices.
        activations: (R, A) the rows' activations, columns named by ``action_names``.

    Returns:
        (R, V, 3) a copy of ``predicted`` whose eyeball vertices move only by the gaze rotation.
    """
    if not eyeballs:
        return predicted
    turned = predicted.copy()
    names = list(action_names)
    for row, activation in enumerate(activations):
        rotation = gaze_rotation(activation, names, degrees)
        for eye in eyeballs:
            offsets = canonical_vertices[eye.vertices] - eye.centre
            turned[row, eye.vertices] = offsets @ rotation.T - offsets
    return turned
