"""Data-parallel training across processes started by torchrun (DistributedDataParallel).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the loop runs as one process.
Every process holds the whole (small) dataset on its device, draws the same global batch
order and trains on its share of each batch; DDP averages the gradients, so a step equals
one step on the whole batch. gloo on CPU, nccl on CUDA."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def start(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun set up, if any; each process gets its own GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def wrap(module: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    if not ranks.distributed:
        return module
    if device.type == "cuda":  # batch statistics over the whole global batch, as in one process
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def shard(index: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This process's share of a global batch."""
    return index[ranks.rank::ranks.world] if ranks.distributed else index


def total(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Sum over processes (epoch metrics: one reduction per epoch, not per step)."""
    if ranks.distributed:
        dist.all_reduce(value)
    return value


def finish(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
