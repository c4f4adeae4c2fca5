"""The two-stage trainer: DDP on two CPU processes, exact resume, checkpoints, metrics and the exported model.

The heads come from the dataset builder: three rigged and one unrigged ICT head at ~300 vertices.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facerig.errors import ConfigError, DatasetError, ModelError
from facerig.nn.model import PackagedModel
from facerig.nn.network import RigNetwork
from facerig.trainer.config import load_config
from facerig.trainer.dataset import BuildOptions, build_ict_dataset
from facerig.render.renderer import frontal_camera
from facerig.trainer.heads import TrainingHeads
from facerig.trainer.targets import DiskTargets, TransferTargets, render_targets, write_disk_targets
from facerig.trainer.train import LOSS_NAMES, evaluate, step_losses, train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.toml"
N_ACTIONS = 47

# Run by torchrun in test_two_processes...: train, then save this rank's weights for comparison.
WORKER = """
import os, sys, torch
from facerig.trainer.config import load_config, parse_overrides
from facerig.trainer.train import train
result = train(load_config(sys.argv[1], parse_overrides(sys.argv[3:])))
torch.save(result.network.state_dict(), os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, ict_dir: Path) -> Path:
    """Three rigged and one unrigged ICT head, re-meshed to ~300 vertices, all in the train split."""
    root = tmp_path_factory.mktemp("heads") / "ict"
    options = BuildOptions(rigged=3, unrigged=1, factor_rigged=1, factor_unrigged=1, val_fraction=0.0,
                           test_fraction=0.0, min_vertices=250, max_vertices=350, seed=0)
    build_ict_dataset(ict_dir, root, options)
    return root


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ----------------------------------------------------------------------------------------------------- DDP
def test_two_processes_train_both_stages_losses_fall_and_ranks_agree(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [f"--data.dataset={dataset}", f"--run.out_dir={run}", "--run.device=cpu",
                 "--stage1.epochs=4", "--stage2.epochs=4"]
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(tmp_path / "worker.py"), str(TINY), str(tmp_path), *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    # DDP averaged the gradients: both ranks end with bit-identical weights
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    # 4 heads over 2 ranks = 2 steps per epoch in stage 1; 3 rigged heads pad to 2 per epoch in stage 2
    rows = _rows(run)
    assert [(r["stage"], int(r["step"])) for r in rows] == [("stage1", s) for s in range(1, 9)] + [
        ("stage2", s) for s in range(1, 9)
    ]
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["stage1-0000004.pt", "stage1-final.pt", "stage2-0000004.pt", "stage2-final.pt"]
    torch.testing.assert_close(_weights(run / "checkpoints" / "stage2-final.pt"), rank0, rtol=0, atol=0)

    # the loss of each stage, on every head with a fixed pose draw, falls over that stage
    config = load_config(TINY, {"data.dataset": str(dataset)})
    heads = TrainingHeads(dataset, "train")
    torch.manual_seed(config.run.seed)  # rank 0's initialisation, which DDP broadcast to rank 1
    network = RigNetwork(config.network)
    before_stage1 = evaluate(network, heads, "stage1", config)
    network.load_state_dict(_weights(run / "checkpoints" / "stage1-final.pt"))
    after_stage1, before_stage2 = evaluate(network, heads, "stage1", config), evaluate(network, heads, "stage2", config)
    network.load_state_dict(rank0)
    after_stage2 = evaluate(network, heads, "stage2", config)
    assert after_stage1 < 0.8 * before_stage1
    assert after_stage2 < 0.5 * before_stage2

    # the exported model loads without the network code and records its provenance
    model = PackagedModel.load(run / "model")
    training = model.metadata["training"]
    assert training["stages"]["stage1"]["steps"] == 8 and training["stages"]["stage2"]["steps"] == 8
    assert training["dataset"]["heads"] == 4 and training["hardware"]["world_size"] == 2
    assert set(training["stages"]["stage2"]["final_losses"]) == {"image", "mask", "mse_3d", "epe_3d", "landmark_2d",
                                                                 "eye_closure_2d", "total"}
    assert training["config"]["stage1"]["epochs"] == 4
    assert model.gaze_degrees == heads.manifest["options"]["gaze_degrees"]  # the rig turns eyes as the data did
    head = heads[0]
    from facerig.nn.operators import get_operators

    operators = get_operators(head.vertices, head.faces, config.network.k_eig, cache_dir=heads.operator_cache)
    acts = np.eye(N_ACTIONS, dtype=np.float32)[:3]
    with torch.no_grad():
        expected = network(torch.from_numpy(head.vertices), operators.to_torch(), torch.from_numpy(acts)).numpy()
    np.testing.assert_allclose(model.predict(head.vertices, operators, acts), expected, atol=1e-6)


# -------------------------------------------------------------------------------------------------- resume
def test_resume_from_a_mid_run_checkpoint_reproduces_the_uninterrupted_losses(dataset: Path, tmp_path: Path) -> None:
    common = {"data.dataset": str(dataset), "run.device": "cpu", "run.checkpoint_every": "3", "run.export": "false"}
    full = train(load_config(TINY, {**common, "run.out_dir": str(tmp_path / "full")}))
    assert full.stages["stage1"].steps == 8 and full.stages["stage2"].steps == 6

    resumed_dir = tmp_path / "resumed"
    resumed = train(load_config(TINY, {**common, "run.out_dir": str(resumed_dir)}),
                    resume=tmp_path / "full" / "checkpoints" / "stage1-0000003.pt")
    full_rows, resumed_rows = _rows(tmp_path / "full"), _rows(resumed_dir)
    assert len(resumed_rows) == len(full_rows) - 3  # steps 4..8 of stage 1, then all of stage 2
    for got, want in zip(resumed_rows, full_rows[3:]):
        assert (got["stage"], got["step"], got["lr"]) == (want["stage"], want["step"], want["lr"])
        for name in (*LOSS_NAMES, "total"):
            if want[name]:
                assert float(got[name]) == pytest.approx(float(want[name]), rel=1e-6, abs=1e-9), (want["step"], name)
    for name, value in full.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[name], value, rtol=1e-6, atol=1e-7)


def test_resume_keeps_the_earlier_metric_rows_of_its_own_run(dataset: Path, tmp_path: Path) -> None:
    overrides = {"data.dataset": str(dataset), "run.device": "cpu", "run.out_dir": str(tmp_path),
                 "run.checkpoint_every": "2", "run.export": "false", "run.stages": '["stage1"]'}
    train(load_config(TINY, overrides))
    first = _rows(tmp_path)
    train(load_config(TINY, overrides), resume=tmp_path / "checkpoints" / "stage1-0000004.pt")
    again = _rows(tmp_path)
    assert [r["step"] for r in again] == [str(s) for s in range(1, 9)]
    assert [r["total"] for r in again] == [r["total"] for r in first]


def test_stage2_alone_starts_from_its_init_checkpoint(dataset: Path, tmp_path: Path) -> None:
    overrides = {"data.dataset": str(dataset), "run.device": "cpu", "run.export": "false"}
    stage1 = train(load_config(TINY, {**overrides, "run.out_dir": str(tmp_path / "s1"), "run.stages": '["stage1"]'}))
    init = tmp_path / "s1" / "checkpoints" / "stage1-final.pt"
    config = load_config(TINY, {**overrides, "run.out_dir": str(tmp_path / "s2"), "run.stages": '["stage2"]',
                                "stage2.init": str(init), "stage2.max_steps": "1", "stage2.warmup_steps": "0",
                                "stage2.lr": "1e-12", "stage2.eta_min": "0.0"})
    stage2 = train(config)
    for name, value in stage1.network.state_dict().items():  # one step at lr 1e-12 leaves stage 1's weights
        torch.testing.assert_close(stage2.network.state_dict()[name], value, rtol=0, atol=1e-9)


def test_the_finetune_preset_starts_from_the_bundled_model(dataset: Path, tmp_path: Path) -> None:
    """configs/finetune.toml: stage 2 from the packaged model's weights.pt; one step at a vanishing rate leaves
    them as shipped, and the run's weights are a network the bundled model's loader reads."""
    from facerig.nn.model import default_model_path

    config = load_config(REPO / "configs" / "finetune.toml", {
        "data.dataset": str(dataset), "run.out_dir": str(tmp_path / "ft"), "run.export": "false",
        "stage2.init": str(default_model_path()), "stage2.max_steps": "1", "stage2.warmup_steps": "0",
        "stage2.lr": "1e-12", "stage2.eta_min": "0.0", "stage2.poses_per_step": "2", "stage2.rendered_poses": "1",
        "stage2.image_size": "32"})
    result = train(config)
    shipped = PackagedModel.load(default_model_path()).module.state_dict()
    assert set(result.network.state_dict()) == set(shipped)
    for name, value in shipped.items():
        torch.testing.assert_close(result.network.state_dict()[name], value, rtol=0, atol=1e-9)
    with pytest.raises(ModelError, match="no packaged model here"):
        train(load_config(REPO / "configs" / "finetune.toml", {"data.dataset": str(dataset),
                                                              "run.out_dir": str(tmp_path / "bad"),
                                                              "stage2.init": str(tmp_path)}))


def test_rendered_poses_limits_the_2d_terms_and_not_the_3d_ones(dataset: Path) -> None:
    heads = TrainingHeads(dataset)
    head = heads[heads.rigged().index(True)]
    config = load_config(TINY)
    network = RigNetwork(config.network)

    def terms(rendered: int) -> dict[str, float]:
        stage = dataclasses.replace(config.stage2, poses_per_step=6, rendered_poses=rendered)
        with torch.no_grad():
            values = step_losses(network, head, "stage2", stage, np.random.default_rng(3), torch.device("cpu"), None,
                                 heads.operator_cache)
        return {name: float(value) for name, value in values.items()}

    every, two = terms(0), terms(2)
    for name in ("mse_3d", "epe_3d"):  # the same six poses, in another order
        assert two[name] == pytest.approx(every[name], rel=1e-5) and every[name] > 0
    assert two["image"] != pytest.approx(every["image"], rel=1e-3)  # rendered from two of them only


class _EveryPose:
    """A rigged head, a fresh network with visible output, and that network's deltas and ground truth for every
    labelled pose plus the all-zero row: what stage 2's 3D terms see when a step draws every pose."""

    def __init__(self, dataset: Path) -> None:
        from facerig.nn.operators import get_operators

        heads = TrainingHeads(dataset)
        self.head, self.operator_cache = heads[heads.rigged().index(True)], heads.operator_cache
        self.config = load_config(TINY)
        torch.manual_seed(0)
        self.network = RigNetwork(dataclasses.replace(self.config.network, output_init_std=0.1))
        available = np.flatnonzero(self.head.labelled)
        self.n_poses = len(available)
        operators = get_operators(self.head.vertices, self.head.faces, self.network.config.k_eig,
                                  cache_dir=heads.operator_cache)
        activations = np.vstack([self.head.activations[available], np.zeros((1, N_ACTIONS), np.float32)])
        with torch.no_grad():
            self.deltas = self.network(torch.from_numpy(self.head.vertices), operators.to_torch("cpu"),
                                       torch.from_numpy(activations))
        zero = np.zeros((1, *self.head.deltas.shape[1:]), np.float32)
        self.truth = torch.from_numpy(np.concatenate([self.head.deltas[available], zero]))
        self.every_row = torch.ones(len(activations), dtype=torch.bool)

    def step_terms(self, **stage_fields: Any) -> dict[str, float]:
        """step_losses' stage-2 terms with every pose drawn (one rendered)."""
        stage = dataclasses.replace(self.config.stage2, poses_per_step=self.n_poses, rendered_poses=1, **stage_fields)
        with torch.no_grad():
            values = step_losses(self.network, self.head, "stage2", stage, np.random.default_rng(3),
                                 torch.device("cpu"), None, self.operator_cache)
        return {name: float(value) for name, value in values.items()}


def test_stage2_3d_terms_train_the_neutral_row_to_zero_motion(dataset: Path) -> None:
    """The rig subtracts the all-zero activation's output from every pose, so stage 2 trains that row too."""
    from facerig.trainer import losses

    case = _EveryPose(dataset)
    got = case.step_terms()["mse_3d"]
    expected = float(losses.mse_3d_loss(case.deltas, case.truth, case.every_row))
    without_neutral = float(losses.mse_3d_loss(case.deltas[:-1], case.truth[:-1], case.every_row[:-1]))
    assert got == pytest.approx(expected, rel=1e-6)
    assert abs(got - without_neutral) > 20 * abs(got - expected)  # one row of ~95, but measurably there


def test_stage2_pose_balance_weighs_the_3d_terms_by_relative_error(dataset: Path) -> None:
    """With pose_balance 1 each drawn pose's 3D error counts relative to its own size (neutral row included)."""
    from facerig.trainer import losses

    case = _EveryPose(dataset)
    weights = losses.pose_balance_weights(case.truth, case.every_row, 1.0)
    expected = {"mse_3d": float(losses.mse_3d_loss(case.deltas, case.truth, case.every_row, weights)),
                "epe_3d": float(losses.epe_3d_loss(case.deltas, case.truth, case.every_row, weights))}
    plain, balanced = case.step_terms(pose_balance=0.0), case.step_terms(pose_balance=1.0)
    for name in ("mse_3d", "epe_3d"):
        assert balanced[name] == pytest.approx(expected[name], rel=1e-5)
        assert abs(balanced[name] - plain[name]) > 1e-3 * plain[name]  # 100x the tolerance above
    assert balanced["image"] == pytest.approx(plain["image"], rel=1e-6)  # the 2D terms are not weighted


def test_a_bad_checkpoint_is_a_config_error(dataset: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {}}, bogus)
    config = load_config(TINY, {"data.dataset": str(dataset), "run.out_dir": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="not a facerig training checkpoint"):
        train(config, resume=bogus)


# ----------------------------------------------------------------------------------------------------- CLI
def test_cli_train_applies_overrides_and_reports_bad_keys_in_one_line(dataset: Path, tmp_path: Path, capsys) -> None:
    from facerig.cli import run

    code = run(["train", "--config", str(TINY), "--data.dataset", str(dataset), "--run.out_dir", str(tmp_path),
                "--run.stages", '["stage1"]', "--stage1.max_steps", "2", "--run.export=false"])
    assert code == 0
    assert [r["step"] for r in _rows(tmp_path)] == ["1", "2"]
    assert "stage1: 2 steps" in capsys.readouterr().out

    assert run(["train", "--config", str(TINY), "--stage1.epoch", "3"]) == 1
    assert "unknown key stage1.epoch" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ 2D targets
def test_transfer_targets_of_a_rigged_head_posing_as_unrigged_are_its_own_ground_truth(dataset: Path) -> None:
    heads = TrainingHeads(dataset, "train")
    rigged = heads[heads.rigged().index(True)]
    stripped = dataclasses.replace(rigged, id="stripped", deltas=None, labelled=np.zeros_like(rigged.labelled))
    source = TransferTargets([rigged, heads[heads.rigged().index(True) + 1]])
    np.testing.assert_array_equal(source.poses(stripped), rigged.activations[rigged.labelled])

    motion = np.abs(rigged.deltas[rigged.labelled]).max(axis=(1, 2))
    rows = np.sort(np.argsort(motion)[-2:])  # the two poses that move most (JawDrop among them)
    camera = frontal_camera(stripped.vertices, 48)
    got = source.targets(stripped, rows, camera, sigma=1.0)
    gt = torch.from_numpy(rigged.deltas[np.flatnonzero(rigged.labelled)[rows]])
    want = render_targets(torch.from_numpy(rigged.vertices), gt, torch.from_numpy(rigged.faces), camera, 1.0,
                          torch.from_numpy(rigged.landmarks))
    assert float(want.flow.abs().amax()) > 0.5  # the poses move something on screen
    for name in ("image", "mask", "flow", "neutral_mask", "landmarks"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-4, rtol=0)


def test_disk_targets_read_back_what_was_written(dataset: Path, tmp_path: Path) -> None:
    heads = TrainingHeads(dataset, "train")
    head = heads[heads.rigged().index(False)]
    camera = frontal_camera(head.vertices, 32, fov_degrees=20.0)
    deltas = torch.zeros((3, len(head.vertices), 3))
    deltas[:, :, 1] = torch.tensor([0.0, 0.05, 0.1])[:, None]  # the head moves up, 0 to 0.1 units
    written = render_targets(torch.from_numpy(head.vertices), deltas, torch.from_numpy(head.faces), camera, 1.0)
    write_disk_targets(tmp_path, head.id, np.eye(3, N_ACTIONS, dtype=np.float32), written, fov_degrees=20.0)

    source = DiskTargets(tmp_path)
    assert source.poses(head).shape == (3, N_ACTIONS)
    read = source.targets(head, np.array([2, 0]), camera, sigma=1.0)
    torch.testing.assert_close(read.flow, written.flow[[2, 0]])
    torch.testing.assert_close(read.image, written.image[[2, 0]])
    torch.testing.assert_close(read.neutral_mask, written.neutral_mask)
    with pytest.raises(DatasetError, match="the stage renders"):
        source.targets(head, np.array([0]), frontal_camera(head.vertices, 64), sigma=1.0)


def test_the_exported_model_records_an_offset_floor_chosen_on_validation_heads(ict_dir: Path, tmp_path: Path) -> None:
    from facerig.eval.evaluate import choose_offset_floor
    from facerig.trainer.ddp import DistContext
    from facerig.trainer.train import StageSummary, export

    root = tmp_path / "ict"
    build_ict_dataset(ict_dir, root, BuildOptions(rigged=3, unrigged=0, factor_rigged=1, val_fraction=0.34,
                                                  test_fraction=0.0, min_vertices=250, max_vertices=350, seed=0))
    config = load_config(TINY, {"data.dataset": str(root)})
    torch.manual_seed(0)
    network = RigNetwork(dataclasses.replace(config.network, output_init_std=0.05))  # untrained: noisy offsets
    context = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    export(network, config, TrainingHeads(root, "train"), {"stage2": StageSummary()}, context, tmp_path / "model")

    model = PackagedModel.load(tmp_path / "model")
    record = model.metadata["training"]["offset_floor"]
    assert record["split"] == "val" and record["heads"] == 1
    assert model.offset_floor == float(min(record["mae_mm"], key=record["mae_mm"].get)) > 0
    assert model.offset_floor == choose_offset_floor(tmp_path / "model", root, "val").floor
