"""The renderer against analytic cases: one known triangle, a known flow, gradchecks, silhouettes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerig.render import renderer
from facerig.render.renderer import (
    Light,
    PerspectiveCamera,
    frontal_camera,
    interpolate,
    rasterize,
    render_displacement,
    render_views,
    shade,
    soft_silhouette,
)


def _grid(n: int, half: float = 1.0, z: float = 0.0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat n x n vertex grid over [-half, half]^2 at height z, facing +Z: (n*n, 3) vertices, faces."""
    u = torch.linspace(-half, half, n, dtype=dtype)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    vertices = torch.stack([xx, yy, torch.full_like(xx, z)], dim=-1).reshape(-1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, faces


def _sphere(rings: int = 12, segments: int = 24, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed UV sphere with outward winding."""
    verts = [[0.0, radius, 0.0]]
    for r in range(1, rings):
        theta = math.pi * r / rings
        for s in range(segments):
            phi = 2 * math.pi * s / segments
            verts.append([radius * math.sin(theta) * math.cos(phi), radius * math.cos(theta),
                          radius * math.sin(theta) * math.sin(phi)])
    verts.append([0.0, -radius, 0.0])
    bottom = len(verts) - 1

    def ring(r: int, s: int) -> int:
        return 1 + (r - 1) * segments + s % segments

    faces = [[0, ring(1, s + 1), ring(1, s)] for s in range(segments)]
    for r in range(1, rings - 1):
        for s in range(segments):
            faces.append([ring(r, s), ring(r, s + 1), ring(r + 1, s + 1)])
            faces.append([ring(r, s), ring(r + 1, s + 1), ring(r + 1, s)])
    faces += [[bottom, ring(rings - 1, s), ring(rings - 1, s + 1)] for s in range(segments)]
    return torch.tensor(verts, dtype=torch.float64), torch.tensor(faces, dtype=torch.int64)


# ------------------------------------------------------------------------------------------------ camera
def test_camera_projects_points_to_analytic_pixels() -> None:
    camera = PerspectiveCamera(eye=(0.0, 0.0, 10.0), fov_degrees=90.0, image_size=(40, 60))
    assert camera.focal_length == pytest.approx(20.0)  # H / 2 / tan(45 deg)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [1.0, 2.0, 5.0]], dtype=torch.float64)
    projected = camera.project(points)
    # x = W/2 + f x / depth, y = H/2 - f y / depth, with f = 20, W/2 = 30, H/2 = 20
    expected = torch.tensor(
        [[30.0, 20.0, 10.0], [30.0 + 20.0 / 10, 20.0 - 40.0 / 10, 10.0], [30.0 + 20.0 / 5, 20.0 - 40.0 / 5, 5.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(projected, expected)


def test_frontal_camera_frames_the_head_from_plus_z() -> None:
    vertices = torch.tensor([[-1.0, -2.0, -0.5], [1.0, 2.0, 0.5], [0.3, 0.1, 0.2]])
    camera = frontal_camera(vertices, 64, margin=1.25)
    assert camera.eye[0] == pytest.approx(0.0) and camera.eye[1] == pytest.approx(0.0)
    assert camera.eye[2] > 0.5
    screen = camera.project(vertices.double())
    # the front face of the box (z = 0.5) is the largest in projection; its top edge reaches 1 / margin
    top = camera.project(torch.tensor([[0.0, 2.0, 0.5]], dtype=torch.float64))[0]
    assert 32.0 - top[1].item() == pytest.approx(32.0 / 1.25)
    assert bool(((screen[:, :2] > 0) & (screen[:, :2] < 64)).all())


# -------------------------------------------------------------------------------------- one known triangle
def test_triangle_covers_exactly_the_pixel_centres_inside_it() -> None:
    # legs along x and y from (1, 1), hypotenuse x + y = 10.2: centre (j+.5, i+.5) is inside iff
    # i >= 1, j >= 1 and i + j <= 9
    screen = torch.tensor([[1.0, 1.0, 5.0], [9.2, 1.0, 5.0], [1.0, 9.2, 5.0]])
    faces = torch.tensor([[0, 1, 2]])
    fragments = rasterize(screen, faces, 12)
    i, j = np.mgrid[0:12, 0:12]
    expected = (i >= 1) & (j >= 1) & (i + j <= 9)
    np.testing.assert_array_equal(fragments.mask.numpy(), expected)
    assert int(fragments.mask.sum()) == 36
    assert set(fragments.pix_to_face.unique().tolist()) == {-1, 0}
    # pixel (row 2, column 3) has its centre at (3.5, 2.5)
    b1, b2 = (3.5 - 1.0) / 8.2, (2.5 - 1.0) / 8.2
    torch.testing.assert_close(fragments.bary[2, 3], torch.tensor([1.0 - b1 - b2, b1, b2]))
    assert float(fragments.zbuf[2, 3]) == pytest.approx(5.0)
    assert bool(torch.isinf(fragments.zbuf[~fragments.mask]).all())
    assert bool((fragments.bary[~fragments.mask] == 0).all())


def test_winding_does_not_matter_and_triangles_behind_the_camera_are_skipped() -> None:
    screen = torch.tensor([[1.0, 1.0, 5.0], [9.2, 1.0, 5.0], [1.0, 9.2, 5.0]])
    ccw = rasterize(screen, torch.tensor([[0, 1, 2]]), 12)
    cw = rasterize(screen, torch.tensor([[0, 2, 1]]), 12)
    torch.testing.assert_close(ccw.mask, cw.mask)
    torch.testing.assert_close(ccw.bary[..., [0, 2, 1]], cw.bary)
    behind = screen.clone()
    behind[1, 2] = -1.0
    assert not bool(rasterize(behind, torch.tensor([[0, 1, 2]]), 12).mask.any())
    assert not bool(soft_silhouette(behind, torch.tensor([[0, 1, 2]]), 12).any())
    # a face grazing the camera plane projects to huge coordinates and must not blow the pixel loops up
    grazing = torch.cat([screen, torch.tensor([[1e30, -1e30, 1e-20]])])
    fragments = rasterize(grazing, torch.tensor([[0, 1, 2], [0, 1, 3]]), 12)
    assert bool((fragments.pix_to_face[ccw.mask] >= 0).all())


def test_barycentrics_are_perspective_correct() -> None:
    """Interpolated world positions must equal the ray/triangle intersection through each pixel centre."""
    camera = PerspectiveCamera(eye=(0.3, -0.2, 6.0), target=(0.3, -0.2, 0.0), fov_degrees=40.0, image_size=(24, 32))
    world = torch.tensor([[-1.5, -1.0, 1.0], [1.8, -0.8, -2.0], [0.0, 1.5, -0.5]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    screen = camera.project(world)
    fragments = rasterize(screen, faces, camera.image_size)
    positions = interpolate(fragments, faces, world)
    rows, cols = torch.nonzero(fragments.mask, as_tuple=True)
    assert len(rows) > 50
    # ray through the pixel centre, in world coordinates (the camera looks along -Z with +Y up)
    f = camera.focal_length
    direction = torch.stack(
        [(cols + 0.5 - 16.0) / f, -(rows + 0.5 - 12.0) / f, -torch.ones(len(rows), dtype=torch.float64)], dim=-1
    )
    eye = torch.tensor(camera.eye, dtype=torch.float64)
    normal = torch.linalg.cross(world[1] - world[0], world[2] - world[0])
    t = ((world[0] - eye) @ normal) / (direction @ normal)
    torch.testing.assert_close(positions[rows, cols], eye + t[:, None] * direction)
    torch.testing.assert_close(fragments.zbuf[rows, cols], t)  # depth along the viewing axis


def test_z_buffer_keeps_the_nearer_of_two_overlapping_triangles() -> None:
    near = [[0.0, 0.0, 2.0], [8.0, 0.0, 2.0], [0.0, 8.0, 2.0]]
    far = [[2.0, 2.0, 5.0], [10.0, 2.0, 5.0], [2.0, 10.0, 5.0]]
    for order in ([near, far], [far, near]):
        screen = torch.tensor(order[0] + order[1])
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
        fragments = rasterize(screen, faces, 12)
        near_face = 0 if order[0] is near else 1
        # (row 3, column 3): centre (3.5, 3.5) is inside both
        assert int(fragments.pix_to_face[3, 3]) == near_face
        assert float(fragments.zbuf[3, 3]) == pytest.approx(2.0)
        # (row 3, column 6): centre (6.5, 3.5) is only inside the far one
        assert int(fragments.pix_to_face[3, 6]) == 1 - near_face
        assert float(fragments.zbuf[3, 6]) == pytest.approx(5.0)


def test_chunked_rasterization_matches_a_single_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    vertices, faces = _sphere()
    camera = frontal_camera(vertices, 48)
    screen = camera.project(vertices)
    whole = rasterize(screen, faces, 48)
    whole_silhouette = soft_silhouette(screen, faces, 48)
    monkeypatch.setattr(renderer, "_CHUNK_PAIRS", 37)
    chunked = rasterize(screen, faces, 48)
    torch.testing.assert_close(chunked.pix_to_face, whole.pix_to_face)
    torch.testing.assert_close(chunked.bary, whole.bary)
    torch.testing.assert_close(soft_silhouette(screen, faces, 48), whole_silhouette)
    torch.testing.assert_close(soft_silhouette(screen, faces, 48, fragments=whole), whole_silhouette)


# -------------------------------------------------------------------------------------------- known flow
def test_displacement_of_a_translated_plane_is_the_analytic_pixel_shift() -> None:
    vertices, faces = _grid(5, half=1.0, z=0.0)
    camera = PerspectiveCamera(eye=(0.0, 0.0, 5.0), fov_degrees=40.0, image_size=(32, 40))
    offsets = torch.tensor([[0.1, -0.05, 0.0], [-0.2, 0.3, 0.0]], dtype=torch.float64)
    flow = render_displacement(vertices, vertices[None] + offsets[:, None], faces, camera)
    mask = rasterize(camera.project(vertices), faces, camera.image_size).mask
    assert flow.shape == (2, 32, 40, 2)
    assert int(mask.sum()) > 200
    f = camera.focal_length
    for pose, (dx, dy, _) in enumerate(offsets.tolist()):
        expected = torch.tensor([f * dx / 5.0, -f * dy / 5.0], dtype=torch.float64)  # screen y points down
        torch.testing.assert_close(flow[pose][mask], expected.expand(int(mask.sum()), 2))
        assert bool((flow[pose][~mask] == 0).all())
    single = render_displacement(vertices, vertices + offsets[0], faces, camera)
    torch.testing.assert_close(single, flow[0])


# ------------------------------------------------------------------------------------------- gradchecks
def _tiny_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    vertices = torch.tensor(
        [[-0.9, -0.7, 0.1], [0.8, -0.85, -0.2], [0.75, 0.9, 0.05], [-0.8, 0.7, -0.15], [0.05, 0.1, 0.4]],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    return vertices, faces


def test_interpolate_gradcheck_attributes_and_positions() -> None:
    vertices, faces = _tiny_mesh()
    camera = PerspectiveCamera(eye=(0.1, 0.05, 4.0), fov_degrees=35.0, image_size=(9, 10))
    screen = camera.project(vertices).detach().requires_grad_(True)
    fragments = rasterize(screen, faces, camera.image_size)
    assert int(fragments.mask.sum()) > 30
    attributes = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    attributes.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, a: interpolate(fragments, faces, a, s), (screen, attributes))


def test_soft_silhouette_gradcheck_positions() -> None:
    vertices, faces = _tiny_mesh()
    camera = PerspectiveCamera(eye=(0.1, 0.05, 4.0), fov_degrees=35.0, image_size=(9, 10))
    screen = camera.project(vertices).detach().requires_grad_(True)
    silhouette = soft_silhouette(screen, faces, camera.image_size, sigma=2.0)
    assert bool(((silhouette > 0.01) & (silhouette < 0.99)).sum() > 10)  # plenty of pixels in the soft band
    assert torch.autograd.gradcheck(lambda s: soft_silhouette(s, faces, camera.image_size, sigma=2.0), (screen,))


def test_render_displacement_gradcheck_deformed_vertices() -> None:
    vertices, faces = _tiny_mesh()
    camera = PerspectiveCamera(eye=(0.1, 0.05, 4.0), fov_degrees=35.0, image_size=(9, 10))
    deformed = (vertices + 0.05 * torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    deformed.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: render_displacement(vertices, d, faces, camera), (deformed,))


# ------------------------------------------------------------------------------------------- silhouettes
def test_soft_silhouette_equals_the_hard_mask_away_from_edges() -> None:
    vertices, faces = _sphere()
    camera = frontal_camera(vertices, 64)
    screen = camera.project(vertices)
    hard = rasterize(screen, faces, 64).mask.double()
    silhouette = soft_silhouette(screen, faces, 64, sigma=1.0)
    # pixels whose 9 x 9 neighbourhood is all inside or all outside
    pooled = torch.nn.functional.max_pool2d(hard[None, None], 9, stride=1, padding=4)[0, 0]
    eroded = -torch.nn.functional.max_pool2d(-hard[None, None], 9, stride=1, padding=4)[0, 0]
    far = pooled == eroded
    assert int(far.sum()) > 0.5 * 64 * 64
    assert float((silhouette[far] - hard[far]).abs().max()) < 1e-4
    near = ~far
    assert float(silhouette[near].min()) < 0.2 and float(silhouette[near].max()) > 0.8
    # the 0.5 level is the hard edge, and the soft area is the hard area
    torch.testing.assert_close(silhouette > 0.5, hard > 0.5)
    assert float(silhouette.sum()) == pytest.approx(float(hard.sum()), rel=0.01)


def test_soft_silhouette_has_no_seams_inside_a_single_layer_surface() -> None:
    # a plane with a smaller plane floating in front of it: neither the inner edges nor the small plane's
    # outline, seen against the big plane, bound the silhouette
    big, big_faces = _grid(7, half=1.0)
    small, small_faces = _grid(3, half=0.4, z=0.5)
    vertices, faces = torch.cat([big, small]), torch.cat([big_faces, small_faces + len(big)])
    camera = PerspectiveCamera(eye=(0.0, 0.0, 4.0), fov_degrees=40.0, image_size=(40, 40))
    screen = camera.project(vertices)
    hard = rasterize(screen, faces, 40).mask
    silhouette = soft_silhouette(screen, faces, 40)
    interior = -torch.nn.functional.max_pool2d(-hard[None, None].double(), 9, stride=1, padding=4)[0, 0] > 0
    assert int(interior.sum()) > 200
    assert bool((silhouette[interior] == 1.0).all())  # plain SoftRas would show every edge here


# ---------------------------------------------------------------------------------------------- shading
def test_lambert_shading_of_a_plane_facing_the_camera() -> None:
    vertices, faces = _grid(3, half=1.0)
    camera = PerspectiveCamera(eye=(0.0, 0.0, 5.0), fov_degrees=40.0, image_size=(16, 16))
    screen = camera.project(vertices)
    fragments = rasterize(screen, faces, 16)
    albedo = torch.tensor([0.5, 0.25, 1.0], dtype=torch.float64).expand(9, 3)
    # light along the camera's own axis: |n . l| = 1, so colour = albedo * (ambient + diffuse)
    head_on = shade(fragments, faces, vertices, screen, camera, albedo, Light((0.0, 0.0, -1.0), 0.2, 0.5))
    torch.testing.assert_close(head_on[fragments.mask], (0.7 * albedo[0]).expand(int(fragments.mask.sum()), 3))
    assert bool((head_on[~fragments.mask] == 0).all())
    # light at 60 degrees from the normal: |n . l| = 0.5
    tilted = shade(fragments, faces, vertices, screen, camera, albedo, Light((math.sqrt(3.0), 0.0, -1.0), 0.2, 0.5))
    torch.testing.assert_close(tilted[fragments.mask], (0.45 * albedo[0]).expand(int(fragments.mask.sum()), 3))


def test_render_views_shares_the_neutral_and_is_differentiable() -> None:
    vertices, faces = _sphere(8, 16)
    vertices = vertices.float()
    camera = frontal_camera(vertices, 32)
    offsets = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, -0.08, 0.1]])
    deformed = (vertices[None] + offsets[:, None]).requires_grad_(True)
    views = render_views(vertices, deformed, faces, camera)
    assert views.image.shape == (3, 32, 32, 3)
    assert views.mask.shape == (3, 32, 32)
    assert views.flow.shape == (3, 32, 32, 2)
    torch.testing.assert_close(views.flow, render_displacement(vertices, deformed, faces, camera))
    assert float(views.flow[0].detach().abs().max()) == 0.0  # the neutral pose does not move
    assert float(views.image[0].detach().max()) > 0.5
    for output in (views.image, views.mask, views.flow):
        (grad,) = torch.autograd.grad(output[1:].sum(), deformed, retain_graph=True)
        assert float(grad[1:].abs().sum()) > 0.0
        assert float(grad[0].abs().sum()) == 0.0  # pose 0 is not in the summed outputs


# ---------------------------------------------------------------------------------------------- devices
_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _DEVICES)
def test_every_output_lives_on_the_input_device_and_matches_cpu(device: str) -> None:
    vertices, faces = _sphere(rings=8, segments=16)
    camera = frontal_camera(vertices, 24)
    deltas = torch.zeros(2, len(vertices), 3, dtype=torch.float64)
    deltas[1, :, 0] = 0.1  # the second pose slides sideways, so its flow is non-zero
    posed = vertices[None] + deltas

    def run(dev: torch.device) -> list[torch.Tensor]:
        v, f, p = vertices.to(dev), faces.to(dev), posed.to(dev)
        screen = camera.project(v)
        fragments = rasterize(screen, f, camera.image_size)
        views = render_views(v, p, f, camera)
        return [
            fragments.pix_to_face, fragments.bary, fragments.zbuf,
            soft_silhouette(screen, f, camera.image_size),
            render_displacement(v, p, f, camera),
            views.image, views.mask, views.flow,
        ]

    reference = run(torch.device("cpu"))
    outputs = run(torch.device(device))
    assert all(out.device.type == device for out in outputs)
    assert int((outputs[0] >= 0).sum()) > 100  # the sphere is actually drawn
    assert float(outputs[4][1, ..., 0].abs().max()) > 0.5  # and the sideways pose moves pixels
    torch.testing.assert_close(outputs[0].cpu(), reference[0], rtol=0, atol=0)
    for out, ref in zip(outputs[1:], reference[1:]):
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-9, atol=1e-9)
