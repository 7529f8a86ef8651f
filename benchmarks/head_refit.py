"""Train one task's heads further on a trained model with its encoder held, and score them beside the trivial answer.

Asks whether a task's heads can read what the encoder already holds, given many more images than the demo gave
them (docs/results.md, "Why expression does not learn: the geometry is there, the model's copy of it is not").

    python benchmarks/head_refit.py RUN/checkpoints/last synth_expression stage2 --steps 200 --batch 32

Modes: ``queries`` trains the task's queries only (prompt tuning); ``stage2`` adds every encoder layer to the
decoder's memory through Layer-Attention and trains the new projections with the queries (the paper's Stage 2);
``heads`` trains the decoder, interpreters and queries at ``--lr`` and the encoder at a thousandth of it;
``linear`` (``synth_expression`` only) replaces the decoder's reading by one linear layer over the last encoder
layer's tokens, each token position with its own weights, trained on the same number of fresh images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import faceptor_core
from faceptor_tasks.synthfaces.dataset import SynthFacesDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experiments import RUNS, Claims, scored, stage2_train_modes, train  # noqa: E402
from representation_probe import trivial  # noqa: E402


def refit(checkpoint: Path, task: str, mode: str, steps: int, batch: int, lr: float, seed: int = 0) -> dict:
    stages = stage2_train_modes(faceptor_core.load(checkpoint).config.encoder.depth)
    modes = {
        "queries": (stages["stage1_queries_only"], {"lr": lr, "head_lr_multiplier": 1.0}),
        "stage2": (stages["stage2_layer_attention"], {"lr": lr, "head_lr_multiplier": 1.0}),
        "heads": ({"mode": "full"}, {"lr": lr * 1e-3, "head_lr_multiplier": 1e3}),
    }
    train_cfg, optimizer = modes[mode]
    out = RUNS / "head_refit" / f"{task}_{mode}_s{seed}"
    claims = Claims("standard", seed)  # the 10-minute demo's model and recipe
    cfg = claims.config(out, [task], steps, train=train_cfg, init_from=str(checkpoint), optimizer=optimizer)
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


def refit_linear(checkpoint: Path, steps: int, batch: int, lr: float, seed: int = 0, test: int = 300) -> dict:
    """Expression from the held encoder's last layer through one linear layer (standardised tokens, AdamW, weight
    decay 0.1), on ``steps x batch`` training images drawn at random, scored on the first ``test`` test items beside
    the majority class of the first 300 training items (which also standardise the tokens)."""
    model = faceptor_core.load(checkpoint)
    size = model.tasks["synth_expression"].input_size
    train_set, test_set = SynthFacesDataset("train", size), SynthFacesDataset("test", size, length=test)

    @torch.no_grad()
    def tokens(ds: SynthFacesDataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
        samples = [ds.sample(int(i)) for i in indices]
        feats = model.encode(model.prepare([s.image for s in samples], [size]))[size]
        return feats[-1].flatten(1), torch.tensor([s.expression for s in samples])

    # the first 300 training items (those the trivial answers are fitted on) give the token statistics and the
    # majority class
    ref_x, ref_y = tokens(train_set, range(300))
    mu, sd = ref_x.mean(0), ref_x.std(0) + 1e-6
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = torch.nn.Linear(ref_x.shape[1], 7)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.1)
    for _ in range(steps):
        x, y = tokens(train_set, rng.integers(0, len(train_set), batch))
        loss = F.cross_entropy(head((x - mu) / sd), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt, yt = tokens(test_set, range(test))
    with torch.no_grad():
        accuracy = float((head((xt - mu) / sd).argmax(1) == yt).float().mean())
    majority = trivial(ref_y.numpy(), yt.numpy(), multilabel=False)
    return {
        "checkpoint": str(checkpoint),
        "task": "synth_expression",
        "mode": "linear",
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "metric": accuracy,
        "baseline": majority,
        "trainable_parameters": sum(p.numel() for p in head.parameters()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("task")
    ap.add_argument("mode", choices=["queries", "stage2", "heads", "linear"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="append the result to this JSON-lines file")
    args = ap.parse_args()
    if args.mode == "linear":
        if args.task != "synth_expression":
            ap.error("mode linear reads synth_expression only")
        record = refit_linear(args.checkpoint, args.steps, args.batch, args.lr, args.seed)
    else:
        record = refit(args.checkpoint, args.task, args.mode, args.steps, args.batch, args.lr, args.seed)
    print(json.dumps(record))
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
