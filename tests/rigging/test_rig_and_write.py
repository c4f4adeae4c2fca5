"""facerig.rigging.rig_and_write: one head's outputs written as a set, checked before any work, never onto an input
and never outside the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerig.errors import ConfigError, ExportError, OutputError
from facerig.io import load_mesh
from facerig.nn.model import fresh_model
from facerig.rig import Rig
from facerig.rigging.rig_and_write import METHODS, RigMethod, RigOptions, rig_and_write


@pytest.fixture(scope="module")
def model():
    return fresh_model(seed=0, output_init_std=1e-2)


@pytest.fixture
def head(tmp_path: Path, heads_dir: Path) -> Path:
    path = tmp_path / "in" / "suzanne.obj"
    path.parent.mkdir()
    path.write_bytes((heads_dir / "suzanne.obj").read_bytes())
    return path


def test_every_method_has_a_rigging_function() -> None:
    assert set(METHODS) == set(RigMethod) and all(callable(function) for function in METHODS.values())


def test_a_head_is_rigged_and_written_as_one_set(model, head: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = rig_and_write(head, out, ("usda", "glb"), "network", "arkit", RigOptions(cache_dir=tmp_path / "ops"),
                           stem="a/b", model=model)
    assert result.outputs == (out / "a" / "b.facerig.npz", out / "a" / "b.usda", out / "a" / "b.glb")
    names = sorted(path.name for path in (out / "a").iterdir())
    assert names == ["b.facerig.npz", "b.glb", "b.glb.facerig.json", "b.usda", "b.usda.facerig.json"]
    assert Rig.load(result.outputs[0]).n_shapes == 95 == result.rig.n_shapes  # the bundle keeps FACS names
    assert result.timings.total >= result.timings.network + result.timings.export > 0


def test_a_failing_format_leaves_no_output_of_the_set(model, head: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "suzanne.bin").mkdir(parents=True)  # the .gltf's side file cannot be written
    with pytest.raises(ExportError, match="cannot write"):
        rig_and_write(head, out, ("usd", "gltf"), options=RigOptions(cache_dir=tmp_path / "ops"), model=model)
    assert sorted(path.name for path in out.iterdir()) == ["suzanne.bin"]  # no bundle, no usd, no temp file


def test_outputs_never_replace_the_input_nor_leave_the_output_folder(
    model, head: Path, heads_dir: Path, tmp_path: Path
) -> None:
    robot = head.parent / "robot.glb"
    robot.write_bytes((heads_dir / "robot_expressive.glb").read_bytes())
    before = robot.read_bytes()
    with pytest.raises(OutputError, match="would overwrite the input"):  # a loaded mesh's own file counts too
        rig_and_write(load_mesh(robot), head.parent, ("glb",), model=model)
    assert robot.read_bytes() == before
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "planted").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match="leads outside the output folder"):
        rig_and_write(head, out, (), stem="planted/deeper/head", model=model)
    assert list(elsewhere.iterdir()) == []  # checked before its missing subfolder was made


def test_overwrite_off_and_unknown_choices_fail_before_any_work(head: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "suzanne.facerig.npz").write_bytes(b"an earlier rig")
    with pytest.raises(OutputError, match="overwriting is off"):
        rig_and_write(head, out, overwrite=False)
    with pytest.raises(ConfigError, match="RigMethod 'trnsfer'"):
        rig_and_write(head, out, method="trnsfer")
    with pytest.raises(OutputError, match="unknown export format"):
        rig_and_write(head, out, formats=("blend",))
    assert (out / "suzanne.facerig.npz").read_bytes() == b"an earlier rig"
