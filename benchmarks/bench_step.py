"""Seconds per training step of a demo recipe: the whole step (every task's batch, one backward) on the CPU.

A recipe is the demo's preset with learning-sweep overrides (``learning_sweep.py``'s job format). ``--fixed`` repeats
one batch per task (no data loading: the model's cost alone); without it the tasks' data workers run beside the
model, as in a real run (slower on 2 cores). Prints one JSON line, appended to ``--out`` when given.

    python benchmarks/bench_step.py '{"preset": "full"}' --fixed
    python benchmarks/bench_step.py '{"preset": "full", "model": {"input_size": 96}}' --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from learning_sweep import sweep_config  # noqa: E402


class _Repeat:
    """A task stream that hands out the same batch forever."""

    def __init__(self, batch: dict, consumed: int):
        self.batch, self.consumed = batch, consumed

    def __next__(self) -> dict:
        return self.batch


def step_times(overrides: dict, steps: int, warmup: int, fixed: bool, workers: int) -> tuple[list[float], str]:
    """Wall seconds of each of ``steps`` training steps after ``warmup`` untimed ones, and the precision used."""
    from faceptor_core.train.engine import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = sweep_config({"overrides": {"steps": warmup + steps, **overrides}}, Path(tmp) / "run", workers)
        trainer = Trainer(cfg)
        if fixed:
            trainer.streams = {n: _Repeat(next(s), s.consumed) for n, s in trainer.streams.items()}
        for _ in range(warmup):
            trainer.train_step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t0)
        return times, trainer.precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="?", default="{}", help="learning-sweep overrides as JSON (preset included)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--fixed", action="store_true", help="repeat one batch per task: no data loading")
    ap.add_argument("--workers", type=int, default=1, help="data workers per task (without --fixed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="append the result line to this JSON-lines file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.overrides)
    times, precision = step_times(overrides, args.steps, args.warmup, args.fixed, args.workers)
    rec = {
        "overrides": overrides,
        "precision": precision,
        "fixed_batches": args.fixed,
        "threads": args.threads,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "steps": args.steps,
    }
    line = json.dumps(rec)
    print(line)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
