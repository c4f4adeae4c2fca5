"""Growing a trained network's MLPs: the same function at the start, and every new weight learns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facerig.errors import ConfigError
from facerig.nn.network import NetworkConfig, RigNetwork
from facerig.nn.operators import compute_operators
from facerig.trainer.grow import widen_state

NARROW = NetworkConfig(width=8, n_blocks=2, k_eig=12, global_width=8, global_dim=4, n_hks=4, n_actions=5,
                       output_init_std=0.1)
WIDE = dataclasses.replace(NARROW, mlp_ratio=2.5)


@pytest.fixture(scope="module")
def bumpy_grid() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    n = 9
    u, v = np.meshgrid(np.linspace(-0.5, 0.5, n), np.linspace(-0.5, 0.5, n), indexing="ij")
    vertices = np.stack([u, v, 0.2 * np.sin(3 * u) * np.cos(2 * v)], -1).reshape(-1, 3)
    quads = [(i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1) for i in range(n - 1) for j in range(n - 1)]
    triangles = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], np.int64)
    return torch.from_numpy(vertices.astype(np.float32)), compute_operators(vertices, triangles, NARROW.k_eig).to_torch()


def _trained_narrow(seed: int = 0) -> RigNetwork:
    torch.manual_seed(seed)
    narrow = RigNetwork(NARROW)
    with torch.no_grad():  # biases away from their zero init, so that every weight block matters
        for parameter in narrow.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return narrow


def _widened(narrow: RigNetwork, seed: int = 1) -> RigNetwork:
    torch.manual_seed(seed)
    wide = RigNetwork(WIDE)
    wide.load_state_dict(widen_state(narrow.state_dict(), NARROW, wide.state_dict(), WIDE))
    return wide


def test_widened_network_computes_what_the_narrow_one_did(bumpy_grid) -> None:
    vertices, operators = bumpy_grid
    narrow = _trained_narrow()
    wide = _widened(narrow)
    assert WIDE.hidden == 20 and wide.blocks[0].block.lin_mid.weight.shape == (20, 20)
    activations = torch.rand(4, NARROW.n_actions, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = narrow(vertices, operators, activations)
        got = wide(vertices, operators, activations)
    assert expected.abs().max() > 1e-2  # a real output, not a near-zero one that would pass any test
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_every_new_weight_learns(bumpy_grid) -> None:
    vertices, operators = bumpy_grid
    wide = _widened(_trained_narrow())
    optimizer = torch.optim.Adam(wide.parameters(), lr=1e-2)
    target = 0.1 * torch.randn(3, len(vertices), 3, generator=torch.Generator().manual_seed(4))
    activations = torch.eye(NARROW.n_actions)[:3]
    for _ in range(2):  # two steps: the zeroed fan-out gets its gradient in the first, its inputs in the second
        optimizer.zero_grad()
        (wide(vertices, operators, activations) - target).square().mean().backward()
        optimizer.step()
    hidden = NARROW.hidden
    for block in wide.blocks:
        mlp = block.block
        # the zeroed blocks move (the columns of channels that a ReLU keeps off everywhere stay put)
        assert (mlp.lin_out.weight[:, hidden:] != 0).any(0).sum() >= 3
        assert (mlp.lin_mid.weight[:hidden, hidden:] != 0).any(0).sum() >= 3
        assert mlp.lin_mid.weight.grad[hidden:].abs().sum() > 0  # new second-layer channels get a gradient
        assert mlp.lin_in.weight.grad[hidden:].abs().sum() > 0  # new first-layer channels get a gradient
        assert block.cond.weight.grad[hidden:].abs().sum() > 0  # the pose reaches the new channels


@pytest.mark.parametrize("change", [{"width": 16}, {"mlp_ratio": 0.5}, {"n_actions": 6}])
def test_only_a_wider_mlp_can_be_grown_into(change: dict) -> None:
    other = dataclasses.replace(NARROW, **change)
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="only a larger mlp_ratio"):
        widen_state(RigNetwork(NARROW).state_dict(), NARROW, RigNetwork(other).state_dict(), other)
