"""Train one task's heads further on a trained model with its encoder held, and score them beside the trivial answer.

Asks whether a task's heads can read what the encoder already holds, given many more images than the demo gave
them (docs/results.md, "Why expression does not learn: the geometry is there, the model's copy of it is not").

    python benchmarks/head_refit.py RUN/checkpoints/last synth_expression stage2 --steps 200 --batch 32

Modes: ``queries`` trains the task's queries only (prompt tuning); ``stage2`` adds every encoder layer to the
decoder's memory through Layer-Attention and trains the new projections with the queries (the paper's Stage 2);
``heads`` trains the decoder, interpreters and queries at ``--lr`` and the encoder at a thousandth of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import faceptor_core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiments import RUNS, config, scored, train  # noqa: E402


def refit(checkpoint: Path, task: str, mode: str, steps: int, batch: int, lr: float, seed: int = 0) -> dict:
    depth = faceptor_core.load(checkpoint).config.encoder.depth
    modes = {
        "queries": ({"mode": "prompt"}, {"lr": lr, "head_lr_multiplier": 1.0}),
        "stage2": (
            {"mode": "layer_attention", "add_memory_layers": list(range(depth - 1))},
            {"lr": lr, "head_lr_multiplier": 1.0},
        ),
        "heads": ({"mode": "full"}, {"lr": lr * 1e-3, "head_lr_multiplier": 1e3}),
    }
    train_cfg, optimizer = modes[mode]
    out = RUNS / "head_refit" / f"{task}_{mode}_s{seed}"
    cfg = config(out, [task], steps, seed, train=train_cfg, init_from=str(checkpoint), optimizer=optimizer)
    cfg.tasks[0].batch_size = batch
    trainer, results, seconds = train(cfg)
    return {
        "checkpoint": str(checkpoint),
        "task": task,
        "mode": mode,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        **scored(task, results[task]),
        "trainable_parameters": trainer.num_trainable_parameters(),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("task")
    ap.add_argument("mode", choices=["queries", "stage2", "heads"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="append the result to this JSON-lines file")
    args = ap.parse_args()
    record = refit(args.checkpoint, args.task, args.mode, args.steps, args.batch, args.lr, args.seed)
    print(json.dumps(record))
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
