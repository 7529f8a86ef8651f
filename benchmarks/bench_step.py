"""Seconds per training step of a demo recipe: the whole step (every task's batch, one backward) on the CPU.

A recipe is the demo's preset with learning-sweep overrides (``learning_sweep.py``'s job format). ``--fixed`` repeats
one batch per task (no data loading: the model's cost alone); without it the tasks' data workers run beside the
model, as in a real run (slower on 2 cores). ``--stage 2`` times the demo's second stage (the encoder frozen, on a
stage-1 checkpoint of one step; ``heads_train`` and ``heads_type_weights`` in the overrides: its train options and
type weights, the preset's by default).
``--cache`` sets the SynthFaces render cache: ``cold`` (empty, as a run starts), ``warm`` (every training image
painted beforehand, as stage 2 mostly finds it) or ``off`` (every image painted when it is read). ``--compile
blocks`` wraps each encoder block in ``torch.compile`` (``encoder``: the whole encoder); the warm-up's seconds,
compilation included, are then recorded too. Prints one JSON line, appended to ``--out`` when given.

    python benchmarks/bench_step.py '{"preset": "full"}' --fixed
    python benchmarks/bench_step.py '{"preset": "full", "model": {"input_size": 96}}' --steps 20
    python benchmarks/bench_step.py '{"preset": "standard"}' --stage 2 --cache warm
    python benchmarks/bench_step.py '{"preset": "standard"}' --fixed --compile blocks
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
from torch.multiprocessing import Pool

sys.path.insert(0, str(Path(__file__).parent))
from learning_sweep import heads_options, sweep_config  # noqa: E402


class _Repeat:
    """A task stream that hands out the same batch forever."""

    def __init__(self, batch: dict, consumed: int):
        self.batch, self.consumed = batch, consumed

    def __next__(self) -> dict:
        return self.batch


def _paint(args: tuple[str, range]) -> None:
    from faceptor_tasks.synthfaces.dataset import SynthFacesDataset

    root, indices = args
    ds = SynthFacesDataset("train", cache=root)
    for i in indices:
        ds.sample(i)


def fill_cache(root: str, processes: int) -> float:
    """Paint every SynthFaces training image into the render cache at ``root``; the wall seconds it took."""
    from faceptor_tasks.synthfaces.dataset import DEFAULT_LENGTHS

    n = DEFAULT_LENGTHS["train"]
    t0 = time.perf_counter()
    with Pool(processes) as pool:
        pool.map(_paint, [(root, range(k, n, processes)) for k in range(processes)])
    return time.perf_counter() - t0


def _without_cache(cfg):
    """``cfg`` with no task root: every SynthFaces image painted when it is read."""
    return cfg.model_copy(update={"tasks": [t.model_copy(update={"root": None}) for t in cfg.tasks]})


def compile_encoder(model: torch.nn.Module, what: str) -> None:
    """Wrap ``model``'s encoder blocks (``what="blocks"``) or its whole encoder (``"encoder"``) in ``torch.compile``."""
    if what == "blocks":
        blocks = model.encoder.blocks
        for i, block in enumerate(blocks):
            blocks[i] = torch.compile(block, dynamic=False)
    elif what == "encoder":
        model.encoder = torch.compile(model.encoder, dynamic=False)
    elif what != "none":
        raise ValueError(f"--compile: 'none', 'blocks' or 'encoder', got {what!r}")


def step_times(
    overrides: dict,
    steps: int,
    warmup: int,
    fixed: bool,
    workers: int,
    stage: int = 1,
    cache: str = "cold",
    compile_what: str = "none",
) -> tuple[list[float], str, float]:
    """Wall seconds of each of ``steps`` training steps after ``warmup`` untimed ones, the precision used, and the
    warm-up's seconds."""
    from faceptor_core.train.engine import Trainer
    from faceptor_tasks.synthfaces.demo import heads_config, stage1_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = sweep_config({"overrides": {"steps": warmup + steps, **overrides}}, Path(tmp) / "run", workers)
        if cache == "off":
            cfg = _without_cache(cfg)
        elif cache == "warm":  # the demo's own cache folder (every task's root), filled beforehand
            fill_cache(cfg.tasks[0].root, torch.get_num_threads())
        if stage == 2:
            first = Trainer(stage1_config(cfg))
            first.train_step()
            first.save_checkpoint("last")
            del first
            stage = heads_options(overrides).model_copy(update={"steps": warmup + steps, "lr": None})
            cfg = heads_config(cfg, stage).model_copy(update={"progress": False})
        trainer = Trainer(cfg)
        if fixed:
            trainer.streams = {n: _Repeat(next(s), s.consumed) for n, s in trainer.streams.items()}
        compile_encoder(trainer.model, compile_what)
        t0 = time.perf_counter()
        for _ in range(warmup):
            trainer.train_step()
        warmup_s = time.perf_counter() - t0
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t0)
        trainer.close_streams()  # the data workers stop before their cache folder is removed
        return times, trainer.precision, warmup_s


def emit(rec: dict, out: Path | None) -> None:
    """Print ``rec`` as one JSON line and append it to ``out`` when given."""
    line = json.dumps(rec)
    print(line)
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="?", default="{}", help="learning-sweep overrides as JSON (preset included)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--fixed", action="store_true", help="repeat one batch per task: no data loading")
    ap.add_argument("--workers", type=int, default=1, help="data workers per task (without --fixed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stage", type=int, choices=(1, 2), default=1, help="2: the demo's second stage")
    ap.add_argument("--cache", choices=("cold", "warm", "off"), default="cold", help="the SynthFaces render cache")
    ap.add_argument("--compile", choices=("none", "blocks", "encoder"), default="none", help="torch.compile it")
    ap.add_argument("--out", type=Path, help="append the result line to this JSON-lines file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.overrides)
    cache = "off" if args.fixed else args.cache
    times, precision, warmup_s = step_times(
        overrides, args.steps, args.warmup, args.fixed, args.workers, args.stage, cache, args.compile
    )
    rec = {
        "overrides": overrides,
        "precision": precision,
        "stage": args.stage,
        "fixed_batches": args.fixed,
        **({} if args.fixed else {"render_cache": args.cache}),
        "threads": args.threads,
        **({} if args.compile == "none" else {"compile": args.compile, "warmup_s": round(warmup_s, 1)}),
        "warmup_steps": args.warmup,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "steps": args.steps,
    }
    emit(rec, args.out)


if __name__ == "__main__":
    main()
