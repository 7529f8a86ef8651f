"""SynthFaces rendering speed on one thread (the target: at least 500 images/s at 112 px).

    python benchmarks/bench_synthfaces.py                  # 112 and 224 px
    python benchmarks/bench_synthfaces.py --sizes 112 --count 2000 --repeats 5

Each size renders ``count`` consecutive samples (labels included, every effect on, as training reads them)
``repeats`` times after a warm-up pass and reports the best pass: wall-clock images/s, and CPU-time
images/s, which is steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from faceptor_tasks.synthfaces import SynthFaces  # noqa: E402


def bench(size: int, count: int, repeats: int) -> tuple[float, float]:
    gen = SynthFaces(seed=0, size=size)
    for i in range(min(count, 1000)):  # warm-up: caches, and the identities a training stream reuses
        gen.sample(i)
    best_wall = best_cpu = 0.0
    for r in range(repeats):
        start = 1000 + r * count
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(start, start + count):
            gen.sample(i)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall, best_cpu = max(best_wall, count / wall), max(best_cpu, count / max(cpu, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"SynthFaces, one thread, best of {args.repeats} x {args.count} samples")
    print(f"{'size':>6} {'img/s (wall)':>13} {'img/s (cpu)':>12} {'ms/img':>7}")
    for size in args.sizes:
        wall, cpu = bench(size, args.count, args.repeats)
        print(f"{size:>6} {wall:>13.0f} {cpu:>12.0f} {1000 / wall:>7.2f}")


if __name__ == "__main__":
    main()
