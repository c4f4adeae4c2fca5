"""Seconds per training step and peak memory for the cpu and paper presets, per stage, at ~3k vertices.

Builds (once, into --workdir) a two-head dataset with the dataset builder: one rigged and one unrigged ICT head
re-meshed to about --vertices vertices, then times full optimizer steps (forward, renders of prediction and
targets, losses, backward, Adam) of each preset's stages on them. Each (preset, stage) runs in its own process so
its peak resident memory is its own; on CUDA the peak is torch's max_memory_allocated.

    python bench/train_step.py [--presets cpu,paper] [--device cpu|cuda] [--steps 5] [--vertices 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_heads(workdir: Path, vertices: int) -> Path:
    """A dataset of one rigged and one unrigged head near ``vertices`` vertices (reused when present)."""
    root = workdir / f"heads-{vertices}"
    if (root / "manifest.json").is_file():
        return root
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # the test suite's data locator: unpacks ICT-FaceKit once

    from facerig.trainer.dataset import BuildOptions, build_ict_dataset

    options = BuildOptions(rigged=1, unrigged=1, factor_rigged=1, factor_unrigged=1, val_fraction=0.0,
                           test_fraction=0.0, min_vertices=int(vertices * 0.9), max_vertices=int(vertices * 1.1),
                           augment_fraction=0.0)
    build_ict_dataset(conftest.ict_dir.__wrapped__(), root, options, overwrite=True)
    return root


def time_one(dataset: Path, preset: str, stage_name: str, device: str, steps: int) -> dict:
    """Median seconds of ``steps`` optimizer steps (after one warm-up step) and the peak memory."""
    from facerig.nn.network import RigNetwork, count_parameters
    from facerig.trainer.config import load_config
    from facerig.trainer.heads import TrainingHeads
    from facerig.trainer.train import _target_source, step_losses
    from facerig.trainer import losses

    config = load_config(REPO / "configs" / f"{preset}.toml")
    stage = config.stage(stage_name)
    heads = TrainingHeads(dataset)
    rigged = heads.rigged()
    # stage 1 times the unrigged head (transfer targets: the costlier path), stage 2 the rigged one
    index = rigged.index(True) if stage_name == "stage2" else rigged.index(False)
    head = heads[index]
    source = _target_source(config, heads, rigged)
    dev = torch.device(device)
    network = RigNetwork(config.network).to(dev)
    optimizer = torch.optim.Adam(network.parameters(), lr=stage.lr)
    times = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        draw = np.random.default_rng([0, step])
        terms = step_losses(network, head, stage_name, stage, draw, dev, source, heads.operator_cache)
        losses.weighted_total(terms, stage.weights).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"preset": preset, "stage": stage_name, "device": device, "vertices": len(head.vertices),
            "params": count_parameters(network), "poses": stage.poses_per_step, "px": stage.image_size,
            "s_per_step": float(np.median(times[1:])), "first_s": times[0], "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="cpu,paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--vertices", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=REPO / ".facerig-cache" / "bench-train")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # preset:stage, run in a child process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = build_heads(args.workdir, args.vertices)
    if args.one:
        preset, stage = args.one.split(":")
        print(json.dumps(time_one(dataset, preset, stage, args.device, args.steps)))
        return
    presets = {"cpu": "cpu", "paper": "paper-stage1"}
    rows = []
    for name in args.presets.split(","):
        for stage in ("stage1", "stage2"):
            preset = presets[name] if stage == "stage1" or name == "cpu" else "paper-stage2"
            done = subprocess.run([sys.executable, __file__, "--one", f"{preset}:{stage}", "--device", args.device,
                                   "--steps", str(args.steps), "--vertices", str(args.vertices),
                                   "--threads", str(args.threads), "--workdir", str(args.workdir)],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    header = f"{'preset':<14}{'stage':<8}{'device':<7}{'V':>6}{'params':>10}{'poses':>6}{'px':>5}" \
             f"{'s/step':>9}{'first s':>9}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['preset']:<14}{r['stage']:<8}{r['device']:<7}{r['vertices']:>6}{r['params']:>10,}{r['poses']:>6}"
              f"{r['px']:>5}{r['s_per_step']:>9.3f}{r['first_s']:>9.2f}{r['peak_mib']:>10.0f}")


if __name__ == "__main__":
    main()
