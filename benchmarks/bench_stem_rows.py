"""Paired A/B of one encoder change in the demo's stage-1 step: the ResNet stem's stride-2 rows taken with the
max-pool (``encode(..., rows)``, the default) against slices of the whole map (the encoder told nothing).

Both run in one process on one model, on fixed batches (no data loading), alternating step by step, so that the
host's drift (10% within an hour here) falls on both alike; the weights move on between steps, which changes
nothing in the cost. Prints one JSON line with each variant's step times and the paired difference, appended to
``--out`` when given.

    python benchmarks/bench_stem_rows.py --pairs 40 --out benchmarks/results/stem_rows_steps.jsonl
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
from bench_step import _Repeat, _without_cache, emit  # noqa: E402
from learning_sweep import sweep_config  # noqa: E402


def paired_steps(overrides: dict, pairs: int, warmup: int) -> dict[str, list[float]]:
    """Wall seconds of ``pairs`` steps with the stem's taken rows (``taken``) and as many without (``sliced``)."""
    from faceptor_core.train.engine import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _without_cache(sweep_config({"overrides": {"steps": 10**4, **overrides}}, Path(tmp) / "run", 0))
        trainer = Trainer(cfg)
        trainer.streams = {n: _Repeat(next(s), s.consumed) for n, s in trainer.streams.items()}
        model = trainer.model
        encode = model.encode
        for _ in range(warmup):
            trainer.train_step()
        times: dict[str, list[float]] = {"taken": [], "sliced": []}
        for i in range(pairs):
            for variant in ("taken", "sliced") if i % 2 else ("sliced", "taken"):
                if variant == "sliced":  # the encoder is not told the dense rows: every map is sliced
                    model.encode = lambda batches, rows=None: encode(batches)
                t0 = time.perf_counter()
                trainer.train_step()
                times[variant].append(time.perf_counter() - t0)
                model.__dict__.pop("encode", None)
        return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="?", default='{"preset": "standard"}', help="learning-sweep overrides (JSON)")
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="append the result line to this JSON-lines file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.overrides)
    times = paired_steps(overrides, args.pairs, args.warmup)
    diff = [s - t for s, t in zip(times["sliced"], times["taken"], strict=True)]
    rec = {
        "overrides": overrides,
        "threads": args.threads,
        "pairs": args.pairs,
        **{f"{k}_median_s": round(statistics.median(v), 3) for k, v in times.items()},
        **{f"{k}_mean_s": round(statistics.mean(v), 3) for k, v in times.items()},
        "saved_mean_s": round(statistics.mean(diff), 4),
        "saved_se_s": round(statistics.stdev(diff) / len(diff) ** 0.5, 4),
    }
    emit(rec, args.out)


if __name__ == "__main__":
    main()
