"""Two data-parallel processes on the CPU (gloo) agree with one process on the same global batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from faceptor_core import TaskRegistry, hookimpl
from faceptor_core.train import RunConfig, Trainer
from faceptor_core.train.distributed import DistInfo
from tests.conftest import TINY_DECODER
from tests.toytasks import MSELoss, toy_specs

STEPS = 3


def _config(out: str, pooled: float = 0.0) -> RunConfig:
    return RunConfig.model_validate(
        {
            "train": {"pooled_heads": pooled},
            "output_dir": out,
            "model": {"encoder": "vit_t16", "decoder": TINY_DECODER, "drop_path_rate": 0.0},
            "tasks": [{"name": "toy_channel", "batch_size": 8}, {"name": "toy_brightness", "batch_size": 4}],
            "optimizer": {"lr": 1e-3},
            "schedule": {"steps": STEPS, "warmup_steps": 0},
            "eval_every": 1000,
            "checkpoint_every": 1000,
            "progress": False,
        }
    )


class _LearnedScaleMSE(MSELoss):
    """A loss with its own parameter, as CosFace's class centres are: it lies outside the module DDP wraps."""

    def __init__(self):
        super().__init__()
        self.log_var = torch.nn.Parameter(torch.zeros(()))

    def forward(self, raw, target):
        return super().forward(raw, target) * torch.exp(-self.log_var) + self.log_var


class _Plugin:
    @hookimpl
    def register_tasks(self, register):
        for spec in toy_specs():
            register(
                spec.model_copy(update={"loss": lambda spec: _LearnedScaleMSE()})
                if spec.name == "toy_brightness"
                else spec
            )


def _registry() -> TaskRegistry:
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(_Plugin(), name="toy")
    return reg


def _worker(rank: int, world: int, port: int, out: str, pooled: float) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = Trainer(_config(out, pooled), registry=_registry(), dist_info=DistInfo(rank, world, 0))
        record = _run(trainer)
        if rank == 0:
            torch.save(record, os.path.join(out, "ddp.pt"))
    finally:
        dist.destroy_process_group()


def _run(trainer: Trainer) -> dict:
    """Losses of every step and the (all-reduced, clipped) gradients of the first."""
    losses, grads = [], {}
    for step in range(STEPS):
        losses.append(trainer.train_step()["loss"])
        if step == 0:
            grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
            if trainer.pooled is not None:  # the trainer's pooled heads are averaged across processes too
                grads |= {f"pooled.{n}": p.grad.clone() for n, p in trainer.pooled.named_parameters()}
            grads |= {f"losses.{n}": p.grad.clone() for n, p in trainer.losses.named_parameters()}  # and the losses'
    return {"losses": torch.tensor(losses), "grads": grads}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("pooled", [0.0, 0.5], ids=["plain", "pooled_heads"])
def test_two_processes_match_one(tmp_path, pooled):
    """Gradients are compared rather than weights: AdamW turns the float noise of gradients that are zero in
    exact arithmetic (key biases, which softmax ignores) into full-size steps that change no output."""
    torch.set_num_threads(1)
    single = _run(Trainer(_config(str(tmp_path / "single"), pooled), registry=_registry()))
    assert any(k.startswith("pooled.") for k in single["grads"]) == bool(pooled)
    assert "losses.toy_brightness.log_var" in single["grads"]
    args = (2, _free_port(), str(tmp_path), pooled)
    mp.start_processes(_worker, args=args, nprocs=2, join=True, start_method="spawn")
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    torch.testing.assert_close(ddp["losses"], single["losses"], rtol=1e-4, atol=1e-6)
    assert set(ddp["grads"]) == set(single["grads"])
    for k, g in single["grads"].items():
        torch.testing.assert_close(ddp["grads"][k], g, atol=1e-6, rtol=1e-4, msg=k)
