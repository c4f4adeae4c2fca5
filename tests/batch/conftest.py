"""Fixtures for the batch tests: a small packaged model, small synthetic heads, and bad inputs.

The model is a freshly initialised default-architecture network (until a trained one is bundled), saved
with ``save_packaged`` so workers load it from a folder exactly as they would a trained one.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from facerig.nn.model import save_packaged
from facerig.nn.network import NetworkConfig, RigNetwork
from facerig.vocabulary import load_vocabulary

from batch_helpers import synthetic_head, write_obj


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged default-architecture model with random weights (visible, seeded responses)."""
    config = dataclasses.replace(NetworkConfig.default(), output_init_std=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = RigNetwork(config)
    folder = tmp_path_factory.mktemp("model")
    metadata = {"action_names": list(load_vocabulary().action_names), "name": "batch-test"}
    return save_packaged(network, folder, metadata)


@pytest.fixture
def good_heads(tmp_path: Path, heads_dir: Path) -> Path:
    """heads/: suzanne.obj (507 vertices) and two synthetic 162-vertex heads, one in a subfolder."""
    folder = tmp_path / "heads"
    folder.mkdir()
    shutil.copy(heads_dir / "suzanne.obj", folder / "suzanne.obj")
    write_obj(folder / "synth_a.obj", *synthetic_head(1))
    write_obj(folder / "studio" / "synth_b.obj", *synthetic_head(2))
    return folder
