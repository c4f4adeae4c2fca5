"""`facerig data rigs`: a dataset from rigged heads that the dataset readers, the trainer and the evaluator take,
with an import report; refused heads do not stop the others."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facerig.canonical.frame import axes_rotation
from facerig.cli import run
from facerig.errors import DatasetError
from facerig.exporters import export_rig
from facerig.rig import Rig
from facerig.eval.datasets import load_sample, read_manifest
from facerig.trainer.dataset import HeadDataset

REPO = Path(__file__).resolve().parents[2]
N_ACTIONS, N_SHAPES = 47, 95


@pytest.fixture(scope="module")
def rigs_folder(synthetic_rig: Rig, heads_dir: Path, tmp_path_factory) -> Path:
    """A FACS-named GLB, an ARKit-named USD of a Z-up copy of the head, and the robot (no FACS shape)."""
    folder = tmp_path_factory.mktemp("studio") / "heads"
    folder.mkdir()
    export_rig(synthetic_rig, folder / "facs.glb")
    z_up = replace(synthetic_rig, neutral=replace(synthetic_rig.neutral, up_axis="Z"))
    export_rig(z_up, folder / "sub" / "arkit.usd", naming="arkit")
    shutil.copy(heads_dir / "robot_expressive.glb", folder / "robot.glb")
    return folder


@pytest.fixture(scope="module")
def dataset(rigs_folder: Path, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("studio") / "dataset"
    code = run(["data", "rigs", str(rigs_folder), "-o", str(out)])
    return out, code


def test_data_rigs_writes_samples_the_dataset_reader_loads(dataset, synthetic_rig):
    root, code = dataset
    assert code == 0
    manifest = read_manifest(root)
    assert manifest["counts"] == {"rigged_train": 2, "total": 2}
    assert manifest["regions"] == [] and manifest["parts"] == [] and len(manifest["shapes"]) == N_SHAPES
    by_file = {entry["source_file"]: entry for entry in manifest["samples"]}
    assert set(by_file) == {"facs.glb", "sub/arkit.usd"}

    facs = load_sample(root / by_file["facs.glb"]["file"])
    assert facs["labelled"].tolist() == [True] * N_ACTIONS + [False] * (N_SHAPES - N_ACTIONS)
    assert facs["deltas"].shape == (N_SHAPES, 507, 3) and not facs["deltas"][N_ACTIONS:].any()
    # glTF is Y-up metres already: the sample is the file (float16 deltas: ~1e-3 relative)
    np.testing.assert_allclose(facs["vertices"], synthetic_rig.neutral.vertices, atol=1e-6)
    np.testing.assert_allclose(facs["deltas"][:N_ACTIONS], synthetic_rig.deltas[:N_ACTIONS], rtol=2e-3, atol=1e-5)
    assert float(facs["meters_per_unit"]) == 1.0
    for key, shape in (("landmarks", (0,)), ("landmark_barycentrics", (0, 3)), ("eyelid_pairs", (0, 2))):
        assert facs[key].shape == shape
    assert (facs["regions"] == -1).all() and (facs["parts"] == -1).all()

    arkit = load_sample(root / by_file["sub/arkit.usd"]["file"])
    assert arkit["labelled"][:N_ACTIONS].sum() == 41 and not arkit["labelled"][N_ACTIONS:].any()
    turn = axes_rotation(None, None, "Z")  # the Z-up file is turned to the dataset's +Y up, face along +Z
    np.testing.assert_allclose(arkit["transform"][:3, :3], turn)
    np.testing.assert_allclose(arkit["vertices"], synthetic_rig.neutral.vertices @ turn.T, atol=1e-5)
    jaw = synthetic_rig.shape_names.index("JawDrop")
    np.testing.assert_allclose(arkit["deltas"][jaw], synthetic_rig.deltas[jaw] @ turn.T, rtol=2e-3, atol=1e-5)

    items = HeadDataset(root, "train")
    assert len(items) == 2 and items[0]["landmarks"].shape == (0,)


def test_the_import_report_says_what_was_found_and_why_a_head_was_refused(dataset):
    root, _ = dataset
    report = json.loads((root / "import_report.json").read_text())
    assert report["counts"] == {"files": 3, "imported": 2, "refused": 1}
    robot = report["heads"]["robot.glb"]
    assert robot["status"] == "refused" and "no blend shape matches a FACS pose" in robot["reason"]
    assert set(robot["unmatched"]) == {"Angry", "Surprised", "Sad"}
    arkit = report["heads"]["sub/arkit.usd"]
    assert arkit["status"] == "imported" and len(arkit["labelled"]) == 41
    assert "LeftInnerBrowRaiser" in arkit["unlabelled"] and "browInnerUp" in arkit["unmatched"]
    markdown = (root / "import_report.md").read_text()
    assert "| robot.glb | refused: no blend shape matches a FACS pose" in markdown
    assert "- `browInnerUp`: ARKit browInnerUp is 1*LeftInnerBrowRaiser + 1*RightInnerBrowRaiser" in markdown


@pytest.mark.slow  # training steps
def test_the_trainer_steps_on_a_head_without_landmarks(dataset):
    from facerig.nn.network import RigNetwork
    from facerig.trainer.config import load_config
    from facerig.trainer.heads import TrainingHeads
    from facerig.trainer.train import step_losses

    root, _ = dataset
    heads = TrainingHeads(root)
    config = load_config(REPO / "configs" / "tiny.toml")
    torch.manual_seed(0)
    network = RigNetwork(config.network)
    for index in range(len(heads)):
        head = heads[index]
        assert head.landmarks.shape == (0,) and head.labelled.sum() in (41, 47)
        for stage in ("stage1", "stage2"):
            terms = step_losses(network, head, stage, config.stage(stage), np.random.default_rng(0),
                                torch.device("cpu"), None, heads.operator_cache)
            values = {name: float(value.detach()) for name, value in terms.items()}
            assert all(np.isfinite(v) for v in values.values())
            if stage == "stage2":
                assert values["landmark_2d"] == 0.0 and values["eye_closure_2d"] == 0.0 and values["mse_3d"] > 0


def test_evaluate_scores_each_sample_on_its_own_poses(dataset):
    """The neutral baseline's error is the true motion, over each head's labelled poses only: the ARKit head's
    unlabelled inner brows are not compared with zero."""
    from facerig.eval.evaluate import evaluate

    root, _ = dataset
    report = evaluate(None, root, "train", methods=["neutral"])
    assert len(report.poses) == N_ACTIONS and len(report.heads) == 2
    truths = []
    for entry in read_manifest(root)["samples"]:
        arrays = load_sample(root / entry["file"])
        truth = arrays["deltas"][arrays["labelled"]].astype(np.float64)
        truths.append(np.linalg.norm(truth, axis=2).ravel() * 1000.0)
    assert report.methods["neutral"].mae == pytest.approx(np.concatenate(truths).mean(), rel=1e-9)


def test_data_export_writes_a_split_that_eval_rigs_scores_like_the_dataset(dataset, tmp_path):
    """`facerig data export` turns a split back into rigged files; `facerig eval --rigs` on them gives the numbers
    `facerig eval --dataset` gives (the same heads, poses and truth), so held-out heads become a studio folder."""
    from facerig.eval.evaluate import evaluate, evaluate_rigs
    from facerig.io.rigged_heads import load_rigged_head

    root, _ = dataset
    out = tmp_path / "exported"
    assert run(["data", "export", str(root), "-o", str(out), "--split", "train"]) == 0
    files = sorted(out.glob("*.glb"))
    assert len(files) == 2
    for entry in read_manifest(root)["samples"]:
        arrays = load_sample(root / entry["file"])
        head = load_rigged_head(out / f"{entry['name']}.glb")
        mpu = float(arrays["meters_per_unit"]) / head.meters_per_unit
        labelled = np.asarray(arrays["labelled"][:N_ACTIONS], bool)
        assert head.labelled.tolist() == labelled.tolist()  # unlabelled poses stay unlabelled, not zero
        np.testing.assert_allclose(head.deltas[labelled], arrays["deltas"][:N_ACTIONS][labelled] * mpu, atol=1e-5)
    by_dataset = evaluate(None, root, "train", methods=["neutral"]).methods["neutral"]
    by_files = evaluate_rigs(None, out, methods=["neutral"]).methods["neutral"]
    assert by_files.mae == pytest.approx(by_dataset.mae, rel=1e-4)
    assert run(["data", "export", str(root), "-o", str(out)]) == 1  # not empty: nothing overwritten
    assert run(["data", "export", str(root), "-o", str(tmp_path / "x"), "--split", "val"]) == 1  # no such heads
    assert run(["data", "export", str(root), "-o", str(tmp_path / "y"), "-f", "obj"]) == 1
    assert not (tmp_path / "y").exists()  # a bad format is refused before anything is written


def test_a_folder_of_refused_heads_writes_the_report_and_fails(heads_dir, tmp_path, capsys):
    folder = tmp_path / "robots"
    folder.mkdir()
    shutil.copy(heads_dir / "robot_expressive.glb", folder / "robot.glb")
    out = tmp_path / "dataset"
    assert run(["data", "rigs", str(folder), "-o", str(out)]) == 1
    assert "every rigged head was refused" in capsys.readouterr().err
    assert json.loads((out / "import_report.json").read_text())["counts"]["refused"] == 1
    assert not (out / "manifest.json").exists()
    with pytest.raises(DatasetError, match="no rigged head files"):
        from facerig.trainer.rigs import build_rigs_dataset

        build_rigs_dataset(tmp_path / "dataset" / "samples", tmp_path / "other")
