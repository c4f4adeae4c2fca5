"""RigNetwork: invariances, the global path between components, TorchScript parity, encode/deform split, training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facerig.errors import ConfigError
from facerig.nn.network import DiffusionBlock, NetworkConfig, RigNetwork, count_parameters
from facerig.nn.operators import compute_operators

TINY = NetworkConfig(width=16, n_blocks=3, k_eig=24, global_width=16, global_dim=8, n_hks=4, output_init_std=0.1)


def bumpy_sphere(seed: int, radius: float = 0.4, center=(0.0, 0.0, 0.0), n_lat: int = 10, n_lon: int = 16):
    """A closed UV sphere with smooth random bumps, so that its Laplace spectrum has no degenerate eigenvalues.

    Returns (V, 3) float64 vertices and (F, 3) int64 triangles, outward oriented.
    """
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    unit = np.vstack([[0.0, 1.0, 0.0], unit, [0.0, -1.0, 0.0]])
    coeffs = np.random.default_rng(seed).uniform(-0.15, 0.15, 6)
    x, y, z = unit.T
    bumps = 1 + coeffs @ np.stack([x, y, z, x * y, y * z, z * x * x])
    vertices = unit * (radius * bumps)[:, None] + np.asarray(center)
    triangles = [[0, 1 + (j + 1) % n_lon, 1 + j] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            triangles += [[a, b, b + n_lon], [a, b + n_lon, a + n_lon]]
    base, last = 1 + (n_lat - 2) * n_lon, len(vertices) - 1
    triangles += [[base + j, base + (j + 1) % n_lon, last] for j in range(n_lon)]
    return vertices, np.asarray(triangles, np.int64)


def operators_for(vertices: np.ndarray, triangles: np.ndarray, k: int) -> dict[str, torch.Tensor]:
    return compute_operators(vertices, triangles, k).to_torch()


def network(config: NetworkConfig = TINY, seed: int = 0) -> RigNetwork:
    torch.manual_seed(seed)
    return RigNetwork(config).eval()


def activations(n_poses: int, n_actions: int = 47, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    acts = torch.rand(n_poses, n_actions, generator=generator)
    acts[0] = 0.0  # the neutral row
    return acts


@pytest.fixture(scope="module")
def sphere():
    vertices, triangles = bumpy_sphere(seed=1)
    return torch.tensor(vertices, dtype=torch.float32), operators_for(vertices, triangles, TINY.k_eig)


def test_vertex_order_invariance_with_operators_recomputed_for_the_permuted_mesh():
    vertices, triangles = bumpy_sphere(seed=2)
    perm = np.random.default_rng(0).permutation(len(vertices))
    inverse = np.argsort(perm)
    permuted_vertices, permuted_triangles = vertices[perm], inverse[triangles]  # new vertex i is old perm[i]

    net, acts = network(), activations(5)
    with torch.no_grad():
        out = net(torch.tensor(vertices, dtype=torch.float32), operators_for(vertices, triangles, TINY.k_eig), acts)
        out_perm = net(
            torch.tensor(permuted_vertices, dtype=torch.float32),
            operators_for(permuted_vertices, permuted_triangles, TINY.k_eig),
            acts,
        )
    assert out.abs().mean() > 0.05  # a real response, so the comparison below means something
    torch.testing.assert_close(out_perm, out[:, perm], atol=1e-5, rtol=0)


def test_output_is_invariant_to_each_vertex_tangent_frame(sphere):
    # Rotating vertex i's tangent frame by angle a_i multiplies its complex gradient by exp(-i a_i);
    # Re(conj(g) A g) must not notice.
    vertices, ops = sphere
    angle = torch.rand(len(vertices), generator=torch.Generator().manual_seed(3)) * 2 * np.pi
    a = angle[ops["grad_rows"]]
    rotated = dict(ops)
    rotated["grad_x"] = torch.cos(a) * ops["grad_x"] + torch.sin(a) * ops["grad_y"]
    rotated["grad_y"] = -torch.sin(a) * ops["grad_x"] + torch.cos(a) * ops["grad_y"]
    net, acts = network(), activations(4)
    with torch.no_grad():
        torch.testing.assert_close(net(vertices, rotated, acts), net(vertices, ops, acts), atol=1e-5, rtol=0)


def test_block_matches_textbook_diffusionnet_block(sphere):
    """The fast block (spectral-side gradients, split first layer) equals the plain formulation with a sparse
    gradient of the explicitly reconstructed diffused signal and a concatenated MLP input."""
    vertices, ops = sphere
    torch.manual_seed(4)
    block = DiffusionBlock(width=6, hidden=10, dropout=0.0)
    x = torch.randn(len(vertices), 3, 6)  # (V, N, C)
    evals, evecs, mass = ops["evals"], ops["evecs"], ops["mass"]
    rows, cols = ops["grad_rows"], ops["grad_cols"]
    shape = (len(vertices), len(vertices))
    grad_x = torch.sparse_coo_tensor(torch.stack([rows, cols]), ops["grad_x"], shape, check_invariants=True)
    grad_y = torch.sparse_coo_tensor(torch.stack([rows, cols]), ops["grad_y"], shape, check_invariants=True)

    with torch.no_grad():
        time = torch.exp(block.log_time)
        coefs = torch.einsum("vk,v,vnc->knc", evecs, mass, x) * torch.exp(-evals[:, None, None] * time)
        x_diff = torch.einsum("vk,knc->vnc", evecs, coefs)
        flat = x_diff.reshape(len(vertices), -1)
        gx = torch.sparse.mm(grad_x, flat).view_as(x)
        gy = torch.sparse.mm(grad_y, flat).view_as(x)
        a_gx = gx @ block.rot_re.t() - gy @ block.rot_im.t()  # Re(A g), A = rot_re + i rot_im
        a_gy = gx @ block.rot_im.t() + gy @ block.rot_re.t()  # Im(A g)
        features = torch.tanh(gx * a_gx + gy * a_gy)
        expected = block.lin_in(torch.cat([x, x_diff, features], -1))

        picked = evecs[cols]
        recon = torch.cat(
            [
                evecs,
                torch.zeros_like(evecs).index_add_(0, rows, ops["grad_x"][:, None] * picked),
                torch.zeros_like(evecs).index_add_(0, rows, ops["grad_y"][:, None] * picked),
            ]
        )
        actual = block.pre(x, (evecs * mass[:, None]).t().contiguous(), recon, evals)
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=1e-4)


def test_global_vector_carries_geometry_between_disconnected_components():
    # Two separate components; moving A rigidly leaves A's intrinsic spectrum and all of B's operators unchanged,
    # so any change of B's output can only come through the pooled vector G0.
    a_vertices, a_triangles = bumpy_sphere(seed=5, radius=0.3, center=(-0.4, 0.0, 0.0))
    b_vertices, b_triangles = bumpy_sphere(seed=6, radius=0.15, center=(0.4, 0.0, 0.0))
    n_a = len(a_vertices)
    triangles = np.vstack([a_triangles, b_triangles + n_a])
    moved_a = a_vertices + np.array([0.05, 0.12, -0.08])
    net, acts = network(dataclasses.replace(TINY, k_eig=32)), activations(6)

    def b_output(a_positions: np.ndarray, zero_g0: bool) -> torch.Tensor:
        vertices = np.vstack([a_positions, b_vertices])
        with torch.no_grad():
            encoded = net.encode(torch.tensor(vertices, dtype=torch.float32), operators_for(vertices, triangles, 32))
            if zero_g0:
                encoded["g0"] = torch.zeros_like(encoded["g0"])
            return net.deform(encoded, acts)[:, n_a:]

    # With G0: B responds to where A is (at random init weakly, but 100x above the round-off bound below).
    effect = (b_output(moved_a, False) - b_output(a_vertices, False)).abs().max()
    assert effect > 1e-4
    # Without G0 nothing else connects them.
    torch.testing.assert_close(b_output(moved_a, True), b_output(a_vertices, True), atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_matches_eager(sphere):
    vertices, ops = sphere
    net, acts = network(), activations(7)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        eager = net(vertices, ops, acts)
        for _ in range(3):  # the profiling executor specialises on later calls; every call must agree
            script_out = scripted(vertices, ops, acts)
            torch.testing.assert_close(script_out, eager, atol=1e-6, rtol=0)
        encoded = scripted.encode(vertices, ops)
        torch.testing.assert_close(scripted.deform(encoded, acts), eager, atol=1e-6, rtol=0)


def test_fourier_features_are_the_positional_encoding_and_script(sphere):
    vertices, ops = sphere
    config = dataclasses.replace(TINY, input_features=("xyz", "fourier"), n_fourier=3)
    assert config.n_input_features == 3 + 6 * 3
    net = network(config)
    features = net.input_features(vertices, ops["normals"], ops["evals"], ops["evecs"])
    # columns: xyz, then sin and cos of (x, y, z) each at pi, 2 pi, 4 pi (axis-major)
    torch.testing.assert_close(features[:, 3 + 2], torch.sin(4 * torch.pi * vertices[:, 0]))
    torch.testing.assert_close(features[:, 3 + 9 + 3], torch.cos(torch.pi * vertices[:, 1]))
    assert "fourier_freqs" not in net.state_dict()  # derived from the config, not stored
    acts = activations(3)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(net)(vertices, ops, acts), net(vertices, ops, acts), atol=1e-6, rtol=0)


def test_encode_once_then_batched_deform_equals_per_pose_forward(sphere):
    vertices, ops = sphere
    net, acts = network(), activations(9)
    with torch.no_grad():
        batched = net.deform(net.encode(vertices, ops), acts)
        single = torch.cat([net(vertices, ops, acts[i : i + 1]) for i in range(len(acts))])
    assert batched.shape == (9, len(vertices), 3)
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(batched[1], batched[2], atol=1e-3)  # poses really differ


def test_fresh_output_head_gives_near_zero_displacements(sphere):
    vertices, ops = sphere
    net = network(dataclasses.replace(TINY, output_init_std=NetworkConfig().output_init_std))
    with torch.no_grad():
        out = net(vertices, ops, activations(4))
    assert 0 < out.abs().max() < 1e-3  # the sphere has radius 0.4


def test_paper_configuration_has_about_5_4_million_parameters():
    paper = count_parameters(RigNetwork(NetworkConfig.paper()))
    default = count_parameters(RigNetwork(NetworkConfig.default()))
    print(f"parameters: paper {paper:,}, default {default:,}")
    assert abs(paper - 5.4e6) <= 0.05 * 5.4e6
    assert default < paper / 50


def test_adam_steps_reduce_loss_and_train_every_parameter(sphere):
    vertices, ops = sphere
    torch.manual_seed(0)
    net = RigNetwork(dataclasses.replace(TINY, output_init_std=NetworkConfig().output_init_std)).train()
    acts = activations(8)
    # Toy rig: action 0 pushes along the normal, action 1 lifts the upper half, in proportion to the activation.
    upper = (vertices[:, 1] > 0).float()[:, None] * torch.tensor([0.0, 0.05, 0.0])
    target = acts[:, 0, None, None] * 0.05 * ops["normals"] + acts[:, 1, None, None] * upper

    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        optimizer.zero_grad()
        loss = torch.mean((net(vertices, ops, acts) - target) ** 2)
        loss.backward()
        if step == 0:
            silent = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert silent == []
        optimizer.step()
        losses.append(loss.item())
    print(f"loss {losses[0]:.3g} -> {losses[-1]:.3g}")
    assert losses[-1] < 0.4 * losses[0]  # the initial output is ~0, so losses[0] is the do-nothing loss


def test_config_round_trips_and_rejects_bad_values():
    config = NetworkConfig.paper()
    assert NetworkConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown"):
        NetworkConfig.from_dict({**config.to_dict(), "widht": 3})
    with pytest.raises(ConfigError, match="input_features"):
        NetworkConfig(input_features=("curvature",))
    with pytest.raises(ConfigError, match="width"):
        NetworkConfig(width=0)
