"""Accuracy metrics (facerig.eval.evaluate) on hand-computed cases, and `facerig eval` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerig.cli import run
from facerig.errors import DatasetError
from facerig.eval.evaluate import (
    best_gains,
    mae_q95,
    penetration_counts,
    side_share,
    signed_skin_distance,
    vertex_errors,
)


# ---------------------------------------------------------------------------------------------- metrics
def test_errors_mae_and_q95_by_hand():
    truth = np.zeros((2, 2, 3))
    truth[0, 0] = (0.3, 0.4, 0.0)  # |d| = 0.5 cm
    truth[1, 0] = (0.0, 0.0, 1.0)  # 1 cm
    truth[1, 1] = (1.2, 1.6, 0.0)  # 2 cm
    errors = vertex_errors(np.zeros_like(truth), truth, mm_per_unit=10.0)  # ICT: cm -> mm
    np.testing.assert_allclose(errors, [[5.0, 0.0], [10.0, 20.0]])
    mae, q95 = mae_q95(errors)
    assert mae == pytest.approx(8.75)
    # Sorted 0, 5, 10, 20: the 95th percentile sits 0.85 of the way from 10 to 20 (linear interpolation).
    assert q95 == pytest.approx(18.5)
    assert all(np.isnan(mae_q95(np.zeros(0))))


def test_gain_fit_is_exact_on_a_scaled_prediction():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(3, 20, 3))
    predicted = truth * np.array([0.5, 2.0, -1.0])[:, None, None]
    predicted[2] = 0.0  # a pose the method does not move: gain 0, error unchanged
    gains = best_gains(predicted, truth)
    np.testing.assert_allclose(gains, [2.0, 0.5, 0.0])
    fitted = vertex_errors(predicted * gains[:, None, None], truth, 1.0)
    assert fitted[:2].max() < 1e-12
    np.testing.assert_allclose(fitted[2], np.linalg.norm(truth[2], axis=1))


def _plate_and_chip():
    """A 10x10 skin plate at z = 0 (normal +z) and a small inner triangle at z = -1, plus one inner
    vertex 0.05 under the plate (within the tolerance used below, so never checked)."""
    vertices = np.array(
        [[-5, -5, 0], [5, -5, 0], [5, 5, 0], [-5, 5, 0],  # skin
         [0, 0, -1], [1, 0, -1], [0, 1, -1],  # chip
         [2, 2, -0.05], [3, 2, -0.05], [2, 3, -0.05]],  # sliver
        dtype=np.float64,
    )  # fmt: skip
    triangles = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [7, 8, 9]])
    return vertices, triangles


def test_signed_distance_to_the_skin():
    vertices, triangles = _plate_and_chip()
    skin = np.zeros(len(vertices), bool)
    skin[:4] = True
    distance = signed_skin_distance(vertices, triangles, skin, np.array([[0.5, 0.5, 2.0], [1, 1, -3.0]]))
    np.testing.assert_allclose(distance, [2.0, -3.0])


def test_penetration_counts_on_a_constructed_case():
    vertices, triangles = _plate_and_chip()
    deltas = np.zeros((3, len(vertices), 3))
    deltas[0, 4:7, 2] = 2.0  # chip pushed up through the plate: 3 crossings
    deltas[1, 4:7, 2] = -0.5  # chip moves further in: none
    deltas[2, :4, 2] = -1.5  # plate pushed down past the chip: 3 crossings
    crossings, checks = penetration_counts(vertices, triangles, deltas, tolerance=0.1)
    # Checked: the 3 chip vertices in 3 poses (the sliver is within the tolerance at rest).
    assert (crossings, checks) == (6, 9)
    assert penetration_counts(vertices, triangles, np.zeros_like(deltas), tolerance=0.1) == (0, 9)


def test_side_share():
    x = np.array([-1.0, -0.5, 0.5, 1.0])
    deltas = np.array([[0, 0, 1.0], [0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    assert side_share(deltas, x, "l") == pytest.approx(0.75)
    assert side_share(deltas, x, "r") == pytest.approx(0.25)
    assert np.isnan(side_share(np.zeros_like(deltas), x, "l"))


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_dataset(ict_dir, tmp_path_factory):
    from facerig.trainer.dataset import BuildOptions, build_ict_dataset

    root = tmp_path_factory.mktemp("eval") / "dataset"
    options = BuildOptions(rigged=3, unrigged=0, factor_rigged=1, val_fraction=0.0, test_fraction=0.34,
                           min_vertices=700, max_vertices=900, seed=3)
    build_ict_dataset(ict_dir, root, options)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from facerig.nn.model import save_packaged
    from facerig.nn.network import NetworkConfig, RigNetwork
    from facerig.vocabulary import load_vocabulary

    torch.manual_seed(0)
    config = NetworkConfig(width=8, n_blocks=1, k_eig=16, global_width=8, global_dim=8, output_init_std=0.05)
    directory = tmp_path_factory.mktemp("eval") / "model"
    actions = list(load_vocabulary().action_names)
    return save_packaged(RigNetwork(config), directory, {"action_names": actions, "name": "tiny-untrained"})


def test_eval_command_writes_json_and_markdown_for_three_methods(tiny_dataset, tiny_model, tmp_path, heads_dir):
    torch.set_num_threads(1)
    out = tmp_path / "report"
    code = run(["eval", "--model", str(tiny_model), "--dataset", str(tiny_dataset), "--out", str(out),
                "--head", str(heads_dir / "suzanne.obj")])
    assert code == 0
    report = json.loads((out / "eval.json").read_text())
    markdown = (out / "eval.md").read_text()
    assert list(report["methods"]) == ["model", "transfer", "neutral"]
    assert report["split"] == "test" and len(report["heads"]) == 1
    assert len(report["poses"]) == 45 and "Corrugator" not in report["poses"]
    model, transfer, neutral = (report["methods"][m] for m in ("model", "transfer", "neutral"))
    # The zero baseline: no gain helps it, nothing crosses the skin, its error is the true motion.
    assert neutral["mae_gain"] == pytest.approx(neutral["mae"])
    assert neutral["penetration"] == 0.0
    assert neutral["mae_moving"] > neutral["mae"] > 0.2
    # Transfer is far better than doing nothing on ICT heads (measured: 0.11 vs 0.45 mm on this head);
    # an untrained network is not (its small random output only adds error).
    assert transfer["mae"] < 0.4 * neutral["mae"]
    assert model["mae"] > neutral["mae"]
    for metrics in (model, transfer, neutral):
        assert set(metrics["per_region"]) <= set(report["regions"]) and "face" in metrics["per_region"]
        assert set(metrics["per_pose"]) == set(report["poses"])
        assert 0.0 <= metrics["penetration"] <= 1.0
    assert 0.0 <= report["truth_penetration"] <= 1.0
    # blink closure needs an eyeball pair: these 900-vertex heads' eyeballs are too coarse to be found
    assert report["truth_blink_closure"] is None and "| ground truth |" in markdown
    suzanne = report["extra_heads"]["suzanne"]
    assert set(suzanne) == {"model", "transfer"} and suzanne["transfer"]["side_correct"] > 0.75
    for method in ("| model |", "| transfer |", "| neutral |", "| ground truth |", "## MAE per region",
                   "## MAE per pose", "| JawDrop |", "| suzanne | transfer |"):
        assert method in markdown
    # The table shows the JSON's numbers.
    assert f"| transfer | {transfer['mae']:.3f} | {transfer['q95']:.3f} |" in markdown


def test_eval_rejects_a_folder_that_is_not_a_dataset(tmp_path, tiny_model, capsys):
    code = run(["eval", "--model", str(tiny_model), "--dataset", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "manifest.json" in capsys.readouterr().err


def test_choose_offset_floor_measures_as_evaluate_does(tiny_dataset, tiny_model):
    """Floor 0 is the rig's raw output and a floor longer than every offset is the zero baseline: both must agree
    with evaluate(); the choice is the candidate with the lowest MAE."""
    from facerig.eval.evaluate import choose_offset_floor, evaluate

    torch.set_num_threads(1)
    choice = choose_offset_floor(tiny_model, tiny_dataset, "test", floors=(0.0, 0.01, 100.0))
    report = evaluate(tiny_model, tiny_dataset, "test", methods=["model", "neutral"]).to_dict()
    assert choice.heads == 1
    assert choice.mae_mm[0.0] == pytest.approx(report["methods"]["model"]["mae"], rel=1e-6)
    assert choice.mae_mm[100.0] == pytest.approx(report["methods"]["neutral"]["mae"], rel=1e-6)
    # the untrained network's output is noise: shrinking it helps, so some floor beats the raw output
    assert choice.floor == min(choice.mae_mm, key=choice.mae_mm.get) and choice.floor > 0
    with pytest.raises(DatasetError, match="no rigged heads"):
        choose_offset_floor(tiny_model, tiny_dataset, "val")


# ---------------------------------------------------------------------------------------------- rigged heads
@pytest.fixture(scope="module")
def transfer_rigs(heads_dir, tmp_path_factory):
    """Two exported transfer rigs of Suzanne (FACS-named GLB, ARKit-named USD). The transfer ran on the mesh as
    the files store it (float32 positions), so re-rigging what the files hold reproduces their deltas."""
    from facerig.exporters import export_rig
    from facerig.io import load_mesh
    from facerig.rig import Rig
    from facerig.rigging.transfer import rig_by_transfer
    from facerig.vocabulary import load_vocabulary

    folder = tmp_path_factory.mktemp("eval") / "studio"
    neutral = load_mesh(heads_dir / "suzanne.obj")
    vocabulary = load_vocabulary()
    empty = Rig(neutral=neutral, shape_names=vocabulary.shape_names[:1], deltas=np.zeros((1, neutral.n_vertices, 3)))
    stored = load_mesh(export_rig(empty, folder / "neutral.glb"))
    (folder / "neutral.glb").unlink()
    (folder / "neutral.glb.facerig.json").unlink()
    rig = rig_by_transfer(stored, vocabulary=vocabulary)
    export_rig(rig, folder / "suzanne_facs.glb")
    export_rig(rig, folder / "suzanne_arkit.usd", naming="arkit")
    return folder


def test_eval_rigs_scores_transfer_rigs_against_their_own_files(transfer_rigs, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "report"
    code = run(["eval", "--rigs", str(transfer_rigs), "--methods", "transfer,neutral", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "eval.json").read_text())
    markdown = (out / "eval.md").read_text()
    assert report["heads"] == ["suzanne_arkit.usd", "suzanne_facs.glb"]
    # the ARKit head lacks six poses, the FACS head has all 47: the union is reported
    assert len(report["poses"]) == 47
    assert len(report["rigs"]["suzanne_arkit.usd"]["unlabelled"]) == 6
    transfer, neutral = report["methods"]["transfer"], report["methods"]["neutral"]
    # glTF and USD (metersPerUnit 1) are metres: errors in mm. Transfer reproduces its own rigs up to float32.
    assert transfer["mae"] < 1e-3 and transfer["q95"] < 1e-2 and transfer["mae_gain"] < 1e-3
    # Suzanne's OBJ states no unit; 2.7 units across reads as decimetres (a 27 cm head), so its poses are mm-sized
    assert neutral["mae"] > 0.1 and neutral["mae_gain"] == pytest.approx(neutral["mae"])
    assert transfer["per_pose_cosine"]["JawDrop"] == pytest.approx(1.0, abs=1e-6)
    assert neutral["per_pose_cosine"]["JawDrop"] is None  # a zero prediction has no direction
    assert report["settings"]["meters_per_unit"] == {"suzanne_arkit.usd": 1.0, "suzanne_facs.glb": 1.0}
    assert "# facerig accuracy: rigged heads in studio" in markdown
    assert f"| transfer | {transfer['mae']:.3f} | {transfer['q95']:.3f} |" in markdown
    assert "| suzanne_arkit.usd | 41 | 6 | 6 | |" in markdown and "## MAE per region" not in markdown


def test_eval_rigs_lists_refused_heads_and_needs_one_good_head(heads_dir, tmp_path, capsys):
    from facerig.eval.evaluate import evaluate_rigs

    folder = tmp_path / "robots"
    folder.mkdir()
    (folder / "robot.glb").write_bytes((heads_dir / "robot_expressive.glb").read_bytes())
    with pytest.raises(DatasetError, match="every rigged head was refused.*robot.glb: no blend shape matches"):
        evaluate_rigs(None, folder, methods=["neutral"])
    assert run(["eval", "--rigs", str(folder), "--dataset", str(folder)]) == 1
    assert "exactly one of --dataset and --rigs" in capsys.readouterr().err


def test_a_report_names_a_model_under_the_working_directory_relatively(tmp_path, monkeypatch) -> None:
    """Reports are committed (docs/eval): the bundled model must not appear as this machine's absolute path."""
    from facerig.eval.evaluate import report_path

    model_dir = tmp_path / "facerig" / "models" / "default"
    model_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert report_path(model_dir) == "facerig/models/default"
    assert report_path("facerig/models/default") == "facerig/models/default"
    elsewhere = tmp_path.parent / "elsewhere"
    assert report_path(elsewhere) == str(elsewhere.resolve())  # outside the checkout: absolute, as the user gave it
