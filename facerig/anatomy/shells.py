"""Eye shells: eyelashes, tear lines and eye-occlusion layers ride on the skin around the eye.

A head's eye region is more than skin and eyeballs: thin separate pieces sit on the lids (eyelashes, the
lacrimal strip, the soft occlusion layer over the eyeball). Studio rigs do not sculpt them per shape; they
bind them to the lid with a wrap deformer, so a blink carries the lashes down with the lid. The network
has to learn each of them from data instead, and the bundled CPU model does not: on held-out heads its error
on eyelashes and eye surfaces equals the zero baseline's, while the lid skin itself moves (see the model
card). So the rig does what a rigger would: :func:`find_eye_shells` takes every separate piece that lies
close around an eyeball (see :mod:`facerig.anatomy.eyes`) and is not one, and binds each of its vertices to the nearest
vertices of the skin, the head's largest piece; :func:`bind_shells` then gives each shell vertex, in every
row, the weighted displacement of its skin vertices. A head without a found eyeball pair, or without
shells, keeps the network's output unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

from facerig.anatomy.eyes import Eyeball

SHELL_REACH = 2.0  # a shell lies wholly within this many eyeball radii of an eyeball's centre (lashes ~1.6)
SKIN_NEIGHBOURS = 3  # skin vertices each shell vertex follows, inverse-distance weighted


@dataclass(frozen=True, eq=False)
class ShellBinding:
    """Which vertices are eye shells and which skin vertices each follows.

    Attributes:
        vertices: (S,) int64 shell vertex indices.
        skin_vertices: (S, K) int64 the skin vertices each shell vertex follows.
        weights: (S, K) float64 their weights; each row sums to 1.
    """

    vertices: np.ndarray
    skin_vertices: np.ndarray
    weights: np.ndarray


def find_eye_shells(
    canonical_vertices: np.ndarray,
    component_labels: np.ndarray,
    eyeballs: Sequence[Eyeball],
    neighbours: int = SKIN_NEIGHBOURS,
) -> ShellBinding | None:
    """Bind the pieces around the eyes to the skin; None when there is nothing to bind.

    Args:
        canonical_vertices: (V, 3) the head in the canonical frame.
        component_labels: (V,) connected component per vertex, of the welded surface (as for the eyeballs).
        eyeballs: :func:`facerig.anatomy.eyes.find_eyeballs` of the same vertices; no eyeballs, no shells.
        neighbours: skin vertices per shell vertex.
    """
    if not eyeballs:
        return None
    labels = np.asarray(component_labels)
    sizes = np.bincount(labels)
    skin = int(np.argmax(sizes))
    eyeball_vertex = np.zeros(len(labels), bool)
    for eye in eyeballs:
        eyeball_vertex[eye.vertices] = True
    # per component: its largest distance from the nearest eyeball centre, in that eyeball's radii
    reach = np.full(len(labels), np.inf)
    for eye in eyeballs:
        reach = np.minimum(reach, np.linalg.norm(canonical_vertices - eye.centre, axis=1) / eye.radius)
    farthest = np.zeros(len(sizes))
    np.maximum.at(farthest, labels, reach)
    touches_eyeball = np.zeros(len(sizes), bool)
    touches_eyeball[labels[eyeball_vertex]] = True
    is_shell = (farthest <= SHELL_REACH) & ~touches_eyeball
    is_shell[skin] = False
    shell_vertices = np.flatnonzero(is_shell[labels])
    if len(shell_vertices) == 0:
        return None
    skin_vertices = np.flatnonzero(labels == skin)
    k = min(neighbours, len(skin_vertices))
    distances, nearest = cKDTree(canonical_vertices[skin_vertices]).query(canonical_vertices[shell_vertices], k=k)
    distances, nearest = distances.reshape(len(shell_vertices), k), nearest.reshape(len(shell_vertices), k)
    weights = 1.0 / np.maximum(distances, 1e-9)
    weights /= weights.sum(axis=1, keepdims=True)
    return ShellBinding(shell_vertices, skin_vertices[nearest], weights)


def bind_shells(predicted: np.ndarray, binding: ShellBinding | None) -> np.ndarray:
    """(R, V, 3) offsets whose shell vertices move, in every row, as their skin vertices do (a copy)."""
    if binding is None:
        return predicted
    bound = predicted.copy()
    bound[:, binding.vertices] = np.einsum("sk,rskc->rsc", binding.weights, predicted[:, binding.skin_vertices])
    return bound.astype(predicted.dtype, copy=False)
