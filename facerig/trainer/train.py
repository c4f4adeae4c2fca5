"""The two-stage trainer (SPEC §5, seed appendix A): one head per process per step, DDP across processes.

    facerig train --config configs/cpu.toml
    torchrun --nproc_per_node=8 -m facerig.trainer.train --config configs/paper-stage1.toml
    python -m facerig.trainer.train --config configs/cpu.toml --resume runs/cpu/checkpoints/stage1-0000400.pt

Stage 1 trains on rigged and unrigged heads with 2D supervision only (image, mask, 2D displacement, plus a
Laplacian regularizer); stage 2 fine-tunes on rigged heads with 2D and 3D supervision (image, mask, 3D MSE,
2D landmarks, 2D eye closure). Weights are the seed's (:mod:`facerig.trainer.losses`). Each step takes one
head, draws ``poses_per_step`` of its poses, runs ``encode`` once and ``deform`` on the batch, renders the
prediction and the targets with :mod:`facerig.render.renderer` under a frontal camera, and takes one Adam step.

Every step follows the same phases, in order: lr, data, forward, loss, backward, clip, step, zero, log,
checkpoint. Randomness is either stateless (the pose draw is seeded by seed, rank and step; the sampler by
seed and epoch) or saved in checkpoints (python, numpy and torch RNG states of every rank), so a run resumed
from a checkpoint continues with exactly the losses the uninterrupted run had.

Outputs in ``run.out_dir``: ``checkpoints/<stage>-<step>.pt`` and ``<stage>-final.pt`` (plain dicts, see
:func:`_checkpoint`),
``metrics.csv``, ``tensorboard/`` and, after the last stage, ``model/`` (:func:`facerig.nn.model.save_packaged`).
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from facerig.canonical.frame import FRAME_VERSION
from facerig.errors import ConfigError, DatasetError
from facerig.fileio import atomic_path
from facerig.nn.network import NetworkConfig, RigNetwork
from facerig.nn.operators import get_operators
from facerig.render.renderer import frontal_camera, render_views
from facerig.trainer import losses
from facerig.trainer.config import STAGES, StageConfig, TrainConfig, load_config, parse_overrides
from facerig.trainer.ddp import DistContext, barrier, distributed, gather_objects, mean_across_ranks, unwrap, wrap
from facerig.trainer.schedule import build_scheduler, check_schedule
from facerig.trainer.grow import widen_state
from facerig.trainer.heads import Head, TrainingHeads, identity_subset, weighted_indices
from facerig.trainer.targets import DiskTargets, TargetSource, TransferTargets, render_targets

CHECKPOINT_FORMAT = "facerig-checkpoint"
CHECKPOINT_VERSION = 1
# metrics.csv columns: every term either stage computes
LOSS_NAMES = tuple(dict.fromkeys([*losses.STAGE1_WEIGHTS, *losses.STAGE2_WEIGHTS, *losses.STAGE2_OPTIONAL]))
_TRANSFER_BANK = 8  # rigged heads TransferTargets keeps in memory to borrow poses from
_FLOOR_HEADS = 8  # validation heads the exported model's offset floor is chosen on


@dataclass
class StageSummary:
    """What one stage did: optimizer steps, epochs begun, wall time, and the last step's rank-mean losses."""

    steps: int = 0
    epochs: int = 0
    wall_s: float = 0.0
    final_losses: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """The trained network (unwrapped, on its device), per-stage summaries and the exported model's folder."""

    network: RigNetwork
    stages: dict[str, StageSummary]
    model_dir: Path | None


# ------------------------------------------------------------------------------------------------ run
def train(config: TrainConfig, resume: str | Path | None = None, heads: Any = None) -> TrainResult:
    """Run the configured stages, from scratch or from the checkpoint ``resume``.

    Under torchrun every process calls this; each trains on its shard of the heads and rank 0 writes.

    Args:
        config: the resolved configuration (:func:`facerig.trainer.config.load_config`).
        resume: a checkpoint written by this trainer; completed stages are skipped, a stage in progress
            continues at its next step. The network architecture is taken from the checkpoint.
        heads: a map-style dataset of :class:`Head` with ``rigged() -> list[bool]`` and ``operator_cache``;
            ``TrainingHeads(config.data.dataset, config.data.split)`` when None.
    """
    with distributed(config.run.device) as ctx:
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        _seed_everything(config.run.seed + ctx.rank)
        heads = heads if heads is not None else TrainingHeads(config.data.dataset, config.data.split)
        checkpoint = _load_checkpoint(Path(resume)) if resume is not None else None
        network_config = NetworkConfig.from_dict(checkpoint["network"]) if checkpoint else config.network
        network = RigNetwork(network_config).to(ctx.device)
        if checkpoint:
            network.load_state_dict(checkpoint["model"])
        out_dir = Path(config.run.out_dir)
        metrics = _Metrics(out_dir, ctx, checkpoint)
        summaries: dict[str, StageSummary] = {}
        try:
            for name in config.run.stages:
                if checkpoint and name in checkpoint["completed_stages"]:
                    continue
                in_progress = checkpoint if checkpoint and checkpoint["stage"] == name else None
                summaries[name] = run_stage(name, config, ctx, network, heads, metrics, in_progress)
            model_dir = None
            if config.run.export and ctx.is_main:
                model_dir = export(network, config, heads, summaries, ctx, out_dir / "model")
            barrier(ctx)
        finally:
            metrics.close()
        return TrainResult(network=network, stages=summaries, model_dir=model_dir)


def run_stage(
    name: str,
    config: TrainConfig,
    ctx: DistContext,
    network: RigNetwork,
    heads: Any,
    metrics: "_Metrics",
    checkpoint: dict[str, Any] | None,
) -> StageSummary:
    """Train ``network`` in place through one stage; ``checkpoint`` continues a stage in progress."""
    stage = config.stage(name)
    if checkpoint is None and stage.init:
        network.load_state_dict(_initial_weights(_initial_state(Path(stage.init)), network))
    rigged = heads.rigged()
    indices = [i for i, is_rigged in enumerate(rigged) if is_rigged or stage.heads == "all"]
    if config.data.identities:
        indices = identity_subset(indices, heads.sources(), heads.identities(), config.data.identities,
                                  [config.run.seed])
    if config.data.source_weights:
        indices = weighted_indices(indices, heads.sources(), config.data.source_weights,
                                   [config.run.seed, STAGES.index(name)])
    if not indices:
        raise DatasetError(f"{name} trains on {stage.heads} heads and the split has none")
    source = _target_source(config, heads, rigged) if stage.heads == "all" and not all(rigged) else None
    sampler = DistributedSampler(indices, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=config.run.seed)
    steps_per_epoch = len(sampler)
    total_steps = stage.epochs * steps_per_epoch
    if stage.max_steps:
        total_steps = min(total_steps, stage.max_steps)
    check_schedule(total_steps, stage.warmup_steps)

    model = wrap(network, ctx)
    optimizer = torch.optim.Adam(network.parameters(), lr=stage.lr)
    scheduler = build_scheduler(optimizer, total_steps=total_steps, warmup_steps=stage.warmup_steps,
                                eta_min=stage.eta_min)
    step, summary = 0, StageSummary()
    if checkpoint is not None:
        if len(checkpoint["rng"]) != ctx.world_size:  # the sampler's shards and the step count would differ
            raise ConfigError(f"the checkpoint was written by {len(checkpoint['rng'])} processes; resume it "
                              f"with as many (this run has {ctx.world_size})")
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        _set_rng_state(checkpoint["rng"][ctx.rank])
        step, summary.wall_s = checkpoint["step"], checkpoint["wall_s"]
    if ctx.is_main:
        print(f"{name}: {len(indices)} heads, {ctx.world_size} process(es), {steps_per_epoch} steps/epoch, "
              f"{total_steps} steps, from step {step}", flush=True)

    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        for position in list(sampler)[offset:]:
            started = time.perf_counter()
            # ---- lr: the scheduler set it after the previous step; lr_at(step) is the same number
            lr = optimizer.param_groups[0]["lr"]
            # ---- data: one head, a seeded draw of its poses
            head = heads[indices[position]]
            draw = np.random.default_rng([config.run.seed, ctx.rank, STAGES.index(name), step])
            # ---- forward + loss
            terms = step_losses(model, head, name, stage, draw, ctx.device, source, heads.operator_cache,
                                config.data.eig_max_vertices)
            total = losses.weighted_total(terms, stage.weights)
            # ---- backward, clip, step, zero
            total.backward()
            if stage.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(network.parameters(), stage.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # ---- log: rank-mean of every term
            names = list(terms)
            values = mean_across_ranks(torch.stack([terms[n].detach() for n in names] + [total.detach()]), ctx)
            seconds = time.perf_counter() - started
            summary.wall_s += seconds
            summary.final_losses = {n: float(v) for n, v in zip(names + ["total"], values.cpu())}
            metrics.write(name, step, epoch, lr, summary.final_losses, seconds)
            # ---- checkpoint: every checkpoint_every steps and at the stage's end (a collective: RNG states)
            if step % config.run.checkpoint_every == 0 or step == total_steps:
                _checkpoint(config, ctx, network, optimizer, scheduler, name, step, epoch, step == total_steps,
                            summary)
            if step == total_steps:
                break
    summary.steps, summary.epochs = step, -(-step // steps_per_epoch)
    return summary


def step_losses(
    model: torch.nn.Module,
    head: Head,
    stage_name: str,
    stage: StageConfig,
    draw: np.random.Generator,
    device: torch.device,
    source: TargetSource | None,
    operator_cache: Path,
    eig_max_vertices: int = 0,
) -> dict[str, torch.Tensor]:
    """Loss terms of one step on one head (the stage's terms, each a scalar tensor).

    Stage 1: image, mask, 2D displacement and regularization, against targets rendered from the ground
    truth (rigged heads) or taken from ``source`` (unrigged heads). Stage 2 (rigged heads only): image,
    mask, 3D MSE, 2D landmark and 2D eye closure; its 3D terms also see the all-zero activation row, whose
    target is no motion.
    """
    network = unwrap(model)
    if head.rigged:
        available = np.flatnonzero(head.labelled)
        activations = head.activations[available]
    elif source is not None:
        activations = source.poses(head)
        available = np.arange(len(activations))
    else:
        raise DatasetError(f"head {head.id!r} has no rig and {stage_name} has no 2D target source")
    drawn = draw.choice(len(available), size=min(stage.poses_per_step, len(available)), replace=False)
    shown = min(stage.rendered_poses or len(drawn), len(drawn))  # the first `shown` rows also get the 2D terms
    rows = np.concatenate([np.sort(drawn[:shown]), np.sort(drawn[shown:])])

    operators = get_operators(head.vertices, head.faces, network.config.k_eig, cache_dir=operator_cache,
                              eig_max_vertices=eig_max_vertices or None)
    vertices = torch.from_numpy(head.vertices).to(device)  # (V, 3)
    faces = torch.from_numpy(head.faces).to(device)  # (F, 3)
    acts = torch.from_numpy(activations[rows]).to(device)  # (B, A)
    if stage_name == "stage2":
        # The rig subtracts the network's all-zero-activation output from every pose
        # (facerig.rigging.pipeline.assemble_deltas), so that row must be trained too: its target is zero motion.
        # Untrained, it carried ~0.05 mm of offset into every shape (held-out MAE 0.187 mm vs 0.156 without it).
        acts = torch.cat([acts, acts.new_zeros(1, acts.shape[1])])
    deltas = model(vertices, operators.to_torch(str(device)), acts)  # (B[+1], V, 3)

    camera = frontal_camera(head.vertices, stage.image_size, stage.fov_degrees)
    landmarks = torch.from_numpy(head.landmarks).to(device)
    if head.rigged:
        gt = torch.from_numpy(head.deltas[available[rows]]).to(device)  # (B, V, 3)
        if stage_name == "stage2":
            gt = torch.cat([gt, gt.new_zeros(1, *gt.shape[1:])])  # the neutral row's target
        targets = render_targets(vertices, gt[:shown], faces, camera, stage.sigma, landmarks)
    else:
        targets = source.targets(head, rows[:shown], camera, stage.sigma)
    posed = vertices[None] + deltas[:shown]
    views = render_views(vertices, posed, faces, camera, sigma=stage.sigma)

    covered = (views.mask > 0.5) | (targets.mask > 0.5)  # a missing and an extra region both cost
    terms = {"image": losses.image_loss(views.image, targets.image, covered),
             "mask": losses.mask_loss(views.mask, targets.mask)}
    if stage_name == "stage1":
        flow_mask = targets.neutral_mask.expand(views.flow.shape[:-1])
        terms["displacement_2d"] = losses.displacement_2d_loss(views.flow, targets.flow, flow_mask)
        laplacian = losses.uniform_laplacian(faces, len(vertices))
        terms["regularization"] = losses.regularization_loss(deltas, laplacian)
        return terms
    every_pose = torch.ones(len(deltas), dtype=torch.bool, device=device)
    pose_weights = losses.pose_balance_weights(gt, every_pose, stage.pose_balance) if stage.pose_balance else None
    terms["mse_3d"] = losses.mse_3d_loss(deltas, gt, every_pose, pose_weights)
    terms["epe_3d"] = losses.epe_3d_loss(deltas, gt, every_pose, pose_weights)
    if targets.landmarks is None:  # a head without landmarks: the 2D landmark terms have nothing to compare
        terms["landmark_2d"] = terms["eye_closure_2d"] = deltas.new_zeros(())
        return terms
    projected = camera.project(posed[:, landmarks])  # (B, L, 3)
    terms["landmark_2d"] = losses.landmark_2d_loss(projected, targets.landmarks, camera.image_size)
    terms["eye_closure_2d"] = (
        losses.eye_closure_2d_loss(projected, targets.landmarks, camera.image_size, head.eyelid_pairs)
        if len(head.eyelid_pairs) else deltas.new_zeros(())
    )
    return terms


def evaluate(network: RigNetwork, heads: Any, stage_name: str, config: TrainConfig, seed: int = 0) -> float:
    """Mean weighted loss of ``stage_name`` over every head the stage trains on, with a fixed pose draw.

    The same ``seed`` gives the same heads, poses and targets, so two networks' numbers compare directly.
    """
    stage = config.stage(stage_name)
    rigged = heads.rigged()
    indices = [i for i, is_rigged in enumerate(rigged) if is_rigged or stage.heads == "all"]
    source = _target_source(config, heads, rigged) if stage.heads == "all" and not all(rigged) else None
    device = next(network.parameters()).device
    totals = []
    with torch.no_grad():
        for index in indices:
            draw = np.random.default_rng([seed, index])
            terms = step_losses(network, heads[index], stage_name, stage, draw, device, source,
                                heads.operator_cache, config.data.eig_max_vertices)
            totals.append(float(losses.weighted_total(terms, stage.weights)))
    return float(np.mean(totals))


def export(network: RigNetwork, config: TrainConfig, heads: Any, summaries: dict[str, StageSummary],
           ctx: DistContext, directory: Path) -> Path:
    """Write the TorchScript model with its provenance (the bundled-model format of :mod:`facerig.nn.model`)."""
    from facerig.nn.model import save_packaged
    from facerig.vocabulary import load_vocabulary

    manifest = getattr(heads, "manifest", {})
    device_name = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else platform.processor()
    training = {
        "config": config.to_dict(),
        "dataset": {"path": str(getattr(heads, "root", "")), "split": config.data.split, "heads": len(heads),
                    "seed": manifest.get("seed"), "builder_version": manifest.get("builder_version"),
                    "vocabulary_id": manifest.get("vocabulary_id"), "counts": manifest.get("counts")},
        "stages": {name: {"steps": s.steps, "epochs": s.epochs, "wall_s": round(s.wall_s, 3),
                          "final_losses": s.final_losses} for name, s in summaries.items()},
        "hardware": {"device": ctx.device.type, "name": device_name or platform.machine(),
                     "world_size": ctx.world_size, "platform": platform.platform()},
        "torch": torch.__version__,
    }
    metadata = {"action_names": list(load_vocabulary().action_names), "name": config.run.name, "training": training,
                "canonical_frame": {"version": FRAME_VERSION}}  # heads were canonicalised as at inference
    gaze_degrees = manifest.get("options", {}).get("gaze_degrees")
    if gaze_degrees is not None:  # the rig turns eyeballs by the angle the EyesLook ground truth used
        metadata["gaze_degrees"] = float(gaze_degrees)
    save_packaged(network, directory, metadata)
    root = getattr(heads, "root", None)
    validation = [e for e in manifest.get("samples", []) if e.get("split") == "val" and e.get("kind") == "rigged"]
    if root is not None and validation:
        # The rig shrinks offsets by the model's noise floor; choose it on held-out heads, as a user would.
        from facerig.eval.evaluate import choose_offset_floor

        choice = choose_offset_floor(directory, root, "val", max_heads=_FLOOR_HEADS, cache_dir=Path(root) / "operators")
        metadata["offset_floor"] = choice.floor
        training["offset_floor"] = {"split": "val", "heads": choice.heads,
                                    "mae_mm": {f"{floor:g}": round(mae, 5) for floor, mae in choice.mae_mm.items()}}
        save_packaged(network, directory, metadata)
    return directory


# ------------------------------------------------------------------------------------------ checkpoints
def _checkpoint(config: TrainConfig, ctx: DistContext, network: RigNetwork, optimizer: torch.optim.Optimizer,
                scheduler: Any, stage: str, step: int, epoch: int, done: bool, summary: StageSummary) -> None:
    """Write ``checkpoints/<stage>-<step>.pt``, or ``<stage>-final.pt`` at the stage's end, atomically.

    Rank 0 writes; every rank contributes its RNG state (a collective call).
    """
    rng = gather_objects(_rng_state(), ctx)
    if not ctx.is_main:
        return
    completed = [s for s in config.run.stages[: config.run.stages.index(stage) + done]]
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "stage": stage,
        "step": step,
        "epoch": epoch,
        "completed_stages": completed,
        "model": unwrap(network).state_dict(),
        "network": network.config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
        "wall_s": summary.wall_s,
        "losses": summary.final_losses,
        "config": config.to_dict(),
    }
    # the stage's last checkpoint has a fixed name, so a stage-2 config can name it before it exists
    path = Path(config.run.out_dir) / "checkpoints" / (f"{stage}-final.pt" if done else f"{stage}-{step:07d}.pt")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _initial_weights(init: dict[str, Any], network: RigNetwork) -> dict[str, torch.Tensor]:
    """A stage's starting weights from its ``init`` checkpoint, grown when the run's MLPs are wider."""
    trained_config = NetworkConfig.from_dict(init["network"])
    if trained_config == network.config:
        return init["model"]
    return widen_state(init["model"], trained_config, network.state_dict(), network.config)


def _initial_state(path: Path) -> dict[str, Any]:
    """What a stage starts from: a training checkpoint, or a packaged model's folder (``stage2.init =
    "facerig/models/default"`` fine-tunes the bundled model: configs/finetune.toml)."""
    if not path.is_dir():
        return _load_checkpoint(path)
    from facerig.nn.model import PackagedModel

    packaged = PackagedModel.load(path, prefer="weights")
    if packaged.format != "weights":
        raise ConfigError("a packaged model to train from needs its weights.pt (this one is TorchScript only)", path)
    return {"network": packaged.config, "model": packaged.module.state_dict()}


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise ConfigError(f"unreadable checkpoint: {error}", path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("not a facerig training checkpoint", path)
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ConfigError(f"checkpoint version {state['version']} is newer than this facerig reads", path)
    return state


def _rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------ helpers
def _target_source(config: TrainConfig, heads: Any, rigged: Sequence[bool]) -> TargetSource:
    """The 2D target source for unrigged heads: DiskTargets for a folder, else TransferTargets."""
    if config.data.targets != "transfer":
        return DiskTargets(config.data.targets)
    bank = [heads[i] for i in [i for i, r in enumerate(rigged) if r][:_TRANSFER_BANK]]
    return TransferTargets(bank)


class _Metrics:
    """Per-step metrics: ``metrics.csv`` and TensorBoard scalars, rank 0 only."""

    COLUMNS = ("stage", "step", "epoch", "lr", *LOSS_NAMES, "total", "seconds")

    def __init__(self, out_dir: Path, ctx: DistContext, resumed_from: dict[str, Any] | None) -> None:
        self.enabled = ctx.is_main
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "metrics.csv"
        kept = self._rows_before(resumed_from) if resumed_from else []
        with atomic_path(self.path) as tmp:  # start fresh, or keep only the rows the checkpoint had seen
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, self.COLUMNS)
                writer.writeheader()
                writer.writerows(kept)
        self.handle = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, self.COLUMNS)
        self.board = SummaryWriter(str(out_dir / "tensorboard"))

    def _rows_before(self, checkpoint: dict[str, Any]) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        order = {name: i for i, name in enumerate(STAGES)}
        cut = (order[checkpoint["stage"]], checkpoint["step"])
        with open(self.path, newline="") as handle:
            return [row for row in csv.DictReader(handle) if (order[row["stage"]], int(row["step"])) <= cut]

    def write(self, stage: str, step: int, epoch: int, lr: float, values: dict[str, float], seconds: float) -> None:
        if not self.enabled:
            return
        row = {"stage": stage, "step": step, "epoch": epoch, "lr": f"{lr:.6e}", "seconds": f"{seconds:.4f}"}
        row.update({name: repr(value) for name, value in values.items()})
        self.writer.writerow(row)
        self.handle.flush()
        for name, value in values.items():
            self.board.add_scalar(f"{stage}/{name}", value, step)
        self.board.add_scalar(f"{stage}/lr", lr, step)

    def close(self) -> None:
        if self.enabled:
            self.handle.close()
            self.board.close()


# ------------------------------------------------------------------------------------------ entry point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m facerig.trainer.train --config FILE [--resume CKPT] [--table.key value ...]`` (torchrun-able)."""
    parser = argparse.ArgumentParser(prog="python -m facerig.trainer.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="TOML config (defaults when omitted)")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from")
    args, rest = parser.parse_known_args(argv)
    config = load_config(args.config, parse_overrides(rest))
    result = train(config, resume=args.resume)
    if result.model_dir is not None:
        print(f"model written to {result.model_dir}")
    return 0


if __name__ == "__main__":
    import sys

    from facerig.errors import FacerigError

    try:
        sys.exit(main())
    except FacerigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
