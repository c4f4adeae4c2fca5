"""The training losses of the two stages (SPEC §5, seed appendix A) and their weights.

Every loss returns a scalar tensor, is 0 for a perfect prediction, and accepts any leading batch
dimensions (poses, samples): it averages over all of them at once. :func:`weighted_total` combines the
terms of a stage with :data:`STAGE1_WEIGHTS` or :data:`STAGE2_WEIGHTS`.

Units. Images and silhouettes are in [0, 1]. 3D displacements are in the network's canonical units. 2D
positions and flows arrive in pixels (as :mod:`facerig.render.renderer` produces them) and are measured in the seed's
normalisation, ``pixels / resolution * 0.5`` per axis (appendix B renders ``flow / res * 0.5 + 0.5``; the
offset cancels in differences). The seed's weights were set for that scale, and it makes the 2D terms
independent of the render resolution: a one-pixel error costs 1 / 512 at 256 px and 1 / 1024 at 512 px.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

import torch

from facerig.errors import ConfigError

# Read-only: copy with dict(...) to change a weight. Key order is the order of the seed's formulas.
STAGE1_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"image": 10.0, "mask": 1.0, "displacement_2d": 1.0, "regularization": 0.0001}
)
STAGE2_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"image": 10.0, "mask": 1.0, "mse_3d": 100.0, "landmark_2d": 0.5, "eye_closure_2d": 0.5}
)
# Terms beyond the seed's that a preset may weight in stage 2 (they are always computed and logged).
# epe_3d is the metric itself (mean per-vertex 3D error): MSE alone lets a small network leave sub-millimetre
# noise on the many vertices a pose does not move, which MSE barely sees and MAE counts in full.
STAGE2_OPTIONAL: tuple[str, ...] = ("epe_3d",)
# pose_balance_weights: no pose weighs more than this many times the mean pose (nor less than its inverse)
POSE_BALANCE_MAX_RATIO = 10.0

# Upper/lower eyelid landmark pairs in the 68-point Multi-PIE order (0-based), as DECA's eye-closure loss.
MULTIPIE_EYELID_PAIRS: tuple[tuple[int, int], ...] = ((37, 41), (38, 40), (43, 47), (44, 46))


# -------------------------------------------------------------------------------------------- helpers
def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` weighted by ``mask`` (same shape, bool or [0, 1] floats); 0 for an empty mask."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=torch.finfo(values.dtype).tiny)


def _norm(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dimension whose gradient is 0, not NaN, at the zero vector."""
    squared = (vectors * vectors).sum(dim=-1)
    nonzero = squared > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, squared, 1.0)), 0.0)


def _seed_units(pixels: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """(..., 2) screen x, y in pixels -> the seed's normalisation (x / W * 0.5, y / H * 0.5)."""
    height, width = image_size
    return pixels * pixels.new_tensor([0.5 / width, 0.5 / height])


def _check_same_shape(name: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"{name}: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")


# ---------------------------------------------------------------------------------------------- 2D terms
def image_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 between RGB renders: the mean over masked pixels of the channel-mean |difference|.

    Args:
        prediction, target: (..., H, W, 3) colours in [0, 1].
        mask: (..., H, W) bool or [0, 1] weights: the pixels to compare, usually the union of the
            prediction's and the target's coverage so that both a missing and an extra region cost.
    """
    _check_same_shape("image_loss", prediction, target)
    return _masked_mean((prediction - target).abs().mean(dim=-1), mask)


def mask_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between silhouettes over all pixels.

    L1 rather than BCE: the soft silhouette is exactly 0 or 1 away from the outline, where BCE against a
    disagreeing binary target (a generated image's mask) is infinite; L1 stays bounded and reads as the
    fraction of the image covered by one silhouette but not the other.

    Args:
        prediction, target: (..., H, W) coverage in [0, 1] (:func:`facerig.render.renderer.soft_silhouette`).
    """
    _check_same_shape("mask_loss", prediction, target)
    return (prediction - target).abs().mean()


def displacement_2d_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean end-point error between flow fields, in seed units (see the module docstring).

    End-point error (the length of the per-pixel difference vector) is the usual optical-flow measure, so
    the term reads like the flow estimator's own error.

    Args:
        prediction, target: (..., H, W, 2) flows in pixels (:func:`facerig.render.renderer.render_displacement`).
        mask: (..., H, W) bool or [0, 1]: where the target flow is defined, usually the neutral's coverage.
    """
    _check_same_shape("displacement_2d_loss", prediction, target)
    size = prediction.shape[-3:-1]
    return _masked_mean(_norm(_seed_units(prediction - target, size)), mask)


def landmark_2d_loss(
    prediction: torch.Tensor, target: torch.Tensor, image_size: Sequence[int]
) -> torch.Tensor:
    """Mean end-point error between projected landmark vertices and target 2D landmarks, in seed units.

    Args:
        prediction: (..., L, 2) or (..., L, 3) screen positions of the landmark vertices of the predicted
            posed mesh (``camera.project(posed[..., landmark_indices, :])``); a depth column is ignored.
        target: (..., L, 2) target landmarks in pixels.
        image_size: (H, W) of the render the pixels refer to.
    """
    prediction = prediction[..., :2]
    _check_same_shape("landmark_2d_loss", prediction, target)
    return _norm(_seed_units(prediction - target, image_size)).mean()


def eye_closure_2d_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    image_size: Sequence[int],
    eyelid_pairs: Sequence[tuple[int, int]] | torch.Tensor = MULTIPIE_EYELID_PAIRS,
) -> torch.Tensor:
    """DECA-style eye closure: the upper-to-lower eyelid vectors must match, mean end-point error.

    For each pair (upper i, lower j) it compares the predicted ``p_i - p_j`` with the target ``k_i - k_j``.
    DECA compares only the lengths of these vectors; comparing the vectors also catches a lid that
    closes to the wrong place. Unlike :func:`landmark_2d_loss` it is blind to where the eye is, so a
    closing lid is rewarded even when the landmark positions are slightly off.

    Args:
        prediction: (..., L, 2) or (..., L, 3) projected landmark vertices in pixels; a depth column is ignored.
        target: (..., L, 2) target landmarks in pixels.
        image_size: (H, W) of the render.
        eyelid_pairs: (E, 2) landmark indices (upper, lower); Multi-PIE's four pairs by default.
    """
    prediction = prediction[..., :2]
    _check_same_shape("eye_closure_2d_loss", prediction, target)
    pairs = torch.as_tensor(eyelid_pairs, dtype=torch.int64, device=prediction.device).reshape(-1, 2)
    predicted_gap = prediction[..., pairs[:, 0], :] - prediction[..., pairs[:, 1], :]  # (..., E, 2)
    target_gap = target[..., pairs[:, 0], :] - target[..., pairs[:, 1], :]
    return _norm(_seed_units(predicted_gap - target_gap, image_size)).mean()


# ---------------------------------------------------------------------------------------------- 3D terms
def pose_balance_weights(target: torch.Tensor, labelled: torch.Tensor, strength: float,
                         max_ratio: float = POSE_BALANCE_MAX_RATIO) -> torch.Tensor:
    """Per-pose weights that even out the 3D terms between large and small poses.

    Unweighted, a pose counts in the 3D terms in proportion to its size: a 4 mm lid raise hardly moves the sum
    next to a 4 cm jaw drop, and a small network can leave it unlearned for thousands of steps (the bundled
    model's brow lowering and upper-lid raise sat at 1% of their size). Weight ``(mean_rms / rms) ** strength``
    makes the terms measure each pose's *relative* error at strength 1; 0 gives all poses weight 1.

    Args:
        target: (..., V, 3) ground-truth displacements.
        labelled: (...) bool, the poses that count.
        strength: 0 (every weight 1) to 1 (relative error).
        max_ratio: weights are clipped to [1 / max_ratio, max_ratio] before normalising, so that a barely
            moving pose cannot take over.

    Returns:
        (...) weights, mean 1 over the labelled poses, 0 for the others. A labelled pose that does not move (the
        neutral row) weighs as a pose of the mean size.
    """
    if labelled.shape != target.shape[:-2]:
        raise ValueError(f"pose_balance_weights: labelled {tuple(labelled.shape)} does not match {tuple(target.shape)}")
    weights = labelled.to(target.dtype)
    with torch.no_grad():
        rms = torch.where(labelled[..., None, None], target, 0.0).square().sum(dim=-1).mean(dim=-1).sqrt()
        moving = labelled & (rms > 0)
        if strength == 0 or not bool(moving.any()):
            return weights
        mean_rms = rms[moving].mean()
        ratio = (mean_rms / rms.clamp(min=torch.finfo(rms.dtype).tiny)).clamp(1 / max_ratio, max_ratio)
        weights = torch.where(moving, ratio ** strength, weights)
        return weights / _masked_mean(weights, labelled).clamp(min=torch.finfo(weights.dtype).tiny)


def mse_3d_loss(prediction: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor,
                pose_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over labelled poses and their vertices of the squared 3D error ||d_pred - d_target||^2.

    Args:
        prediction, target: (..., V, 3) per-vertex displacements (or posed positions) in canonical units.
            Targets of unlabelled poses are never read into the result and may hold anything, NaN included.
        labelled: (...) bool, False for poses without a 3D ground truth; 0 when none is labelled.
        pose_weights: optional (...) per-pose weights (:func:`pose_balance_weights`); squared here, so that
            a weight scales the pose's error, as in :func:`epe_3d_loss`.
    """
    error = _labelled_error("mse_3d_loss", prediction, target, labelled)
    per_pose = (error * error).sum(dim=-1).mean(dim=-1)  # (...)
    if pose_weights is not None:
        squared = pose_weights * pose_weights
        per_pose = per_pose * squared / _masked_mean(squared, labelled).clamp(min=torch.finfo(squared.dtype).tiny)
    return _masked_mean(per_pose, labelled)


def epe_3d_loss(prediction: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor,
                pose_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over labelled poses and their vertices of the 3D end-point error ||d_pred - d_target||.

    The L1-type companion of :func:`mse_3d_loss` (same arguments and masking): its optimum is the per-vertex
    median, so it drives the displacement of vertices a pose leaves still to exactly zero.
    """
    error = _labelled_error("epe_3d_loss", prediction, target, labelled)
    per_pose = _norm(error).mean(dim=-1)
    if pose_weights is not None:
        per_pose = per_pose * pose_weights
    return _masked_mean(per_pose, labelled)


def _labelled_error(name: str, prediction: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """``prediction - target`` with unlabelled poses zeroed, after checking the shapes."""
    _check_same_shape(name, prediction, target)
    if labelled.shape != prediction.shape[:-2]:
        raise ValueError(f"{name}: labelled {tuple(labelled.shape)} does not match {tuple(prediction.shape)}")
    # select before squaring so that NaN targets of unlabelled poses cannot leak into values or gradients
    return torch.where(labelled[..., None, None], prediction - target, 0.0)


def uniform_laplacian(faces: torch.Tensor, num_vertices: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The umbrella Laplacian L = I - D^-1 A of a triangle mesh as a sparse (V, V) tensor.

    (L x)_v is x_v minus the mean of x over v's edge neighbours, in x's own units whatever v's valence.
    Vertices in no face get an empty row. Edges shared by two faces count once.

    Args:
        faces: (F, 3) int64.
        num_vertices: V.
    """
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.cat([edges, edges.flip(1)]).unique(dim=0)  # (E, 2) directed, each undirected edge twice
    device = faces.device
    degree = torch.zeros(num_vertices, dtype=dtype, device=device).index_add_(
        0, edges[:, 0], torch.ones(len(edges), dtype=dtype, device=device)
    )
    has_neighbours = torch.nonzero(degree > 0).flatten()
    rows = torch.cat([has_neighbours, edges[:, 0]])
    cols = torch.cat([has_neighbours, edges[:, 1]])
    values = torch.cat([torch.ones(len(has_neighbours), dtype=dtype, device=device), -1.0 / degree[edges[:, 0]]])
    shape = (num_vertices, num_vertices)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=True).coalesce()


def regularization_loss(deltas: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Laplacian smoothness of predicted displacements: the mean over vertices of ||(L d)_v||^2.

    Smoothness rather than an L2 of the deltas: stage 1 has no 3D supervision, and an L2 would pull
    every pose back towards the neutral against the 2D losses, while the Laplacian leaves smooth motion
    (a jaw translating as a whole costs nothing) and only penalises the spikes and noise that 2D
    supervision cannot see, e.g. on vertices hidden from the camera.

    Args:
        deltas: (..., V, 3) per-vertex displacements.
        laplacian: (V, V) sparse, e.g. :func:`uniform_laplacian` or the operators' cotan Laplacian.
    """
    num_vertices = deltas.shape[-2]
    columns = deltas.reshape(-1, num_vertices, 3).permute(1, 0, 2).reshape(num_vertices, -1)  # (V, B * 3)
    smoothed = torch.sparse.mm(laplacian.to(deltas.dtype), columns)  # (V, B * 3)
    return (smoothed * smoothed).sum() / (columns.shape[1] // 3 * num_vertices)


# ------------------------------------------------------------------------------------------------ total
def weighted_total(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """sum(weights[name] * terms[name]) over the weighted names.

    Terms without a weight are allowed (computed for logging only); a weight without its term, an empty
    weight table, or a negative or non-finite weight is a configuration error.

    Raises:
        ConfigError: naming the offending loss.
    """
    if not weights:
        raise ConfigError("no loss weights given")
    for name, weight in weights.items():
        if name not in terms:
            raise ConfigError(f"loss {name!r} has weight {weight} but was not computed (have {sorted(terms)})")
        if not (weight >= 0 and weight != float("inf")):
            raise ConfigError(f"loss {name!r} has weight {weight}; weights must be finite and >= 0")
    return torch.stack([weight * terms[name] for name, weight in weights.items()]).sum()
