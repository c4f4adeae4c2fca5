"""The thin CLI: rig → bundle → export → info, and one red line (exit 1) for expected failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerig.cli import run
from facerig.nn.model import save_packaged
from facerig.rig import Rig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import dataclasses

    import torch

    from facerig.nn.network import NetworkConfig, RigNetwork
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
    # offsets are stated in the head's unit (Suzanne's OBJ states none: 2.7 units across reads as decimetres)
    assert summary["mesh"]["units"] == {"name": "dm", "meters_per_unit": 0.1, "source": "guessed"}
    assert run(["info", str(bundle)]) == 0
    assert "largest shapes (dm, guessed): " in capsys.readouterr().out


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


# ------------------------------------------------------------------------------ flags reach the library call
def glb_target_names(path) -> list[str]:
    """The morph target names of a .glb's first mesh (``mesh.extras.targetNames``)."""
    data = path.read_bytes()
    length = int.from_bytes(data[12:16], "little")
    return json.loads(data[20 : 20 + length])["meshes"][0]["extras"]["targetNames"]


@pytest.mark.slow  # the transfer rig takes several seconds
def test_method_and_naming_flags_reach_the_rig_and_its_files(model_dir, heads_dir, tmp_path) -> None:
    head = str(heads_dir / "suzanne.obj")
    network, transfer = tmp_path / "network", tmp_path / "transfer"
    assert run(["rig", head, "-o", str(network), "--model", str(model_dir), "-f", "glb"]) == 0
    assert run(["rig", head, "-o", str(transfer), "--method", "transfer", "--naming", "arkit", "-f", "glb"]) == 0

    by_network, by_transfer = Rig.load(network / "suzanne.facerig.npz"), Rig.load(transfer / "suzanne.facerig.npz")
    assert by_network.metadata["method"] == "network" and by_transfer.metadata["method"] == "transfer"
    assert np.abs(by_network.deltas - by_transfer.deltas).max() > 1e-3
    facs, arkit = glb_target_names(network / "suzanne.glb"), glb_target_names(transfer / "suzanne.glb")
    assert len(facs) == 95 and "JawDrop" in facs and "JawDrop_LeftLipCornerPuller" in facs
    assert len(arkit) == 52 and "jawOpen" in arkit and "JawDrop" not in arkit
    sidecar = json.loads((transfer / "suzanne.glb.facerig.json").read_text())
    assert sidecar["naming"] == "arkit" and sidecar["rig"]["method"] == "transfer"


@pytest.mark.slow  # two rigs, seven formats each
def test_two_runs_write_byte_identical_files_in_every_format(model_dir, heads_dir, tmp_path) -> None:
    formats = "npz,usd,usda,usdc,glb,gltf,fbx"
    for folder in ("one", "two"):
        args = ["rig", str(heads_dir / "suzanne.obj"), "-o", str(tmp_path / folder), "--model", str(model_dir)]
        assert run([*args, "-f", formats]) == 0
    one = {path.name: path.read_bytes() for path in (tmp_path / "one").iterdir()}
    two = {path.name: path.read_bytes() for path in (tmp_path / "two").iterdir()}
    # bundle, 6 exports, their 6 sidecars and the .gltf's .bin
    assert len(one) == 14 and one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []
    assert b"timings" not in one["suzanne.facerig.npz"] and b"timings" not in one["suzanne.glb"]


# ------------------------------------------------------------------------------ usage errors and help
@pytest.mark.parametrize(
    "argv, words",
    [
        (["rig", "HEAD"], "Missing option '--output'"),
        (["rig", "HEAD", "-o", "OUT", "--method", "trnsfer"], "'trnsfer' is not one of 'network', 'transfer'"),
        (["rig", "HEAD", "-o", "OUT", "--naming", "ARKit52"], "--naming"),
        (["rig", "HEAD", "-o", "OUT", "--format", "usd,blend"], "unknown format blend"),
        (["rig", "HEAD", "-o", "OUT", "--colour"], "No such option: --colour"),
        (["rgi", "HEAD"], "No such command 'rgi'"),
        (["batch", "HEAD", "-o", "OUT", "--method", "trnsfer"], "'trnsfer' is not one of"),
        (["export", "HEAD", "--format", "obj"], "unknown format obj"),
    ],
)
def test_usage_errors_are_one_red_line_before_any_work(argv, words, heads_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = [str(heads_dir / "suzanne.obj") if a == "HEAD" else str(out) if a == "OUT" else a for a in argv]
    assert run(argv) == 2  # click's exit code for usage errors
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and words in lines[0], captured.err
    assert lines[1].startswith("try 'facerig") and lines[1].endswith(" --help'")
    assert captured.out == "" and not out.exists()


def test_help_keeps_its_width_in_a_narrow_pipe(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    assert run(["rig", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    method = next(line for line in lines if "--method" in line)
    assert "<network|transfer>" in method and "neural network" in method


# ------------------------------------------------------------------------------ outputs never destroy inputs
def test_rig_refuses_to_overwrite_its_input_before_any_work(model_dir, heads_dir, tmp_path, capsys) -> None:
    head = tmp_path / "robot.glb"
    head.write_bytes((heads_dir / "robot_expressive.glb").read_bytes())
    before = head.read_bytes()
    assert run(["rig", str(head), "-o", str(tmp_path), "-f", "glb", "--model", str(model_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "would overwrite the input" in lines[0] and "robot.glb" in lines[0]
    assert head.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["robot.glb"]  # nothing else written


def test_rig_refuses_two_heads_with_one_output_name(model_dir, heads_dir, tmp_path, capsys) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "neutral.obj").write_bytes((heads_dir / "suzanne.obj").read_bytes())
    out = tmp_path / "out"
    argv = ["rig", str(tmp_path / "a" / "neutral.obj"), str(tmp_path / "b" / "neutral.obj"), "-o", str(out)]
    assert run([*argv, "--model", str(model_dir)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "would both be written" in lines[0]
    assert not out.exists()


def test_rig_goes_on_after_a_bad_head_and_sums_up(model_dir, heads_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\n")
    out = tmp_path / "out"
    assert run(["rig", str(bad), str(heads_dir / "suzanne.obj"), "-o", str(out), "--model", str(model_dir)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    errors = [line for line in errors if line.startswith("error:")]  # units lines of the rigged heads aside
    assert len(errors) == 2 and "bad.obj" in errors[0] and "no faces" in errors[0]
    assert errors[1] == f"error: 1 of 2 heads failed: {bad}"
    assert "suzanne.obj: 95 shapes" in captured.out
    assert sorted(path.name for path in out.iterdir()) == ["suzanne.facerig.npz"]


def test_an_output_folder_that_is_a_file_is_one_red_line(heads_dir, tmp_path, capsys) -> None:
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("a file")
    assert run(["rig", str(heads_dir / "suzanne.obj"), "-o", str(not_a_folder)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {not_a_folder}: the output folder is a file"]


def test_an_output_folder_that_cannot_be_made_is_one_red_line(heads_dir, capsys) -> None:
    unwritable = "/proc/facerig-out"  # procfs refuses new folders, even to root
    assert run(["rig", str(heads_dir / "suzanne.obj"), "-o", unwritable]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {unwritable}: cannot create the output folder")
