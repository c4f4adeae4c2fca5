"""Each training loss: 0 when perfect, the hand-computed value otherwise, and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from facerig.errors import ConfigError
from facerig.trainer.losses import (
    MULTIPIE_EYELID_PAIRS,
    STAGE1_WEIGHTS,
    STAGE2_WEIGHTS,
    STAGE2_OPTIONAL,
    displacement_2d_loss,
    epe_3d_loss,
    eye_closure_2d_loss,
    image_loss,
    landmark_2d_loss,
    mask_loss,
    mse_3d_loss,
    pose_balance_weights,
    regularization_loss,
    uniform_laplacian,
    weighted_total,
)


def _has_gradient(loss: torch.Tensor, tensor: torch.Tensor) -> bool:
    (grad,) = torch.autograd.grad(loss, tensor)
    return bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_stage_weights_are_the_seeds() -> None:
    assert dict(STAGE1_WEIGHTS) == {"image": 10.0, "mask": 1.0, "displacement_2d": 1.0, "regularization": 0.0001}
    assert dict(STAGE2_WEIGHTS) == {
        "image": 10.0, "mask": 1.0, "mse_3d": 100.0, "landmark_2d": 0.5, "eye_closure_2d": 0.5,
    }
    with pytest.raises(TypeError):
        STAGE1_WEIGHTS["image"] = 1.0  # type: ignore[index]


def test_image_loss() -> None:
    target = torch.zeros(2, 2, 3)
    mask = torch.tensor([[True, True], [False, False]])
    assert float(image_loss(target, target, mask)) == 0.0
    prediction = target.clone()
    prediction[0, 0] = torch.tensor([0.3, 0.6, 0.9])  # channel mean 0.6
    prediction[1, 1] = 1.0  # outside the mask: ignored
    prediction.requires_grad_(True)
    loss = image_loss(prediction, target, mask)
    assert float(loss.detach()) == pytest.approx((0.6 + 0.0) / 2)
    assert _has_gradient(loss, prediction)
    assert float(image_loss(prediction, target, torch.zeros(2, 2, dtype=torch.bool)).detach()) == 0.0


def test_mask_loss() -> None:
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert float(mask_loss(target, target)) == 0.0
    prediction = torch.tensor([[0.5, 1.0], [0.25, 0.0]], requires_grad=True)
    loss = mask_loss(prediction, target)
    assert float(loss.detach()) == pytest.approx((0.5 + 0.25) / 4)
    assert _has_gradient(loss, prediction)


def test_displacement_2d_loss_is_end_point_error_in_seed_units() -> None:
    target = torch.zeros(4, 8, 2)  # H = 4, W = 8
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[0, :2] = True
    assert float(displacement_2d_loss(target, target, mask)) == 0.0
    prediction = target.clone()
    prediction[0, 0] = torch.tensor([3.0 * 8 / 0.5, 4.0 * 4 / 0.5])  # (3, 4) in seed units: length 5
    prediction[3, 3] = 100.0  # outside the mask
    prediction.requires_grad_(True)
    loss = displacement_2d_loss(prediction, target, mask)
    assert float(loss.detach()) == pytest.approx(5.0 / 2)
    assert _has_gradient(loss, prediction)
    # a one-pixel error weighs the same at any resolution relative to the image: 1 / (2 W)
    one_pixel = torch.zeros(1, 256, 2)
    one_pixel[0, 0, 0] = 1.0
    assert float(displacement_2d_loss(one_pixel, torch.zeros(1, 256, 2), one_pixel[..., 0] > 0)) == 1 / 512


def test_zero_error_has_zero_not_nan_gradient() -> None:
    flow = torch.zeros(2, 2, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(displacement_2d_loss(flow, torch.zeros(2, 2, 2), torch.ones(2, 2)), flow)
    assert bool((grad == 0).all())


def test_landmark_2d_loss() -> None:
    target = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    assert float(landmark_2d_loss(target, target, (100, 200))) == 0.0
    # projected vertices carry a depth column, which is ignored
    prediction = torch.tensor([[10.0 + 6.0 * 400, 20.0 + 8.0 * 200, 7.0], [30.0, 40.0, 9.0]], requires_grad=True)
    loss = landmark_2d_loss(prediction, target, (100, 200))  # seed units: x / 400, y / 200 -> (6, 8)
    assert float(loss.detach()) == pytest.approx(10.0 / 2)
    assert _has_gradient(loss, prediction)


def test_eye_closure_2d_loss_compares_lid_gaps_not_positions() -> None:
    target = torch.rand(68, 2, generator=torch.Generator().manual_seed(0)) * 100
    assert float(eye_closure_2d_loss(target, target, (100, 100))) == 0.0
    # moving the whole face leaves every lid gap as it is
    assert float(eye_closure_2d_loss(target + 7.0, target, (100, 100))) == pytest.approx(0.0, abs=1e-6)
    # close one upper lid of the first pair by 20 px (0.1 in seed units at 100 px)
    prediction = target.clone()
    upper, _ = MULTIPIE_EYELID_PAIRS[0]
    prediction[upper, 1] += 20.0
    prediction.requires_grad_(True)
    loss = eye_closure_2d_loss(prediction, target, (100, 100))
    assert float(loss.detach()) == pytest.approx(0.1 / 4, rel=1e-5)  # one of four pairs is off by 0.1
    assert _has_gradient(loss, prediction)
    # custom pairs
    pairs = torch.tensor([[0, 1]])
    assert float(eye_closure_2d_loss(prediction, target, (100, 100), pairs).detach()) == pytest.approx(0.0, abs=1e-6)


def test_mse_3d_loss_and_the_unlabelled_mask() -> None:
    target = torch.zeros(3, 2, 3)  # 3 poses, 2 vertices
    labelled = torch.tensor([True, True, True])
    assert float(mse_3d_loss(target, target, labelled)) == 0.0
    prediction = target.clone()
    prediction[0, 0] = torch.tensor([1.0, 2.0, 2.0])  # squared error 9 on one of 2 vertices -> pose mean 4.5
    prediction[2, 1] = torch.tensor([0.0, 0.0, 10.0])  # pose 2: 100 / 2 = 50
    prediction.requires_grad_(True)
    loss = mse_3d_loss(prediction, target, labelled)
    assert float(loss.detach()) == pytest.approx((4.5 + 0.0 + 50.0) / 3)
    assert _has_gradient(loss, prediction)
    # pose 2 unlabelled: it drops out, even with a NaN target, and gets no gradient
    unlabelled_target = target.clone()
    unlabelled_target[2] = math.nan
    masked = mse_3d_loss(prediction, unlabelled_target, torch.tensor([True, True, False]))
    assert float(masked.detach()) == pytest.approx((4.5 + 0.0) / 2)
    (grad,) = torch.autograd.grad(masked, prediction)
    assert bool(torch.isfinite(grad).all()) and bool((grad[2] == 0).all()) and float(grad[0].abs().sum()) > 0
    assert float(mse_3d_loss(prediction, unlabelled_target, torch.zeros(3, dtype=torch.bool)).detach()) == 0.0


def test_epe_3d_loss_is_the_mean_error_length_and_zero_stays_finite() -> None:
    assert STAGE2_OPTIONAL == ("epe_3d",) and "epe_3d" not in STAGE2_WEIGHTS  # a preset's choice, not the seed's
    target = torch.zeros(2, 2, 3)  # 2 poses, 2 vertices
    prediction = target.clone()
    prediction[0, 0] = torch.tensor([1.0, 2.0, 2.0])  # length 3 on one of 2 vertices -> pose mean 1.5
    prediction[1, 1] = torch.tensor([0.0, 0.0, 4.0])  # pose 1: 2.0
    prediction.requires_grad_(True)
    loss = epe_3d_loss(prediction, target, torch.tensor([True, True]))
    assert float(loss.detach()) == pytest.approx((1.5 + 2.0) / 2)
    (grad,) = torch.autograd.grad(loss, prediction)
    assert bool(torch.isfinite(grad).all())  # exact vertices (zero error) give a zero, not NaN, gradient
    assert bool((grad[0, 1] == 0).all()) and torch.allclose(grad[0, 0], torch.tensor([1.0, 2.0, 2.0]) / 3 / 4)
    nan_target = target.clone()
    nan_target[1] = math.nan
    assert float(epe_3d_loss(prediction, nan_target, torch.tensor([True, False])).detach()) == pytest.approx(1.5)


def test_pose_balance_weights_make_the_3d_terms_measure_relative_error() -> None:
    # three labelled poses moving one vertex by 1, 3 and 0 (the neutral row), and an unlabelled NaN pose
    target = torch.zeros(4, 2, 3)
    target[0, 0, 0], target[1, 0, 0], target[3] = 1.0, 3.0, math.nan
    labelled = torch.tensor([True, True, True, False])
    assert torch.equal(pose_balance_weights(target, labelled, 0.0), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    weights = pose_balance_weights(target, labelled, 1.0)
    # rms 0.707 and 2.12, mean 1.41: raw weights 2, 2/3 and 1 (the still row), normalised to mean 1
    raw = torch.tensor([2.0, 2.0 / 3.0, 1.0])
    assert torch.allclose(weights[:3], raw / raw.mean()) and float(weights[3]) == 0.0
    assert torch.allclose(pose_balance_weights(target, labelled, 0.5)[:3], raw.sqrt() / raw.sqrt().mean())
    # a 10% error costs the same on either moving pose once weighted; unweighted, the large pose's costs more
    small_off, large_off = target.clone(), target.clone()
    small_off[0, 0, 0], large_off[1, 0, 0] = 1.1, 3.3
    for loss, factor in ((mse_3d_loss, 9.0), (epe_3d_loss, 3.0)):
        assert float(loss(large_off, target, labelled)) == pytest.approx(factor * float(loss(small_off, target, labelled)))
        assert float(loss(large_off, target, labelled, weights)) == pytest.approx(
            float(loss(small_off, target, labelled, weights)))
    # a pose far larger than the others cannot silence them: a ratio is clipped to 10
    target[1, 0, 0] = 1e6
    clipped = pose_balance_weights(target, labelled, 1.0)
    assert float(clipped[0] / clipped[2]) == pytest.approx(10.0) and float(clipped[1] / clipped[2]) == pytest.approx(0.5, rel=1e-5)


def test_uniform_laplacian_and_regularization_loss() -> None:
    # a fan: centre 0 joined to a square of 1..4
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    laplacian = uniform_laplacian(faces, 6)  # vertex 5 is in no face
    dense = laplacian.to_dense()
    assert dense[0].tolist() == [1.0, -0.25, -0.25, -0.25, -0.25, 0.0]
    assert dense[1].tolist() == pytest.approx([-1 / 3, 1.0, -1 / 3, 0.0, -1 / 3, 0.0])
    assert dense[5].abs().sum() == 0.0
    # rigid translation of every vertex is perfectly smooth
    deltas = torch.ones(2, 6, 3)
    assert float(regularization_loss(deltas, laplacian)) == pytest.approx(0.0, abs=1e-7)
    # a spike of height 4 at the centre: (L d)_0 = 4, (L d)_k = -4 / 3 on the four rim vertices
    spike = torch.zeros(6, 3)
    spike[0, 2] = 4.0
    spike.requires_grad_(True)
    loss = regularization_loss(spike, laplacian)
    assert float(loss.detach()) == pytest.approx((16.0 + 4 * 16.0 / 9) / 6)
    assert _has_gradient(loss, spike)
    # a batch of poses averages over poses too
    batch = torch.stack([spike.detach(), torch.zeros(6, 3)])
    assert float(regularization_loss(batch, laplacian)) == pytest.approx(float(loss.detach()) / 2)


def test_weighted_total() -> None:
    terms = {
        "image": torch.tensor(0.1), "mask": torch.tensor(0.2), "displacement_2d": torch.tensor(0.3),
        "regularization": torch.tensor(100.0), "mse_3d": torch.tensor(5.0),  # mse_3d: logged only in stage 1
    }
    total = weighted_total(terms, STAGE1_WEIGHTS)
    assert float(total.detach()) == pytest.approx(10.0 * 0.1 + 0.2 + 0.3 + 0.0001 * 100.0)
    with pytest.raises(ConfigError, match="landmark_2d"):
        weighted_total(terms, STAGE2_WEIGHTS)
    with pytest.raises(ConfigError, match="weights must be finite"):
        weighted_total(terms, {"image": -1.0})
    with pytest.raises(ConfigError):
        weighted_total(terms, {})
    prediction = torch.tensor([0.5, 0.5], requires_grad=True)
    total = weighted_total({"mask": mask_loss(prediction, torch.zeros(2))}, {"mask": 2.0})
    assert float(total.detach()) == pytest.approx(1.0)
    assert _has_gradient(total, prediction)
