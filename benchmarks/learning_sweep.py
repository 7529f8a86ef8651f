"""Run many short trainings side by side (one process each) and collect their test metrics as JSON lines.

Used to choose the demo's CPU recipe (docs/results.md, "Why the demo did not learn"). Each job is a dict:
``{"kind": "faceptor", "name": ..., "overrides": {...demo config overrides...}, "tasks": [...] | null}`` (besides
run-config keys, overrides take the demo's ``preset``, ``standard`` by default; ``steps``, the preset's by default
(400 whatever the preset before 2026-12-04); ``batch`` for every task (identity at twice it), ``batch_sizes`` per
task, ``eval_limit`` and ``eval_every``, which also keeps every evaluation on the way as ``evals``; ``heads_steps``,
``heads_lr``, ``heads_train`` and ``heads_type_weights``, the second stage's steps, learning rate, train options and
type weights, the preset's by default; optional ``"variants": {name: {heads_* overrides}}``: more second stages from the
same first stage, each recorded under ``variants`` with its results, so that each differs from the job's own second
stage in its overrides alone) or
``{"kind": "specialist", "name": ..., "task": ..., "images": N, "batch": B, "lr": LR, "seed": S, "arch": A}``
(``arch``: ``resnet18``, the default, or one of the ViT specialists that ``bench_specialist.ARCHS`` lists; optional
``head_images`` and ``head_lr``: a second stage that trains the last layer alone on the frozen backbone, as the
demo's stage 2 trains its decoders; ``eval_limit``: test items scored, 500 by default, the demo's 300 to compare on
its items).

Each job's record is appended to the results as the job ends (so in the order they end), and a line says when each
job starts and ends.

    python benchmarks/learning_sweep.py jobs.json results.jsonl --parallel 6 --workers 2
    python benchmarks/learning_sweep.py jobs.json results.jsonl --parallel 1 --threads 2   # a demo's wall time
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceptor_core.train.config import RunConfig
    from faceptor_tasks.synthfaces.demo import HeadsStage


def _merge(a: dict, b: dict) -> None:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v


def sweep_config(job: dict, out: Path, workers: int) -> RunConfig:
    """The demo configuration with ``job['overrides']`` (the module docstring lists the keys), as a RunConfig."""
    from faceptor_core.train.config import RunConfig
    from faceptor_tasks.synthfaces.demo import DEMO_TASKS, PRESETS, HeadsStage, demo_config

    ov = dict(job.get("overrides", {}))
    preset = ov.pop("preset", "standard")
    steps = ov.pop("steps", PRESETS[preset].steps)  # before 2026-12-04: 400 whatever the preset
    batch = ov.pop("batch", None)
    batch_sizes = ov.pop("batch_sizes", {})  # {task: batch size}, after "batch"
    eval_limit = ov.pop("eval_limit", None)  # test items per task (default: the demo's)
    eval_every = ov.pop("eval_every", steps)  # evaluations on the way are returned as "evals"
    for field in HeadsStage.model_fields:  # the second stage's heads_* keys: run_faceptor reads them
        ov.pop(f"heads_{field}", None)
    tasks = [t for t in DEMO_TASKS if t in job["tasks"]] if job.get("tasks") else DEMO_TASKS
    d = demo_config(out, preset, steps=steps, tasks=tasks).model_dump()
    if batch:
        for t in d["tasks"]:
            t["batch_size"] = batch * (2 if t["name"] == "synth_identity" else 1)
    for t in d["tasks"]:
        t["batch_size"] = batch_sizes.get(t["name"], t["batch_size"])
        t["eval_limit"] = eval_limit or t["eval_limit"]
    _merge(d, ov)
    d.update(progress=False, eval_every=eval_every, checkpoint_every=10**9, num_workers=workers, output_dir=str(out))
    return RunConfig.model_validate(d)


def heads_options(overrides: dict) -> HeadsStage:
    """The second stage of a job's ``overrides``: its ``heads_*`` keys (``heads_steps`` for ``HeadsStage.steps``, and
    so on), the preset's where they do not say."""
    from faceptor_tasks.synthfaces.demo import PRESETS, HeadsStage

    preset = PRESETS[overrides.get("preset", "standard")]
    given = {f: overrides[f"heads_{f}"] for f in HeadsStage.model_fields if f"heads_{f}" in overrides}
    return HeadsStage.model_validate({**preset.heads.model_dump(), **given})


def _heads_record(heads: HeadsStage) -> dict:
    """``heads`` under the overrides' ``heads_*`` names, the empty train options and type weights left out."""
    return {f"heads_{f}": v for f, v in heads.model_dump().items() if f in ("steps", "lr") or v}


def run_faceptor(job: dict, out: Path, workers: int) -> dict:
    """Train the demo configuration with ``job['overrides']`` and return its last evaluation (and each variant's)."""
    from faceptor_tasks.synthfaces.demo import train_demo

    overrides = job.get("overrides", {})
    heads = heads_options(overrides)
    variants = job.get("variants", {})
    if variants and not heads.steps:
        raise ValueError(f"job {job.get('name')}: variants are second stages, and this job has none (heads_steps 0)")
    cfg = sweep_config(job, out, workers)
    steps, eval_every = cfg.schedule.steps, cfg.eval_every
    shutil.rmtree(out, ignore_errors=True)
    run = train_demo(cfg, heads)
    log = [json.loads(line) for line in run.logs[0].read_text().splitlines()]  # stage 1's: evaluated on the way
    evals = [{"step": r["step"], "results": r["eval"]} for r in log if "eval" in r]
    return {
        "seconds": round(run.seconds, 1),
        "device": str(run.trainer.device),
        "precision": run.trainer.precision,
        "parameters": run.trainer.model.num_parameters(),
        "results": run.results,
        **({**_heads_record(heads), "stage1_results": run.stage1_results} if heads.steps else {}),
        **({"evals": evals} if eval_every < steps else {}),
        **(
            {"variants": {name: run_variant(cfg, {**overrides, **v}) for name, v in variants.items()}}
            if variants
            else {}
        ),
    }


def run_variant(cfg: RunConfig, overrides: dict) -> dict:
    """A second stage with ``overrides``' ``heads_*`` keys from the first stage that :func:`run_faceptor` trained for
    ``cfg``, in a folder of its own; its seconds, results, parameters and second-stage options."""
    from faceptor_core.train.engine import Trainer
    from faceptor_tasks.synthfaces.demo import fit_stage, heads_config, remove_render_cache

    heads = heads_options(overrides)
    out = Path(cfg.output_dir)
    stage2 = heads_config(cfg, heads).model_copy(update={"output_dir": str(out / "variant")})
    t0 = time.perf_counter()
    try:
        trainer = Trainer(stage2, overwrite=True)
        results = fit_stage(trainer)
    finally:
        remove_render_cache(out)  # the first stage's tasks' cache, which the variant's tasks share
    shutil.rmtree(out / "variant", ignore_errors=True)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "parameters": trainer.model.num_parameters(),
        "results": results,
        **_heads_record(heads),
    }


def _child(job_json: str, workers: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    job = json.loads(job_json)
    if job["kind"] == "faceptor":
        with tempfile.TemporaryDirectory() as tmp:
            rec = run_faceptor(job, Path(tmp) / "run", workers)
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_specialist import train_specialist

        rec = train_specialist(
            job["task"],
            job["images"],
            job.get("batch", 32),
            job.get("lr", 1e-3),
            job.get("seed", 0),
            "cuda" if torch.cuda.is_available() else "cpu",
            workers,
            arch=job.get("arch", "resnet18"),
            head_images=job.get("head_images", 0),
            head_lr=job.get("head_lr"),
            eval_limit=job.get("eval_limit", 500),
        )
    print("RESULT " + json.dumps({"job": job, **rec}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs")
    ap.add_argument("results")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job (2 with --parallel 1 times a demo)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.workers, args.threads)
        return
    jobs = json.loads(Path(args.jobs).read_text())
    start = time.monotonic()

    def one(job: dict) -> str:
        cmd = [sys.executable, __file__, "-", "-", "--workers", str(args.workers), "--threads", str(args.threads)]
        cmd += ["--child", json.dumps(job)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        print(f"[{_clock(start)}] started {job.get('name')}", flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            return json.dumps({"job": job, "error": p.stderr[-2000:]})
        return lines[-1][len("RESULT ") :]

    # each record is written as its job ends: one finished early is neither held back behind a slower one nor lost
    # when the sweep is stopped before the rest end
    with ThreadPoolExecutor(args.parallel) as pool, open(args.results, "a") as fh:
        for done, future in enumerate(as_completed([pool.submit(one, job) for job in jobs]), 1):
            line = future.result()
            fh.write(line + "\n")
            fh.flush()
            rec = json.loads(line)
            summary = "ERROR" if "error" in rec else json.dumps(rec.get("results", rec.get("metrics")))[:400]
            print(f"[{_clock(start)}] {done}/{len(jobs)} done: {rec['job'].get('name')} {summary}", flush=True)


def _clock(start: float) -> str:
    """Minutes and seconds since ``start`` (``time.monotonic()``)."""
    minutes, seconds = divmod(int(time.monotonic() - start), 60)
    return f"{minutes}:{seconds:02d}"


if __name__ == "__main__":
    main()
