"""DistributedDataParallel setup behind one small helper (nanoGPT's pattern, SPEC §5).

A process is part of a DDP run when torchrun (or a test's spawner) set ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; otherwise it is a world of one and nothing is initialised. CUDA ranks use NCCL on
``cuda:LOCAL_RANK``; CPU ranks use gloo. Side effects (files, logs) belong to :attr:`DistContext.is_main`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from facerig.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the run."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()


@contextlib.contextmanager
def distributed(device: str = "auto") -> Iterator[DistContext]:
    """Join the torchrun process group for the duration of the block (a no-op outside torchrun).

    Args:
        device: "auto" (CUDA when available), "cpu" or "cuda".

    The process group is destroyed on the way out, also when the block raises.
    """
    in_torchrun = all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    rank = int(os.environ["RANK"]) if in_torchrun else 0
    local_rank = int(os.environ["LOCAL_RANK"]) if in_torchrun else 0
    world_size = int(os.environ["WORLD_SIZE"]) if in_torchrun else 1
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device cuda was requested but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        context = DistContext(rank, local_rank, world_size, torch.device("cuda", local_rank))
    else:
        context = DistContext(rank, local_rank, world_size, torch.device("cpu"))
    started = False
    if in_torchrun and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        started = True
    try:
        yield context
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def wrap(model: nn.Module, context: DistContext) -> nn.Module:
    """``model`` in DDP when the run is distributed (every parameter is used by every step), else itself."""
    if not context.is_distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (for saving: no ``module.`` prefix in state dicts)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def gather_objects(obj: Any, context: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-item list outside DDP). Collective: all ranks must call it."""
    if not context.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def mean_across_ranks(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Element-wise mean of a tensor over ranks (for logging losses); a copy, the input is unchanged."""
    values = values.detach().clone()
    if context.is_distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= context.world_size
    return values


def barrier(context: DistContext) -> None:
    """Wait for every rank (a no-op outside DDP)."""
    if context.is_distributed:
        dist.barrier()
