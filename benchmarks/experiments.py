"""The paper's claims, measured on SynthFaces with a demo preset, one seed per call. Writes
benchmarks/results/claims/<preset>/<name>_s<seed>.json; ``report`` renders docs/paper_claims.md from every preset
and seed found, each metric beside its trivial answer fitted on the same training split.

    python benchmarks/experiments.py multitask --seed 0   # Faceptor multi-task vs one model per task (demo's steps)
    python benchmarks/experiments.py stage2 --seed 0      # Layer-Attention (Stage 2) vs Stage 1, on age
    python benchmarks/experiments.py auxiliary --seed 0   # age from 500 labels: alone, + 3 or + 5 other tasks
    python benchmarks/experiments.py prompt --seed 0      # a new task by prompt tuning vs full fine-tuning
    python benchmarks/experiments.py all --seed 0         # the four, in this order
    python benchmarks/experiments.py report

Every run uses a demo preset's model, batches, type weights and recipe (``--preset``, default ``full``: the
budget at which every task learns; ``standard``: the 10-minute demo's) with the given seed; "equal budget" means
the same number of steps and images per task. Stage 2 starts from the multitask run's model; prompt tuning adds a
task (parsing by default) to the auxiliary run's model, which never saw it. ``multitask`` and ``auxiliary`` (the
long ones) keep what they finished when stopped part way: each finished model's scores are saved at once and not
trained again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import faceptor_core
from faceptor_core.durable import write_atomic
from faceptor_core.train import RunConfig, Trainer
from faceptor_tasks.synthfaces.demo import DEMO_TASKS, PRESETS, demo_config, without_pooled_heads

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "claims"
RUNS = HERE / "runs"
EVAL_LIMIT = 300
#: The presets the claims are measured with (``quick`` is too short for any task but the dense ones to learn).
CLAIM_PRESETS = ("full", "standard")
#: Steps of the experiments that do not train from scratch (those run their preset's steps).
FROM_MODEL_STEPS = {"stage2": 150, "prompt": 200}


def default_steps(experiment: str, preset: str) -> int:
    """Training steps of ``experiment``: the preset's for the runs from scratch, fixed for those from a model."""
    return FROM_MODEL_STEPS.get(experiment, PRESETS[preset].steps)


class Claims:
    """Where one preset and seed's runs and records live, and how their runs are configured."""

    def __init__(self, preset: str, seed: int) -> None:
        self.preset, self.seed = preset, seed
        self.results = RESULTS / preset
        self.runs = RUNS / preset / f"s{seed}"

    def config(self, out: str | Path, tasks: list[str], steps: int, **kw) -> RunConfig:
        """The preset's run on ``tasks`` in ``runs/<out>`` (at ``out`` when absolute), ``kw`` merged over its
        sections."""
        base = demo_config(self.runs / out, preset=self.preset, steps=steps, tasks=tasks).model_dump()
        base["seed"] = self.seed
        for entry in base["tasks"]:
            entry["eval_limit"] = EVAL_LIMIT
        base["progress"] = False
        base["checkpoint_every"] = steps
        if kw.get("train", {}).get("mode", "full") != "full":  # the preset's pooled heads train stage 1 only
            base["train"] = without_pooled_heads(base["train"])
        for key, value in kw.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return RunConfig.model_validate(base)

    def path(self, name: str) -> Path:
        return self.results / f"{name}_s{self.seed}.json"

    def recipe(self) -> dict:
        """The preset's model, train section, batches, type weights and precision as JSON values: a record resumes
        only under the same."""
        keys = {"model", "train", "batch_sizes", "type_weights", "precision"}
        return json.loads(PRESETS[self.preset].model_dump_json(include=keys))

    def resume(self, name: str, **same) -> dict:
        """What an earlier call saved for ``name`` when it ran with the same ``same`` settings and the same preset
        recipe (a preset that changed since starts over), else nothing."""
        path = self.path(name)
        if path.is_file():
            old = json.loads(path.read_text())
            if old.get("recipe") == self.recipe() and all(old.get(k) == v for k, v in same.items()):
                return {k: v for k, v in old.items() if k not in ("seed", "preset", "type_weights", "recipe")}
        return dict(same)

    def save(self, name: str, record: dict) -> None:
        record = {"seed": self.seed, "preset": self.preset, "recipe": self.recipe(), **record}
        write_atomic(self.path(name), json.dumps(record, indent=2).encode())

    def base(self, run: str, experiment: str) -> Path:
        path = self.runs / run / "checkpoints" / "last"
        if not path.is_dir():
            raise SystemExit(
                f"run `experiments.py {experiment} --preset {self.preset} --seed {self.seed}` first: its model is "
                "the starting point"
            )
        return path


def train(cfg: RunConfig) -> tuple[Trainer, dict, float]:
    trainer = Trainer(cfg, overwrite=True)  # each experiment owns its run folder and starts over
    t0 = time.perf_counter()
    results = trainer.fit()
    return trainer, results, time.perf_counter() - t0


def primary(task: str, metrics: dict) -> float:
    return metrics[faceptor_core.get_task(task).primary_metric]


def scored(task: str, metrics: dict) -> dict[str, float]:
    """The task's primary metric, its trivial answer's on the same split and, when the evaluation gave error bars, the
    standard error of the margin between them (``se``: what the report weighs a difference between two models
    against)."""
    key = faceptor_core.get_task(task).primary_metric
    out = {"metric": metrics[key], "baseline": metrics[f"baseline/{key}"]}
    if f"margin_se/{key}" in metrics:
        out["se"] = metrics[f"margin_se/{key}"]
    return out


def inference_ms(model, tasks: list[str], batch: int = 8, repeats: int = 3) -> float:
    size = max(model.tasks[t].input_size for t in tasks)  # the preset's input size (112 or 96 px)
    x = torch.rand(batch, 3, size, size)
    model.eval()
    with torch.inference_mode():
        model(x, tasks)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, tasks)
            best = min(best, time.perf_counter() - t0)
    return best * 1000


def exp_multitask(c: Claims, steps: int) -> None:
    tasks = list(DEMO_TASKS)
    record = c.resume("multitask", steps=steps)
    if "multi" not in record:
        multi, res, secs = train(c.config("multitask", tasks, steps))
        record["multi"] = {
            "metrics": {t: scored(t, res[t]) for t in tasks},
            "seconds": secs,
            "parameters": multi.model.num_parameters(),
            "inference_ms_all_tasks": inference_ms(multi.model, tasks),
        }
        c.save("multitask", record)
    single = record.setdefault("single", {})
    for t in tasks:
        if t in single:
            continue
        tr, r, s = train(c.config(f"single_{t}", [t], steps))
        single[t] = {
            **scored(t, r[t]),
            "seconds": s,
            "parameters": tr.model.num_parameters(),
            "inference_ms": inference_ms(tr.model, [t]),
        }
        c.save("multitask", record)
    record["single_total"] = {
        "parameters": sum(v["parameters"] for v in single.values()),
        "inference_ms_all_tasks": sum(v["inference_ms"] for v in single.values()),
        "seconds": sum(v["seconds"] for v in single.values()),
    }
    c.save("multitask", record)


def exp_auxiliary(c: Claims, steps: int, labelled: int = 500) -> None:
    """Age from ``labelled`` images alone, with three auxiliary tasks, and with all five others."""
    three = ["synth_expression", "synth_attributes", "synth_landmarks"]
    five = [t for t in DEMO_TASKS if t != "synth_age"]
    variants = {"age_only": [], "age_with_auxiliary": three, "age_with_all_auxiliary": five}
    out = c.resume("auxiliary", steps=steps, labelled_age_images=labelled)
    for name, aux in variants.items():
        if name in out:
            continue
        tasks = ["synth_age", *aux]
        cfg = c.config(f"aux_{name}", tasks, steps, main_task="synth_age")
        cfg.tasks[0].train_limit = labelled
        _, res, secs = train(cfg)
        out[name] = {**scored("synth_age", res["synth_age"]), "seconds": secs, "tasks": tasks}
        c.save("auxiliary", out)


def stage2_train_modes(depth: int) -> dict[str, dict]:
    """The ``train`` sections of Stage 1 (the task's queries only) and of Stage 2 as the paper: every encoder layer
    of a ``depth``-block encoder feeds the decoder through Layer-Attention (the last already does)."""
    return {
        "stage1_queries_only": {"mode": "prompt"},
        "stage2_layer_attention": {"mode": "layer_attention", "add_memory_layers": list(range(depth - 1))},
    }


def exp_stage2(c: Claims, steps: int, target: str = "synth_age") -> None:
    stage1 = c.base("multitask", "multitask")
    base = faceptor_core.load(stage1)
    out: dict = {"steps": steps, "task": target}
    common = {"init_from": str(stage1), "optimizer": {"lr": 1e-3, "head_lr_multiplier": 1.0}}
    for name, train_cfg in stage2_train_modes(base.config.encoder.depth).items():
        tr, res, secs = train(c.config(f"stage2_{name}", [target], steps, train=train_cfg, **common))
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
    c.save("stage2", out)


def exp_prompt(c: Claims, steps: int, new_task: str = "synth_parsing") -> None:
    """``new_task`` joins the auxiliary run's model (age, expression, attributes, landmarks), which never saw it."""
    base = c.base("aux_age_with_auxiliary", "auxiliary")
    out: dict = {"steps": steps, "task": new_task, "base_tasks": list(faceptor_core.load(base).tasks)}
    runs = (
        ("prompt_tuning", {"train": {"mode": "prompt"}, "optimizer": {"lr": 1e-2, "head_lr_multiplier": 1.0}}),
        ("full_fine_tuning", {"train": {"mode": "full"}, "optimizer": {"lr": 5e-4}}),
    )
    for name, kw in runs:
        tr = Trainer(c.config(f"prompt_{name}", [new_task], steps, init_from=str(base), **kw), overwrite=True)
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
    c.save("prompt", out)


EXPERIMENTS = {"multitask": exp_multitask, "stage2": exp_stage2, "auxiliary": exp_auxiliary, "prompt": exp_prompt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=[*EXPERIMENTS, "all", "report"])
    ap.add_argument("--preset", choices=CLAIM_PRESETS, default="full", help="the demo preset to measure with")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, help="training steps (default: each experiment's own, see default_steps)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when two seeds run side by side)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.experiment == "report":
        from report_results import render

        render(RESULTS, HERE.parent / "docs" / "paper_claims.md")
        return
    claims = Claims(args.preset, args.seed)
    for name in EXPERIMENTS if args.experiment == "all" else [args.experiment]:
        EXPERIMENTS[name](claims, args.steps or default_steps(name, args.preset))


if __name__ == "__main__":
    main()
