"""The paper's claims, measured on SynthFaces with the CPU preset, one seed per call. Writes
benchmarks/results/claims/<name>_s<seed>.json; ``report`` renders docs/paper_claims.md from every seed found,
each metric beside its trivial answer fitted on the same training split.

    python benchmarks/experiments.py multitask --seed 0   # Faceptor multi-task vs one model per task (demo's steps)
    python benchmarks/experiments.py auxiliary --seed 0   # age from 500 labels: alone, + 3 or + 5 other tasks
    python benchmarks/experiments.py stage2 --seed 0      # Layer-Attention (Stage 2) vs Stage 1, on age
    python benchmarks/experiments.py prompt --seed 0      # a new task by prompt tuning vs full fine-tuning
    python benchmarks/experiments.py all --seed 0         # the four, in order
    python benchmarks/experiments.py report

Every run uses the demo's model and recipe (conv-stem ViT-T/16, 112 px, output priors) with the given seed;
"equal budget" means the same number of steps and images per task. Stage 2 starts from the multitask run's
model; prompt tuning adds a task (parsing by default) to the auxiliary run's model, which never saw it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import faceptor_core
from faceptor_core.train import RunConfig, Trainer
from faceptor_tasks.synthfaces.demo import DEMO_TASKS, PRESETS, TYPE_WEIGHTS, demo_config

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "claims"
RUNS = HERE / "runs"
EVAL_LIMIT = 300
#: Steps per experiment: the demo's budget for the runs from scratch (the records on disk were measured at 240).
DEMO_STEPS = PRESETS["standard"].steps
DEFAULT_STEPS = {"multitask": DEMO_STEPS, "auxiliary": DEMO_STEPS, "stage2": 150, "prompt": 200}


def config(out: Path, tasks: list[str], steps: int, seed: int, **kw) -> RunConfig:
    base = demo_config(out, steps=steps, tasks=tasks).model_dump()
    base["seed"] = seed
    for entry in base["tasks"]:
        entry["eval_limit"] = EVAL_LIMIT
    base["progress"] = False
    base["checkpoint_every"] = steps
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return RunConfig.model_validate(base)


def train(cfg: RunConfig) -> tuple[Trainer, dict, float]:
    trainer = Trainer(cfg, overwrite=True)  # each experiment owns its run folder and starts over
    t0 = time.perf_counter()
    results = trainer.fit()
    return trainer, results, time.perf_counter() - t0


def primary(task: str, metrics: dict) -> float:
    return metrics[faceptor_core.get_task(task).primary_metric]


def scored(task: str, metrics: dict) -> dict[str, float]:
    """The task's primary metric and, beside it, its trivial answer's on the same split."""
    key = faceptor_core.get_task(task).primary_metric
    return {"metric": metrics[key], "baseline": metrics[f"baseline/{key}"]}


def inference_ms(model, tasks: list[str], batch: int = 8, repeats: int = 3) -> float:
    x = torch.rand(batch, 3, 112, 112)
    model.eval()
    with torch.inference_mode():
        model(x, tasks)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, tasks)
            best = min(best, time.perf_counter() - t0)
    return best * 1000


def save(name: str, seed: int, record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"seed": seed, "type_weights": TYPE_WEIGHTS, **record}
    (RESULTS / f"{name}_s{seed}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


def exp_multitask(steps: int, seed: int) -> None:
    tasks = list(DEMO_TASKS)
    runs = RUNS / f"s{seed}"
    multi, res, secs = train(config(runs / "multitask", tasks, steps, seed))
    record = {
        "steps": steps,
        "multi": {
            "metrics": {t: scored(t, res[t]) for t in tasks},
            "seconds": secs,
            "parameters": multi.model.num_parameters(),
            "inference_ms_all_tasks": inference_ms(multi.model, tasks),
        },
        "single": {},
    }
    single_params, single_ms = 0, 0.0
    for t in tasks:
        tr, r, s = train(config(runs / f"single_{t}", [t], steps, seed))
        single_params += tr.model.num_parameters()
        single_ms += inference_ms(tr.model, [t])
        record["single"][t] = {**scored(t, r[t]), "seconds": s}
    record["single_total"] = {
        "parameters": single_params,
        "inference_ms_all_tasks": single_ms,
        "seconds": sum(v["seconds"] for v in record["single"].values()),
    }
    save("multitask", seed, record)


def exp_auxiliary(steps: int, seed: int, labelled: int = 500) -> None:
    """Age from ``labelled`` images alone, with three auxiliary tasks, and with all five others. Variants already in
    this seed's results file (same steps and labels) are kept, not trained again."""
    three = ["synth_expression", "synth_attributes", "synth_landmarks"]
    five = [t for t in DEMO_TASKS if t != "synth_age"]
    variants = {"age_only": [], "age_with_auxiliary": three, "age_with_all_auxiliary": five}
    path = RESULTS / f"auxiliary_s{seed}.json"
    out: dict = {"steps": steps, "labelled_age_images": labelled}
    if path.is_file():
        old = json.loads(path.read_text())
        if (old["steps"], old["labelled_age_images"]) == (steps, labelled):
            out = {k: v for k, v in old.items() if k != "seed"}
    for name, aux in variants.items():
        if name in out:
            continue
        tasks = ["synth_age", *aux]
        cfg = config(RUNS / f"s{seed}" / f"aux_{name}", tasks, steps, seed, main_task="synth_age")
        cfg.tasks[0].train_limit = labelled
        _, res, secs = train(cfg)
        out[name] = {**scored("synth_age", res["synth_age"]), "seconds": secs, "tasks": tasks}
    save("auxiliary", seed, out)


def _base(seed: int, run: str, experiment: str) -> Path:
    path = RUNS / f"s{seed}" / run / "checkpoints" / "last"
    if not path.is_dir():
        raise SystemExit(f"run `experiments.py {experiment} --seed {seed}` first: its model is the starting point")
    return path


def stage2_train_modes(depth: int) -> dict[str, dict]:
    """The ``train`` sections of Stage 1 (the task's queries only) and of Stage 2 as the paper: every encoder layer
    of a ``depth``-block encoder feeds the decoder through Layer-Attention (the last already does)."""
    return {
        "stage1_queries_only": {"mode": "prompt"},
        "stage2_layer_attention": {"mode": "layer_attention", "add_memory_layers": list(range(depth - 1))},
    }


def exp_stage2(steps: int, seed: int, target: str = "synth_age") -> None:
    stage1 = _base(seed, "multitask", "multitask")
    base = faceptor_core.load(stage1)
    out: dict = {"steps": steps, "task": target}
    common = {"init_from": str(stage1), "optimizer": {"lr": 1e-3, "head_lr_multiplier": 1.0}}
    for name, train_cfg in stage2_train_modes(base.config.encoder.depth).items():
        tr, res, secs = train(
            config(RUNS / f"s{seed}" / f"stage2_{name}", [target], steps, seed, train=train_cfg, **common)
        )
        entry = {**scored(target, res[target]), "trainable_parameters": tr.num_trainable_parameters(), "seconds": secs}
        if name.startswith("stage2"):
            images = torch.stack(
                [
                    torch.from_numpy(tr.specs[target].dataset(None, "test")[i]["image"]).permute(2, 0, 1)
                    for i in range(32)
                ]
            )
            entry["layer_preference"] = {str(k): v for k, v in tr.model.layer_preference(images, target).items()}
        out[name] = entry
    from faceptor_core.evaluate import evaluate_task

    out["stage1_as_trained"] = primary(target, evaluate_task(base, faceptor_core.get_task(target), limit=EVAL_LIMIT))
    save("stage2", seed, out)


def exp_prompt(steps: int, seed: int, new_task: str = "synth_parsing") -> None:
    """``new_task`` joins the auxiliary run's model (age, expression, attributes, landmarks), which never saw it."""
    base = _base(seed, "aux_age_with_auxiliary", "auxiliary")
    out: dict = {"steps": steps, "task": new_task, "base_tasks": list(faceptor_core.load(base).tasks)}
    runs = (
        ("prompt_tuning", {"train": {"mode": "prompt"}, "optimizer": {"lr": 1e-2, "head_lr_multiplier": 1.0}}),
        ("full_fine_tuning", {"train": {"mode": "full"}, "optimizer": {"lr": 5e-4}}),
    )
    for name, kw in runs:
        cfg = config(RUNS / f"s{seed}" / f"prompt_{name}", [new_task], steps, seed, init_from=str(base), **kw)
        tr = Trainer(cfg, overwrite=True)
        if "untrained" not in out:
            out["untrained"] = primary(new_task, tr.evaluate()[new_task])
        t0 = time.perf_counter()
        res = tr.fit()
        out[name] = {
            **scored(new_task, res[new_task]),
            "seconds": time.perf_counter() - t0,
            "trainable_parameters": tr.num_trainable_parameters(),
            "parameters": tr.model.num_parameters(),
        }
    save("prompt", seed, out)


EXPERIMENTS = {"multitask": exp_multitask, "auxiliary": exp_auxiliary, "stage2": exp_stage2, "prompt": exp_prompt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=[*EXPERIMENTS, "all", "report"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, help="training steps (default: each experiment's own, see DEFAULT_STEPS)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.experiment == "report":
        from report_results import render

        render(RESULTS, HERE.parent / "docs" / "paper_claims.md")
        return
    for name in EXPERIMENTS if args.experiment == "all" else [args.experiment]:
        EXPERIMENTS[name](args.steps or DEFAULT_STEPS[name], args.seed)


if __name__ == "__main__":
    main()
