"""A new task on a trained model: prompt tuning (``faceptor tune``'s own configuration) against full fine-tuning
and the trivial answer, over several seeds. Appends one JSON line per seed to OUT.

    python benchmarks/tune_new_task.py faceptor-demo/checkpoints/last gaze_synth OUT.jsonl --seeds 0 1 2

Prompt tuning trains only the new task's queries (the base model stays bit-identical); full fine-tuning starts from
the same model and trains everything on the same images at the claims' rate (``experiments.py prompt``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faceptor_core
from faceptor_core.train import RunConfig, Trainer
from faceptor_core.train.prompt import prompt_tune_config

METHODS = ("prompt_tuning", "full_fine_tuning")


def run(cfg: RunConfig, task: str, score_start: bool) -> tuple[dict | None, dict, float, int]:
    """``cfg``'s scores before (with ``score_start``) and after training, its training seconds and trainable
    parameters."""
    trainer = Trainer(cfg, overwrite=True)
    before = trainer.evaluate()[task] if score_start else None
    t0 = time.perf_counter()
    after = trainer.fit()[task]
    return before, after, time.perf_counter() - t0, trainer.num_trainable_parameters()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("task")
    ap.add_argument("out", type=Path, help="JSON lines, one per seed (appended)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300, help="as faceptor tune (default: 300)")
    ap.add_argument("--runs", type=Path, default=Path("runs/tune_new_task"), help="run folders (overwritten)")
    ap.add_argument("--no-affine", action="store_true", help="train.output_affine false: the queries alone")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="fp32", help="default: fp32, as recorded")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="which to run (default: both)")
    args = ap.parse_args()
    key = faceptor_core.get_task(args.task).primary_metric
    for seed in args.seeds:
        record: dict = {"checkpoint": args.checkpoint, "task": args.task, "seed": seed, "steps": args.steps}
        record["output_affine"] = not args.no_affine
        record["precision"] = args.precision
        out = str(args.runs / f"prompt_s{seed}")
        prompt = prompt_tune_config(
            args.checkpoint, args.task, out=out, steps=args.steps, seed=seed, precision=args.precision
        )
        prompt.train.output_affine = not args.no_affine
        full = prompt.model_copy(deep=True)
        full.output_dir = str(args.runs / f"full_s{seed}")
        full.train.mode = "full"
        full.optimizer.lr, full.optimizer.head_lr_multiplier = 5e-4, 10.0
        for name, cfg in (("prompt_tuning", prompt), ("full_fine_tuning", full)):
            if name not in args.methods:
                continue
            # both start from the same model and seed: the untrained score is scored once
            cfg = RunConfig.model_validate(cfg.model_dump())
            before, after, secs, trainable = run(cfg, args.task, "untrained" not in record)
            if before is not None:
                record["untrained"] = before[key]
            record["baseline"] = after[f"baseline/{key}"]
            record[name] = {"metric": after[key], "seconds": secs, "trainable_parameters": trainable}
            print(f"seed {seed} {name}: {key} {after[key]:.4f} (trivial {after[f'baseline/{key}']:.4f})", flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
