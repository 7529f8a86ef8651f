"""The paper's claims, measured on SynthFaces with the CPU preset. Writes benchmarks/results/<name>.json;
``python benchmarks/experiments.py report`` renders docs/results.md from them.

    python benchmarks/experiments.py multitask --steps 300   # Faceptor multi-task vs one model per task
    python benchmarks/experiments.py auxiliary --steps 300   # age from 500 labels, with / without auxiliaries
    python benchmarks/experiments.py stage2 --steps 150      # Layer-Attention (Stage 2) vs Stage 1
    python benchmarks/experiments.py prompt --steps 200      # prompt tuning vs full fine-tuning, new task
    python benchmarks/experiments.py report

Every run uses the demo's model (ViT-T/16, 112 px, 3-layer decoder) and the same seed; "equal budget" means
the same number of steps and images per task.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import faceptor_core
from faceptor_core.train import RunConfig, Trainer
from faceptor_tasks.synthfaces.demo import DEMO_TASKS, demo_batch_size, demo_config

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = HERE / "runs"
EVAL_LIMIT = 300


def config(out: Path, tasks: list[str], steps: int, **kw) -> RunConfig:
    base = demo_config(out, quick=False, steps=steps).model_dump()
    base["tasks"] = [{"name": t, "batch_size": demo_batch_size(t), "eval_limit": EVAL_LIMIT} for t in tasks]
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


def save(name: str, record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


def exp_multitask(steps: int) -> None:
    tasks = list(DEMO_TASKS)
    multi, res, secs = train(config(RUNS / "multitask", tasks, steps))
    record = {
        "steps": steps,
        "multi": {
            "metrics": {t: primary(t, res[t]) for t in tasks},
            "seconds": secs,
            "parameters": multi.model.num_parameters(),
            "inference_ms_all_tasks": inference_ms(multi.model, tasks),
        },
        "single": {},
    }
    single_params, single_ms = 0, 0.0
    for t in tasks:
        tr, r, s = train(config(RUNS / f"single_{t}", [t], steps))
        single_params += tr.model.num_parameters()
        single_ms += inference_ms(tr.model, [t])
        record["single"][t] = {"metric": primary(t, r[t]), "seconds": s}
    record["single_total"] = {
        "parameters": single_params,
        "inference_ms_all_tasks": single_ms,
        "seconds": sum(v["seconds"] for v in record["single"].values()),
    }
    save("multitask", record)


def exp_auxiliary(steps: int, labelled: int = 500) -> None:
    aux = ["synth_expression", "synth_attributes", "synth_landmarks"]
    out = {"steps": steps, "labelled_age_images": labelled}
    for name, tasks in (("age_only", ["synth_age"]), ("age_with_auxiliary", ["synth_age", *aux])):
        cfg = config(RUNS / f"aux_{name}", tasks, steps, main_task="synth_age")
        cfg.tasks[0].train_limit = labelled
        _, res, secs = train(cfg)
        out[name] = {"mae": res["synth_age"]["mae"], "seconds": secs, "tasks": tasks}
    save("auxiliary", out)


def exp_stage2(steps: int, target: str = "synth_expression") -> None:
    stage1 = RUNS / "multitask" / "checkpoints" / "last"
    if not stage1.is_dir():
        raise SystemExit("run the multitask experiment first: its model is Stage 1")
    out = {"steps": steps, "task": target}
    common = {"init_from": str(stage1), "optimizer": {"lr": 1e-3, "head_lr_multiplier": 1.0}}
    for name, train_cfg in (
        ("stage1_queries_only", {"mode": "prompt"}),
        ("stage2_layer_attention", {"mode": "layer_attention", "add_memory_layers": [1, 3, 5, 7, 9]}),
    ):
        tr, res, secs = train(config(RUNS / f"stage2_{name}", [target], steps, train=train_cfg, **common))
        entry = {
            "metric": primary(target, res[target]),
            "trainable_parameters": tr.num_trainable_parameters(),
            "seconds": secs,
        }
        if name.startswith("stage2"):
            images = torch.stack(
                [
                    torch.from_numpy(tr.specs[target].dataset(None, "test")[i]["image"]).permute(2, 0, 1)
                    for i in range(32)
                ]
            )
            entry["layer_preference"] = {str(k): v for k, v in tr.model.layer_preference(images, target).items()}
        out[name] = entry
    base = faceptor_core.load(stage1)
    from faceptor_core.evaluate import evaluate_task

    out["stage1_as_trained"] = primary(target, evaluate_task(base, faceptor_core.get_task(target), limit=EVAL_LIMIT))
    save("stage2", out)


def exp_prompt(steps: int, new_task: str = "gaze_synth") -> None:
    stage1 = RUNS / "multitask" / "checkpoints" / "last"
    if not stage1.is_dir():
        raise SystemExit("run the multitask experiment first: its model is the base")
    out = {"steps": steps, "task": new_task}
    runs = (
        ("prompt_tuning", {"train": {"mode": "prompt"}, "optimizer": {"lr": 1e-2, "head_lr_multiplier": 1.0}}),
        ("full_fine_tuning", {"train": {"mode": "full"}, "optimizer": {"lr": 5e-4}}),
    )
    for name, kw in runs:
        cfg = config(RUNS / f"prompt_{name}", [new_task], steps, init_from=str(stage1), **kw)
        tr = Trainer(cfg, overwrite=True)
        if "untrained" not in out:
            out["untrained"] = primary(new_task, tr.evaluate()[new_task])
        t0 = time.perf_counter()
        res = tr.fit()
        out[name] = {
            "metric": primary(new_task, res[new_task]),
            "seconds": time.perf_counter() - t0,
            "trainable_parameters": tr.num_trainable_parameters(),
            "parameters": tr.model.num_parameters(),
        }
    save("prompt", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=["multitask", "auxiliary", "stage2", "prompt", "report"])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.experiment == "report":
        from report_results import render

        render(RESULTS, HERE.parent / "docs" / "results.md")
        return
    {"multitask": exp_multitask, "auxiliary": exp_auxiliary, "stage2": exp_stage2, "prompt": exp_prompt}[
        args.experiment
    ](args.steps)


if __name__ == "__main__":
    main()
