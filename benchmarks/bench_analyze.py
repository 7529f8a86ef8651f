"""Photos with N faces: ``analyze`` (all faces, one pass per input size) vs N single-face calls, with the time
of detection, alignment (crops), the model and mapping back measured apart. Random weights.

    python benchmarks/bench_analyze.py                          # vit_t16, reference sizes, N = 1, 8, 32, CPU
    python benchmarks/bench_analyze.py --encoder farl_vit_b16 --device cuda --save
    python benchmarks/bench_analyze.py --faces 1 8 --size 112   # every task at 112 px (a quick run)

The photo is a grid of copies of scikit-image's astronaut face (about 150 px each) on a plain background;
YuNet finds every copy. "per-face calls" detects once, then analyses each face alone (what a caller without
batching does); both paths give the same results.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import faceptor_core
from faceptor_tasks.builtin import PAPER_TASKS

CELL = 200


def group_photo(n: int) -> np.ndarray:
    """``n`` copies of the astronaut's face on a grey grid (cells of 200 px, faces about 150 px)."""
    import skimage.data

    astro = skimage.data.astronaut()
    patch = cv2.resize(astro[40:220, 130:310], (170, 170), interpolation=cv2.INTER_AREA)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    photo = np.full((rows * CELL, cols * CELL, 3), 128, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        photo[r * CELL + 15 : r * CELL + 185, c * CELL + 15 : c * CELL + 185] = patch
    return photo


def model_gflop(model, n: int) -> float:
    """Floating-point operations (GFLOP, counted by torch, not timed) of one model pass over ``n`` faces at every
    task's input size: the work a CPU must do, whatever the batching."""
    from torch.utils.flop_counter import FlopCounterMode

    sizes = sorted({t.input_size for t in model.config.tasks})
    batches = {s: torch.rand(n, 3, s, s, device=model.pixel_mean.device) for s in sizes}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(batches)
    return counter.get_total_flops() / 1e9


def best_of(fn, repeats: int):
    out, best = fn(), float("inf")  # warm-up (and the result)
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="vit_t16")
    ap.add_argument("--size", type=int, default=None, help="one input size for every task (default: per task)")
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--save",
        action="store_true",
        help="also write benchmarks/results/analyze_<encoder>_<device>_<size or ref>.json",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    torch.manual_seed(0)
    model = faceptor_core.build(PAPER_TASKS, encoder=args.encoder, input_sizes=args.size).eval().to(args.device)
    detector = faceptor_core.default_registry().detector("yunet")
    rows = []
    for n in args.faces:
        photo = group_photo(n)
        results, total = best_of(lambda p=photo: model.analyze(p), args.repeats)
        [res] = results
        t = res.timings
        found = [{"box": f.box.tolist(), "points": f.points.tolist()} for f in res.faces]

        def per_face(p=photo, found=found):
            t0 = time.perf_counter()
            detector.detect(p)
            det = time.perf_counter() - t0
            return det + sum(_timed(lambda f=f: model.analyze(p, faces=[f])) for f in found)

        per = min(per_face() for _ in range(args.repeats))
        rows.append(
            {
                "faces": n,
                "found": len(res),
                "detect": t["detect"],
                "align": t["align"],
                "model": t["model"],
                "map": t["map"],
                "analyze": total,
                "per_face": per,
                "gflop": model_gflop(model, n),
            }
        )
    sizes = f"{args.size} px" if args.size else "112 / 512 px"
    head = (
        f"encoder {args.encoder}, {sizes}, {len(PAPER_TASKS)} tasks, {args.device}"
        f"{f' ({args.threads} threads)' if args.device == 'cpu' else ''}, best of {args.repeats}"
    )
    table = [
        "| faces (found) | detect ms | align ms | model ms | map ms | analyze ms | per-face calls ms | "
        "speed-up | detect + align | model GFLOP (per face) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        table.append(
            f"| {r['faces']} ({r['found']}) | {r['detect'] * 1e3:.0f} | {r['align'] * 1e3:.0f} | "
            f"{r['model'] * 1e3:.0f} | {r['map'] * 1e3:.0f} | {r['analyze'] * 1e3:.0f} | {r['per_face'] * 1e3:.0f} | "
            f"{r['per_face'] / r['analyze']:.1f}x | {(r['detect'] + r['align']) / r['analyze']:.0%} | "
            f"{r['gflop']:.1f} ({r['gflop'] / r['faces']:.2f}) |"
        )
    table += [
        "",
        head + ". The model's work per face is the same at any batch size (GFLOP column): where the "
        "hardware is already busy at one face (a CPU), batching saves only per-call overheads.",
    ]
    print("\n".join(table))
    if args.save:
        out = Path(__file__).resolve().parent / "results"
        out.mkdir(exist_ok=True)
        (out / f"analyze_{args.encoder}_{args.device}_{args.size or 'ref'}.json").write_text(
            json.dumps({"table": "\n".join(table), "rows": rows}, indent=2)
        )


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
