"""Data-parallel set-up under ``torchrun``: gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def device_for(info: DistInfo) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``params``' gradients across processes, in one all-reduce: for parameters outside the module that
    DistributedDataParallel wraps (the losses' own, such as CosFace's class centres). A parameter without a gradient
    on this process counts as a zero gradient, so every process joins the same reduction; one without a gradient on
    every process keeps none (the optimizer skips it everywhere alike)."""
    if not (info.enabled and dist.is_initialized()) or not params:
        return
    had = torch.tensor([float(p.grad is not None) for p in params])
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [had.to(grads[0].device, grads[0].dtype)])
    dist.all_reduce(flat)
    *chunks, anyone = flat.split([p.numel() for p in params] + [len(params)])
    for p, chunk, flag in zip(params, chunks, anyone.tolist(), strict=True):
        if flag:  # some process has a gradient for it
            p.grad = (chunk / info.world_size).view_as(p).clone()
