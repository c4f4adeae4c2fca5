"""Contact and closure measured on the head's own geometry: the eyeball the lids leave visible, the mouth
interior the lips leave visible.

What an animator checks in a blink is whether the lid covers the eye. So closure is measured as exactly that,
without landmarks, names or a template: from the front (the canonical frame's +Z, where the face looks), a grid
of rays over each eyeball's disc; a ray sees the eyeball when the first surface it meets is the eyeball's and not
the skin's. ``closure = 1 − visible(posed) / visible(neutral)``: 0 when the lid does not move, 1 when it covers
the eyeball completely. Only the skin (the largest welded piece) occludes: eye-surface shells, lashes and tear
lines are thin separate pieces that sit in front of the eyeball in the neutral too. Heads without an eyeball pair
(:func:`facerig.anatomy.eyes.find_eyeballs`) have no eye to measure, and nothing here applies to them; an eye the
neutral already covers (a closed-eye scan) has nothing left to close, so its blinks keep the lids still.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from facerig.anatomy.eyes import Eyeball

RAYS_PER_SIDE = 24  # rays across the eyeball's diameter: ~450 rays on its disc
DISC_FRACTION = 0.95  # rays stay inside this share of the radius (the rim is the sphere's grazing edge)


@dataclass(frozen=True)
class RayGrid:
    """Rays cast from the front (along -Z) at the points of a regular grid: x = ``xs[i]``, y = ``ys[j]`` for every
    (j, i) where ``inside[j, i]``. Both axes ascending and evenly spaced."""

    xs: np.ndarray
    ys: np.ndarray
    inside: np.ndarray

    @classmethod
    def over(cls, low: np.ndarray, high: np.ndarray, nx: int, ny: int) -> "RayGrid":
        xs, ys = np.linspace(low[0], high[0], nx), np.linspace(low[1], high[1], ny)
        return cls(xs, ys, np.ones((ny, nx), bool))


def _rays(eyeball: Eyeball) -> RayGrid:
    """The rays on a square grid over the eyeball's front disc."""
    reach = DISC_FRACTION * eyeball.radius
    grid = RayGrid.over(eyeball.centre[:2] - reach, eyeball.centre[:2] + reach, RAYS_PER_SIDE, RAYS_PER_SIDE)
    gx, gy = np.meshgrid(grid.xs - eyeball.centre[0], grid.ys - eyeball.centre[1])
    return RayGrid(grid.xs, grid.ys, np.hypot(gx, gy) <= reach)


def visible_fraction(canonical_vertices: np.ndarray, triangles: np.ndarray, eyeball: Eyeball,
                     occluder: np.ndarray) -> float:
    """Share of the rays over ``eyeball``'s disc whose first hit from the front is the eyeball itself.

    Args:
        canonical_vertices: (V, 3) positions in the canonical frame (neutral or posed).
        triangles: (F, 3) the mesh's triangles.
        eyeball: found on the neutral (its ``vertices`` index ``canonical_vertices``).
        occluder: (V,) bool, the vertices that can hide the eyeball (the skin).
    """
    return float(visible_fractions(canonical_vertices[None], triangles, eyeball, occluder)[0])


def visible_fractions(posed_vertices: np.ndarray, triangles: np.ndarray, eyeball: Eyeball,
                      occluder: np.ndarray) -> np.ndarray:
    """:func:`visible_fraction` of each of ``posed_vertices``' (R, V, 3) poses of one surface: (R,)."""
    target = np.zeros(posed_vertices.shape[1], bool)
    target[eyeball.vertices] = True
    return front_visible_shares(posed_vertices, triangles, _rays(eyeball), target, occluder)


def front_visible_share(canonical_vertices: np.ndarray, triangles: np.ndarray, rays: RayGrid,
                        target: np.ndarray, occluder: np.ndarray) -> float:
    """Share of ``rays`` whose first hit from the front is a triangle of ``target`` ((V,) bool, all three corners)
    rather than of ``occluder`` ((V,) bool); other triangles are transparent."""
    return float(front_visible_shares(canonical_vertices[None], triangles, rays, target, occluder)[0])


# Bounds on front_visible_shares' memory, whatever the surface (a dense head's patch, a surface folded over the eye):
# triangle-poses measured in one pass (about 200 bytes each) and (triangle, ray) pairs tested at once (about 150).
_TRIANGLE_POSES_PER_PASS = 200_000
_PAIRS_PER_PASS = 400_000


def front_visible_shares(posed_vertices: np.ndarray, triangles: np.ndarray, rays: RayGrid,
                         target: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """:func:`front_visible_share` of each of ``posed_vertices``' (R, V, 3) poses of one surface: (R,).

    Each triangle is tested only against the grid points inside its bounding box (a z-buffer over the grid), so the
    cost grows with the triangles and the points they cover, not with their product: a dense head's mouth region
    has thousands of triangles over a thousand rays. Poses are stacked into one z-buffer (each pose its own block of
    rays), because the contact steps measure a handful of poses at a time and numpy's per-call cost, not the
    arithmetic, dominated measuring them one by one.
    """
    target_tris = target[triangles].all(axis=1)
    keep = target_tris | occluder[triangles].all(axis=1)
    triangles, target_tris = triangles[keep], target_tris[keep]
    per_pass = max(1, _TRIANGLE_POSES_PER_PASS // max(len(triangles), 1))
    return np.concatenate([
        _stacked_visible_shares(posed_vertices[start:start + per_pass], triangles, rays, target_tris)
        for start in range(0, len(posed_vertices), per_pass)
    ]) if len(posed_vertices) else np.zeros(0)


def _stacked_visible_shares(posed_vertices: np.ndarray, triangles: np.ndarray, rays: RayGrid,
                            target_tris: np.ndarray) -> np.ndarray:
    n_poses, n_tris = len(posed_vertices), len(triangles)
    corners = posed_vertices[:, triangles].reshape(n_poses * n_tris, 3, 3)  # pose-major
    xs, ys = rays.xs, rays.ys
    n_rays = len(xs) * len(ys)
    step_x, step_y = xs[1] - xs[0], ys[1] - ys[0]
    low, high = corners[:, :, :2].min(axis=1), corners[:, :, :2].max(axis=1)
    first_i = np.clip(np.ceil((low[:, 0] - xs[0]) / step_x), 0, len(xs)).astype(np.int64)
    last_i = np.clip(np.floor((high[:, 0] - xs[0]) / step_x), -1, len(xs) - 1).astype(np.int64)
    first_j = np.clip(np.ceil((low[:, 1] - ys[0]) / step_y), 0, len(ys)).astype(np.int64)
    last_j = np.clip(np.floor((high[:, 1] - ys[0]) / step_y), -1, len(ys) - 1).astype(np.int64)
    width, height = np.clip(last_i - first_i + 1, 0, None), np.clip(last_j - first_j + 1, 0, None)
    # Everything a ray test needs of a triangle, once per triangle rather than per (triangle, ray) pair:
    # corner a, the projected edges over the projected area (barycentrics by two products), the edges' depths.
    origin = corners[:, 0]
    edges = corners[:, 1:] - origin[:, None, :]  # (N, 2, 3): b - a, c - a
    det = edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]
    valid = np.abs(det) > 1e-14  # a triangle seen edge-on hides nothing
    inverse = 1.0 / np.where(valid, det, 1.0)
    per_tri = np.column_stack([origin, edges[:, :, :2].reshape(-1, 4) * inverse[:, None], edges[:, :, 2]])
    counts = np.where(valid, width * height, 0)
    # the nearest target and the nearest occluder along each ray (the camera is at +Z: nearest is highest), over
    # every (triangle, grid point in its box) pair, a bounded number of pairs at a time
    nearest = np.full((2, n_poses * n_rays), -np.inf)
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        before = ends[start] - counts[start]
        stop = max(int(np.searchsorted(ends, before + _PAIRS_PER_PASS, side="right")), start + 1)
        chunk = counts[start:stop]
        tri = start + np.repeat(np.arange(len(chunk)), chunk)
        local = np.arange(chunk.sum()) - np.repeat(np.cumsum(chunk) - chunk, chunk)
        i, j = first_i[tri] + local % width[tri], first_j[tri] + local // width[tri]
        on_disc = rays.inside[j, i]
        tri, i, j = tri[on_disc], i[on_disc], j[on_disc]
        ax, ay, az, e1x, e1y, e2x, e2y, e1z, e2z = per_tri[tri].T
        rel_x, rel_y = xs[i] - ax, ys[j] - ay
        u, v = rel_x * e2y - rel_y * e2x, e1x * rel_y - e1y * rel_x
        hit = (u >= 0) & (v >= 0) & (u + v <= 1)
        ray = (tri // n_tris * n_rays + j * len(xs) + i)[hit]
        np.maximum.at(nearest, (target_tris[tri[hit] % n_tris].astype(np.int64), ray), (az + u * e1z + v * e2z)[hit])
        start = stop
    seen = nearest[1] > nearest[0]
    return seen.reshape(n_poses, -1)[:, rays.inside.ravel()].mean(axis=1)


def closure(canonical_vertices: np.ndarray, triangles: np.ndarray, eyeball: Eyeball, occluder: np.ndarray,
            canonical_deltas: np.ndarray, min_visible: float = 0.03, neutral: float | None = None) -> float | None:
    """How far a pose closes this eye (see the module docstring); None when the neutral shows too little of the
    eyeball (``min_visible``) for closure to mean anything. ``neutral``: the neutral's :func:`visible_fraction`
    when the caller has it already (measuring many poses of one head)."""
    if neutral is None:
        neutral = visible_fraction(canonical_vertices, triangles, eyeball, occluder)
    if neutral < min_visible:
        return None
    return 1.0 - visible_fraction(canonical_vertices + canonical_deltas, triangles, eyeball, occluder) / neutral


def lip_seal(canonical_vertices: np.ndarray, triangles: np.ndarray, interior: np.ndarray, occluder: np.ndarray,
             open_deltas: np.ndarray, sealed_deltas: np.ndarray) -> float | None:
    """How far ``sealed_deltas`` (e.g. JawDrop + LipsTogether) hides the mouth interior that ``open_deltas``
    (JawDrop) shows from the front: ``1 − visible(sealed) / visible(open)``, 1 when the lips meet.

    Args:
        interior: (V,) bool, the mouth's inner parts (teeth, gums, tongue: :func:`facerig.anatomy.rigid_parts.
            find_rigid_parts`); occluder: (V,) bool, the skin. None when the open pose shows nothing of them.
    """
    low, high = canonical_vertices[interior, :2].min(axis=0), canonical_vertices[interior, :2].max(axis=0)
    rays = RayGrid.over(low, high, 2 * RAYS_PER_SIDE, RAYS_PER_SIDE)
    shown = front_visible_share(canonical_vertices + open_deltas, triangles, rays, interior, occluder)
    if shown < 0.02:
        return None
    return 1.0 - front_visible_share(canonical_vertices + sealed_deltas, triangles, rays, interior, occluder) / shown


# The blink contact step (see close_lids). Measured by this module on held-out heads, the artists' own blinks
# close 0.70–0.96 (ICT-FaceKit re-meshed) and 0.78–1.0 (MakeHuman) of the visible eyeball.
CLOSURE_TARGET = 0.85
# A blink is lengthened at most this much: beyond it the network's direction is not a blink. The same eye of one
# MakeHuman test head (source topology, rigged through the proxy) set it each time: run 10's right blink needed 1.74
# (the cap was 1.6), run 14's 2.28 (0.74 of the eyeball at 2.0, 0.86 at 2.28; the artist's own blink covers 0.94).
MAX_GAIN = 2.5
# Share of its disc an eyeball shows below which the neutral's lids are taken as shut: the ICT head with its artist's
# own blinks applied shows 0.012 and 0.015, the open eyes of the ICT and MakeHuman test heads 0.11–0.32.
SHUT_VISIBLE = 0.03
MIN_CLOSURE = 0.25  # below this the network did not find the lid; lengthening would only exaggerate an error
BISECTION_STEPS = 8
LID_REACH = (1.4, 2.2)  # eyeball radii from its centre: the gain applies fully within the first, not past the second
BLINKS = {"LeftEyeClosed": 0, "RightEyeClosed": 1}  # action -> index of its eyeball in find_eyeballs' pair


def smallest_gains(measure: Callable[[np.ndarray, np.ndarray], np.ndarray], target: float, max_gain: float,
                   n_rows: int) -> np.ndarray:
    """Per row, the smallest gain in [1, ``max_gain``] at which ``measure(gains, rows)`` (closures, rising with the
    gain) reaches ``target``, by bisection; when even ``max_gain`` falls short, the gain of a coarse grid that closes
    most (past it a lid slides under the other, so the measure is not monotonic out there). Shared by both contact
    steps.

    Args:
        measure: ``(gains (M,), rows (M,) int) -> (M,)``, the measure of each row at its gain; rows are bisected
            together, so one call measures all of them; never called with no rows.
        n_rows: rows 0 .. n_rows - 1.

    Returns:
        (n_rows,) gains.
    """
    rows = np.arange(n_rows)
    gains = np.empty(n_rows)
    reaches = measure(np.full(n_rows, float(max_gain)), rows) >= target
    low, high, bisected = np.ones(reaches.sum()), np.full(reaches.sum(), float(max_gain)), rows[reaches]
    for _ in range(BISECTION_STEPS if len(bisected) else 0):
        middle = 0.5 * (low + high)
        short = measure(middle, bisected) < target
        low, high = np.where(short, middle, low), np.where(short, high, middle)
    gains[bisected] = high
    short_rows = rows[~reaches]
    if len(short_rows):
        grid = np.linspace(1.0, max_gain, BISECTION_STEPS)
        reached = measure(np.tile(grid, len(short_rows)), np.repeat(short_rows, len(grid)))
        gains[short_rows] = grid[reached.reshape(len(short_rows), len(grid)).argmax(axis=1)]
    return gains


PATCH_REACH = 3.0  # eyeball radii around an eye's centre (front view) that a dense eye patch keeps


@dataclass(frozen=True)
class EyePatch:
    """One eye's neighbourhood on the dense head a proxy stands for (:mod:`facerig.rigging.proxy`), where
    :func:`close_lids` measures that eye's closure.

    A 6k-vertex proxy draws the lid margin coarsely: a blink that covered 85% of the proxy's eyeball covered 79%
    of the 27k-vertex head once carried back. So the proxy's rows are scaled, but measured where the user sees them.
    Only the triangles within :data:`PATCH_REACH` eyeball radii are kept, so the measure costs the same on a
    1.7M-vertex head as on a 27k one.

    Attributes:
        canonical_vertices: (W, 3) the patch's vertices, canonical frame; triangles: (T, 3) its triangles.
        skin: (W,) bool, what can hide the eyeball; eyeball: the eye on the patch's vertices.
        carry: (W, P) sparse map from proxy displacements to the patch's.
    """

    canonical_vertices: np.ndarray
    triangles: np.ndarray
    skin: np.ndarray
    eyeball: Eyeball
    carry: object


def eye_patches(canonical_vertices: np.ndarray, triangles: np.ndarray, skin: np.ndarray,
                eyeballs: tuple[Eyeball, ...], carry: object) -> tuple[EyePatch, ...]:
    """Each eye's :class:`EyePatch` of a dense surface (``carry``: its (W, P) map from the proxy), in eyeball order."""
    patches = []
    for eye in eyeballs:
        near = np.linalg.norm(canonical_vertices[:, :2] - eye.centre[:2], axis=1) <= PATCH_REACH * eye.radius
        near[eye.vertices] = True
        kept = triangles[near[triangles].any(axis=1)]
        used = np.unique(kept)
        index = np.full(len(canonical_vertices), -1, np.int64)
        index[used] = np.arange(len(used))
        patches.append(EyePatch(canonical_vertices[used], index[kept], skin[used],
                                Eyeball(index[eye.vertices], eye.centre, eye.radius), carry[used]))
    return tuple(patches)


def close_lids(
    predicted: np.ndarray, canonical_vertices: np.ndarray, triangles: np.ndarray, eyeballs: tuple[Eyeball, ...],
    skin: np.ndarray, activations: np.ndarray, action_names: tuple[str, ...] | list[str],
    target: float = CLOSURE_TARGET, max_gain: float = MAX_GAIN, dense: tuple[EyePatch, ...] = (),
) -> tuple[np.ndarray, dict[str, float]]:
    """Lengthen each blink row that stops short of closing its eye, so the upper lid reaches the lower one.

    A network trained on one artist's lids under-closes another's (the lid gap differs from head to head while
    the learned motion does not). For every row with a blink action on (the blink itself and the combinations
    containing it), the row is scaled by the smallest gain in [1, ``max_gain``] that brings its eye's
    :func:`closure` to ``target`` (bisection). A blink that already closes and a row that barely moves the lid
    (:data:`MIN_CLOSURE`) are left as they are. An eye the neutral already hides (:data:`SHUT_VISIBLE`: a
    closed-eye scan) gets gain 0 in its lid region: its lids touch, and the network's blink, learned on open eyes,
    would fold the upper lid over the lower one.

    Args:
        predicted: (R, V, 3) canonical displacements, one row per activation row.
        canonical_vertices, triangles: the surface they are on; eyeballs: :func:`facerig.anatomy.eyes.find_eyeballs`'s
            pair on it (empty: nothing to do); skin: (V,) bool, what can hide an eyeball.
        activations: (R, A) rows; action_names: their A actions.
        dense: when ``predicted`` is on a proxy, the dense head's :func:`eye_patches` to measure closure on
            (empty: the patches of ``predicted``'s own surface).

    Returns:
        The displacements (a copy where a row changed) and the gain applied per blink action (1.0: unchanged;
        0.0: the eye was already shut), for the rig's metadata.
    """
    gains = {name: 1.0 for name in BLINKS if name in action_names}
    if not eyeballs or not gains:
        return predicted, {}
    out = predicted
    # Closure is measured on each eye's patch (the surface itself when not a proxy): the bisection measures each
    # blink row about ten times, and the whole head's triangles made that 0.2 s of a 1.75k-vertex rig.
    patches = dense or eye_patches(canonical_vertices, triangles, skin, eyeballs,
                                   sparse.identity(len(canonical_vertices), format="csr"))
    for name in gains:
        eyeball = eyeballs[BLINKS[name]]
        # only the lids and the skin just around them are lengthened; brow and cheek keep the network's motion
        distance = np.linalg.norm(canonical_vertices - eyeball.centre, axis=1) / eyeball.radius
        near = np.clip((LID_REACH[1] - distance) / (LID_REACH[1] - LID_REACH[0]), 0.0, 1.0)[:, None]
        patch = patches[BLINKS[name]]
        visible = visible_fraction(patch.canonical_vertices, patch.triangles, patch.eyeball, patch.skin)
        blinks = np.flatnonzero(activations[:, list(action_names).index(name)] > 0.5)
        if visible < SHUT_VISIBLE:
            # The neutral already hides this eye (a closed-eye scan): the lids touch, so the network's blink (learned
            # on open eyes) would fold the upper lid over the lower one. The lid region keeps still instead.
            if len(blinks):
                out = predicted.copy() if out is predicted else out
                out[blinks] = predicted[blinks] * (1.0 - near)
            gains[name] = 0.0
            continue

        def lid_scaled(rows: np.ndarray, factors: np.ndarray) -> np.ndarray:
            """(M, V, 3): blink row ``rows[m]`` with its lid region scaled by ``factors[m]``."""
            return predicted[blinks[rows]] * (1.0 + (factors[:, None, None] - 1.0) * near)

        def closes(factors: np.ndarray, rows: np.ndarray) -> np.ndarray:
            moved = lid_scaled(rows, factors)
            seen = np.stack([patch.carry @ deltas for deltas in moved])  # on the patch (a dense head's, for a proxy)
            return 1.0 - visible_fractions(patch.canonical_vertices + seen, patch.triangles, patch.eyeball,
                                           patch.skin) / visible

        reached = closes(np.ones(len(blinks)), np.arange(len(blinks)))
        # a blink that already closes is left, and one that barely moves the lid: the network did not find it
        short = np.flatnonzero((reached < target) & (reached >= MIN_CLOSURE))
        if not len(short):
            continue
        row_gains = smallest_gains(lambda factors, rows: closes(factors, short[rows]), target, max_gain, len(short))
        lengthened = short[row_gains > 1.0]
        if not len(lengthened):
            continue
        if out is predicted:
            out = predicted.copy()
        out[blinks[lengthened]] = lid_scaled(lengthened, row_gains[row_gains > 1.0])
        for row, gain in zip(blinks[short], row_gains):
            if activations[row].sum() == 1.0:
                gains[name] = round(float(gain), 3)
    return out, gains


# The lip contact step (see seal_lips). Each lip-contact pose and the open mouth it closes: LipsTogether is made to be
# used with JawDrop (the lips held together while the jaw opens), and a network that learned one artist's jaw
# under-seals another's wider one; LipPresser presses the lips together, so on a head whose neutral has them parted
# (None: the neutral itself) it must first close them (the ICT head opened by a fifth of its jawOpen: the network's
# LipPresser hid 42% of the teeth the neutral shows).
LIP_CONTACTS = {"LipsTogether": "JawDrop", "LipPresser": None}
SEAL_TARGET = 0.95
MAX_SEAL_GAIN = 2.5


def seal_lips(
    predicted: np.ndarray, canonical_vertices: np.ndarray, triangles: np.ndarray, interior: np.ndarray,
    skin: np.ndarray, activations: np.ndarray, action_names: tuple[str, ...] | list[str],
    target: float = SEAL_TARGET, max_gain: float = MAX_SEAL_GAIN,
) -> tuple[np.ndarray, dict[str, float]]:
    """Lengthen each lip-contact pose (:data:`LIP_CONTACTS`) until it hides ``target`` of the mouth interior its open
    mouth shows: JawDrop + LipsTogether against JawDrop, LipPresser against the neutral.

    The smallest gain in [1, ``max_gain``] that reaches the target (bisection on :func:`lip_seal`), or the one that
    seals most when none does; a pose that already seals, a head without mouth parts (``interior``) and an open
    mouth that shows none of them (a neutral with closed lips, for LipPresser) are left alone. Only the pose's own
    row changes: combinations keep the network's combined pose (their correctives absorb the difference).

    Returns:
        The displacements (a copy when changed) and ``{pose: gain}`` for the rig's metadata, for the poses the step
        applies to.
    """
    names = list(action_names)
    single = activations.sum(axis=1) == 1.0

    def row_of(action: str) -> int | None:
        rows = np.flatnonzero(single & (activations[:, names.index(action)] == 1.0)) if action in names else ()
        return int(rows[0]) if len(rows) else None

    out, gains = predicted, {}
    for pose, opener in LIP_CONTACTS.items() if interior.any() else ():
        row, open_row = row_of(pose), (row_of(opener) if opener else None)
        if row is None or (opener and open_row is None):
            continue
        opened = predicted[open_row] if open_row is not None else np.zeros_like(predicted[row])
        lips = predicted[row]
        reached = lip_seal(canonical_vertices, triangles, interior, skin, opened, opened + lips)
        if reached is None:  # that open mouth shows nothing of the interior
            continue
        gains[pose] = 1.0
        if reached >= target:
            continue
        seals = lambda factors, rows, opened=opened, lips=lips: np.array(  # noqa: E731
            [lip_seal(canonical_vertices, triangles, interior, skin, opened, opened + f * lips) for f in factors])
        high = smallest_gains(seals, target, max_gain, 1)[0]
        out = predicted.copy() if out is predicted else out
        out[row] = high * lips
        gains[pose] = round(float(high), 3)
    return out, gains
