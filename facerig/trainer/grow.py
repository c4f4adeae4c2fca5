"""Start a wider network from a trained narrower one without losing what it learned.

A stage's ``init`` checkpoint may hold a network whose blocks have fewer MLP hidden channels (a smaller
``mlp_ratio``) than the run's. :func:`widen_state` copies every trained weight into the leading slice of the
wider tensor and gives the new hidden channels fresh initial weights, except that the two weight blocks
through which new channels would reach the old ones are zero:

- ``lin_mid.weight[:H, H:]`` (new first-layer channels -> old second-layer channels), and
- ``lin_out.weight[:, H:]`` (new second-layer channels -> the block's output).

So the widened network computes exactly what the narrow one did, and every new weight still receives a
gradient from the first step (Net2Net's function-preserving idea, Chen et al. 2016, with zero fan-out
instead of duplicated units). Why: the pose condition enters each block as a bias on its H hidden channels,
and with H = 32 for 47 actions the small brow and lid poses were never fitted; widening keeps the thousands
of CPU steps already spent instead of starting over.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import torch

from facerig.errors import ConfigError
from facerig.nn.network import NetworkConfig

# Config fields that may differ between the checkpoint and the run: only the hidden width.
_GROWABLE = frozenset({"mlp_ratio"})


def widen_state(
    state: Mapping[str, torch.Tensor],
    old_config: NetworkConfig,
    fresh_state: Mapping[str, torch.Tensor],
    new_config: NetworkConfig,
) -> dict[str, torch.Tensor]:
    """A state dict for ``new_config`` that computes what ``state`` computes under ``old_config``.

    Args:
        state: trained weights of a :class:`facerig.nn.network.RigNetwork` built with ``old_config``.
        old_config: their architecture.
        fresh_state: a freshly initialised ``RigNetwork(new_config).state_dict()``: the new channels'
            initial weights come from it.
        new_config: the wider architecture; it may differ from ``old_config`` only in a hidden width at
            least as large.

    Raises:
        ConfigError: the architectures differ in anything else, or the new one is narrower.
    """
    different = {f.name for f in dataclasses.fields(NetworkConfig)
                 if getattr(old_config, f.name) != getattr(new_config, f.name)}
    if different - _GROWABLE or new_config.hidden < old_config.hidden:
        raise ConfigError(
            f"cannot start this network from the checkpoint: it differs in {sorted(different)} "
            f"(only a larger mlp_ratio can be grown into; hidden {old_config.hidden} -> {new_config.hidden})"
        )
    old_hidden = old_config.hidden
    widened: dict[str, torch.Tensor] = {}
    for name, fresh in fresh_state.items():
        trained = state[name]
        value = fresh.detach().clone()
        value[tuple(slice(0, n) for n in trained.shape)] = trained
        if trained.shape != fresh.shape and name.endswith("lin_mid.weight"):
            value[:old_hidden, old_hidden:] = 0.0
        elif trained.shape != fresh.shape and name.endswith("lin_out.weight"):
            value[:, old_hidden:] = 0.0
        widened[name] = value
    return widened
