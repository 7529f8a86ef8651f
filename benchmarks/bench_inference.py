"""All-task inference speed: Faceptor (one encoder and one decoder pass per input size) vs the same tasks one at a
time vs Naive Faceptor. Random weights; CPU by default.

    python benchmarks/bench_inference.py                      # FaRL ViT-B/16, reference sizes (112 / 512 px)
    python benchmarks/bench_inference.py --size 224           # every task at one resolution
    python benchmarks/bench_inference.py --encoder vit_s16    # a CPU preset
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import faceptor_core
from faceptor_tasks.builtin import PAPER_TASKS


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="farl_vit_b16")
    ap.add_argument("--size", type=int, default=None, help="one input size for every task (default: per task)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--save", action="store_true", help="also write benchmarks/results/inference.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, args.size or 512, args.size or 512)
    rows = []
    with torch.inference_mode():
        model = faceptor_core.build(PAPER_TASKS, encoder=args.encoder, input_sizes=args.size).eval()
        together = timed(lambda: model(images), args.repeats)
        sequential = timed(lambda: [model(images, [t]) for t in PAPER_TASKS], args.repeats)
        out_all = model(images)
        max_diff = max(float((model(images, [t])[t] - out_all[t]).abs().max()) for t in PAPER_TASKS)
        rows.append(("Faceptor, all tasks in one pass", together, model.num_parameters()))
        rows.append(("Faceptor, one task at a time", sequential, model.num_parameters()))
        model = None  # free the memory before building the next one
        naive = faceptor_core.build(PAPER_TASKS, variant="naive", encoder=args.encoder, input_sizes=args.size).eval()
        naive_t = timed(lambda: naive(images), args.repeats)
        rows.append(("Naive Faceptor, all tasks", naive_t, naive.num_parameters()))
    sizes = f"{args.size} px" if args.size else "112 / 512 px"
    head = f"encoder {args.encoder}, {sizes}, batch {args.batch}, {args.threads} threads, best of {args.repeats}"
    table = [
        "| configuration | ms / batch | images/s | parameters | time vs one pass |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, t, n in rows:
        table.append(f"| {name} | {t * 1000:.0f} | {args.batch / t:.2f} | {n / 1e6:.2f}M | {t / together:.2f}x |")
    table += ["", f"{head}. Max difference between the one-pass and one-task-at-a-time raw outputs: {max_diff:.1e}."]
    print("\n".join(table))
    if args.save:
        out = Path(__file__).resolve().parent / "results"
        out.mkdir(exist_ok=True)
        (out / "inference.json").write_text(json.dumps({"table": "\n".join(table)}, indent=2))


if __name__ == "__main__":
    main()
