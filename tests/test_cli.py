"""The thin CLI: rig → bundle → export → info, and one red line (exit 1) for expected failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerig.cli import run
from facerig.model import save_packaged
from facerig.rig import Rig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import dataclasses

    import torch

    from facerig.network import NetworkConfig, RigNetwork
    from facerig.vocabulary import load_vocabulary

    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(1)
    network = RigNetwork(dataclasses.replace(NetworkConfig.default(), output_init_std=1e-2))
    save_packaged(network, folder, {"action_names": list(load_vocabulary().action_names), "name": "cli-test"})
    return folder


def test_rig_export_info_round_trip(model_dir, heads_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = run(["rig", str(heads_dir / "suzanne.obj"), "-o", str(out), "--model", str(model_dir), "--format", "npz,usda"])
    assert code == 0
    bundle = out / "suzanne.facerig.npz"
    rig = Rig.load(bundle)
    assert rig.n_shapes == 95 and np.isfinite(rig.deltas).all()
    assert (out / "suzanne.usda").is_file() and (out / "suzanne.usda.facerig.json").is_file()

    assert run(["export", str(bundle), "--format", "glb,fbx", "-o", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "suzanne.glb").stat().st_size > 0
    assert (tmp_path / "exp" / "suzanne.fbx").stat().st_size > 0

    capsys.readouterr()
    assert run(["info", str(bundle), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "rig" and summary["shapes"] == 95 and summary["correctives"] == 48
    assert summary["mesh"]["vertices"] == 507


def test_rig_mirror_average_flag_reaches_the_pipeline(model_dir, heads_dir, tmp_path) -> None:
    plain, mirrored = tmp_path / "plain", tmp_path / "mirrored"
    head = str(heads_dir / "suzanne.obj")
    assert run(["rig", head, "-o", str(plain), "--model", str(model_dir)]) == 0
    assert run(["rig", head, "-o", str(mirrored), "--model", str(model_dir), "--mirror-average"]) == 0
    one, two = Rig.load(plain / "suzanne.facerig.npz"), Rig.load(mirrored / "suzanne.facerig.npz")
    assert not one.metadata["mirror_averaged"] and two.metadata["mirror_averaged"]
    assert np.abs(one.deltas - two.deltas).max() > 1e-6


def test_expected_failures_are_one_red_line(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.obj"
    assert run(["info", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope.obj" in err[0]

    junk = tmp_path / "junk.facerig.npz"
    junk.write_bytes(b"\x89PNG not a bundle")
    assert run(["export", str(junk), "--format", "usd"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.facerig.npz" in err[0]
    assert not (tmp_path / "junk.usd").exists()


def test_missing_model_is_a_clear_error(heads_dir, tmp_path, capsys) -> None:
    code = run(["rig", str(heads_dir / "suzanne.obj"), "-o", str(tmp_path), "--model", str(tmp_path / "no-model")])
    assert code == 1
    assert "no-model" in capsys.readouterr().err
