"""Unit names and the unit guessed from a head's size when its file states none."""

from __future__ import annotations

import numpy as np
import pytest

from facerig.errors import ConfigError
from facerig.io import load_mesh
from facerig.units import infer_meters_per_unit, parse_units, resolve_meters_per_unit, unit_name

ICT_HEAD = np.array([[0.0, 0.0, 0.0], [25.0, 34.0, 22.0]])  # the ICT head's bounding box, centimetres


def test_unit_guess_picks_the_unit_that_makes_a_head_about_30_cm() -> None:
    assert infer_meters_per_unit(ICT_HEAD) == 0.01
    assert infer_meters_per_unit(ICT_HEAD / 100) == 1.0
    assert infer_meters_per_unit(ICT_HEAD / 10) == 0.1  # a MakeHuman-sized head: decimetres
    assert infer_meters_per_unit(ICT_HEAD * 10) == 0.001
    assert infer_meters_per_unit(np.zeros((3, 3))) == 1.0


def test_unit_names_parse_and_print() -> None:
    assert [parse_units(n) for n in ("m", "DM", " cm ", "mm", "in", "ft")] == [1.0, 0.1, 0.01, 0.001, 0.0254, 0.3048]
    assert unit_name(0.1) == "dm" and unit_name(0.0254) == "in" and unit_name(0.05) == "0.05 m"
    with pytest.raises(ConfigError, match="unknown unit 'km'.*m, dm, cm, mm, in, ft"):
        parse_units("km")


def test_stated_unit_wins_over_the_guess() -> None:
    assert resolve_meters_per_unit(0.0254, ICT_HEAD) == (0.0254, False)
    assert resolve_meters_per_unit(None, ICT_HEAD) == (0.01, True)


def test_load_mesh_units_sets_and_overrides(heads_dir, tmp_path) -> None:
    suzanne = heads_dir / "suzanne.obj"
    assert load_mesh(suzanne).meters_per_unit is None  # OBJ states no unit
    assert load_mesh(suzanne, units="dm").meters_per_unit == 0.1
    glb = heads_dir / "robot_expressive.glb"  # glTF states metres; --units replaces it
    assert load_mesh(glb).meters_per_unit == 1.0
    assert load_mesh(glb, units="cm").meters_per_unit == 0.01


def test_info_prints_the_guessed_unit_with_the_size(heads_dir, capsys) -> None:
    from facerig.cli import run

    assert run(["info", str(heads_dir / "suzanne.obj")]) == 0
    assert "size: 0.273 x 0.197 x 0.17 m (guessed units: dm)" in capsys.readouterr().out
    assert run(["info", str(heads_dir / "suzanne.obj"), "--units", "in"]) == 0
    assert "size: 0.0695 x 0.05 x 0.0433 m (--units: in)" in capsys.readouterr().out
    assert run(["info", str(heads_dir / "suzanne.obj"), "--units", "furlong"]) == 1
    assert "unknown unit 'furlong'" in capsys.readouterr().err
