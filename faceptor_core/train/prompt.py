"""Prompt tuning a new dataset: a run configuration that trains only the new task's queries."""

from __future__ import annotations

from pathlib import Path

from .config import RunConfig
from .precision import Precision


def prompt_tune_config(
    checkpoint: str,
    task: str,
    out: str | None = None,
    root: str | None = None,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 1e-3,
    eval_limit: int | None = 500,
    seed: int = 0,
    precision: Precision = "auto",
) -> RunConfig:
    """Add ``task`` to the model in ``checkpoint`` and train its queries only (everything else frozen), in
    ``precision`` (``auto``, as the demo: bf16 where the device computes it natively)."""
    out = out or str(Path("runs") / f"tune-{task}")
    return RunConfig.model_validate(
        {
            "output_dir": out,
            "seed": seed,
            "init_from": checkpoint,
            "tasks": [{"name": task, "root": root, "batch_size": batch_size, "eval_limit": eval_limit}],
            "train": {"mode": "prompt"},
            "optimizer": {"lr": lr, "head_lr_multiplier": 1.0, "weight_decay": 0.0},
            "schedule": {"steps": steps, "warmup_steps": min(20, steps // 10)},
            "eval_every": steps,
            "checkpoint_every": steps,
            "precision": precision,
        }
    )
