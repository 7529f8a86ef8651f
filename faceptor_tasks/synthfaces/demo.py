"""``faceptor demo``: train a small Faceptor on every SynthFaces task on the CPU and write a report."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from faceptor_core.errors import RunDirectoryError
from faceptor_core.evaluate import higher_is_better
from faceptor_core.registry import default_registry
from faceptor_core.train.config import RunConfig
from faceptor_core.train.engine import Trainer

DEMO_TASKS = ("synth_landmarks", "synth_parsing", "synth_age", "synth_expression", "synth_attributes", "synth_identity")
#: Images per task per step (identity: 4 x; see :func:`demo_batch_size`).
BATCH = 8
#: Type weights that bring the tasks' losses to one scale (age's L1 is in years, CosFace's and the attributes'
#: sums are tens, landmark distances are fractions of the image). Equal weights stall landmarks (NME 0.30 vs
#: 0.08 at 800 steps, measured in the learning sweep, docs/results.md).
TYPE_WEIGHTS = {
    # 10 -> 30: NME 0.097 / 0.099 -> 0.084 / 0.083 over 2 seeds; 30 -> 40 since the image-level tasks train on the crop
    # and flip alone (they take more of the encoder): 0.091 / 0.092 -> 0.088 / 0.087 (docs/results.md)
    "landmarks": 40.0,
    "parsing": 1.0,
    "age": 0.05,
    "expression": 1.0,
    "attributes": 0.1,
    "recognition": 0.05,
}
#: The CPU preset (docs/results.md, "Why the demo learned nothing"): ViT-T/16 with a convolutional stem and 6
#: blocks. From scratch, the plain patch-embedding ViT leaves age, identity and the attributes at their
#: trivial answers at this budget; the conv stem learns them (400 steps of 8 images per task: age MAE 24 -> 13.5,
#: verification 0.55 -> 0.73), and 6 blocks score as 12 do while costing half. The stem
#: skip hands the pixel decoder the stem's 28 x 28 map (parsing F1 0.14 -> 0.18). The dense tasks' output priors
#: start them at the mean shape and the majority map (2 seeds: landmarks 0.115 -> 0.100, parsing 0.18 -> 0.37);
#: on the attribute tasks the same priors held age and the attributes at their trivial answers, so they are off
#: (docs/results.md).
DEMO_MODEL = {
    "encoder": "vit_t16",
    "stem": "conv",
    "depth": 6,
    "input_size": 112,
    "drop_path_rate": 0.05,
    "decoder": {
        "hidden_dim": 128,
        "num_heads": 4,
        "ffn_dim": 512,
        "num_layers": 3,
        "stem_skip": True,
        "output_prior": ("dense",),
    },
}
#: Steps that fit the budgets on 2 cores (2.0-2.4 s a step when idle): 10 minutes for the demo with about a minute to
#: spare, 2 for ``--quick``, each with the baselines fitted first (for the output priors) and scored at the end.
DEFAULT_STEPS, QUICK_STEPS = 220, 32


def demo_batch_size(task: str) -> int:
    """Images of ``task`` per demo step. Identity takes 4 x BATCH: verification gains most from more images (2 seeds:
    0.60 / 0.68 with 16, 0.84 / 0.84 with 32, the other tasks unchanged; docs/results.md). The 16 extra images cost
    about 0.3 s a step on 2 cores, which is why the demo runs 220 steps instead of 300."""
    return BATCH * (4 if task == "synth_identity" else 1)


def demo_config(
    out: Path, quick: bool = False, steps: int | None = None, tasks: Sequence[str] = DEMO_TASKS
) -> RunConfig:
    """The demo's run: CPU preset (conv-stem ViT-T/16, 6 blocks, stem skip), 112 px, a small decoder, every
    SynthFaces task (or the subset ``tasks``, with the type weights of their families only)."""
    steps = steps or (QUICK_STEPS if quick else DEFAULT_STEPS)
    eval_limit = 64 if quick else 300
    baseline_limit = 200 if quick else 300
    families = {default_registry().get_task(t).family for t in tasks}
    return RunConfig.model_validate(
        {
            "output_dir": str(out),
            "seed": 0,
            "model": DEMO_MODEL,
            "tasks": [{"name": t, "batch_size": demo_batch_size(t), "eval_limit": eval_limit} for t in tasks],
            "type_weights": {f: w for f, w in TYPE_WEIGHTS.items() if f in families},
            "baseline_limit": baseline_limit,
            # measured with the conv stem: 2e-4 leaves age at its trivial answer; 5e-4 and 1e-3 learn it
            "optimizer": {"lr": 5e-4, "weight_decay": 0.05, "head_lr_multiplier": 2.0},
            "schedule": {"steps": steps, "warmup_steps": max(1, steps // 20), "warmup_start_lr": 1e-6},
            "eval_every": steps,
            "checkpoint_every": steps if quick else 500,
            "log_every": 5,
            "num_workers": 1,
        }
    )


def _loss_series(log: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if "loss" not in rec:
            continue
        for key, value in rec.items():
            if key == "loss" or key.startswith("loss/"):
                series.setdefault(key.removeprefix("loss/"), []).append((rec["step"], value))
    return series


def write_report(trainer: Trainer, results: dict, out: Path, seconds: float) -> Path:
    """Metrics table (Markdown + JSON), loss curves and a sheet of test predictions."""
    from faceptor_core.viz import contact_sheet, plot_curves, prediction_card

    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "metrics.json").write_text(json.dumps(results, indent=2))
    model = trainer.model
    lines = [
        "# Faceptor demo on SynthFaces",
        "",
        f"Model: Faceptor, encoder {model.config.encoder.name}, {model.num_parameters() / 1e6:.2f}M parameters, "
        f"{trainer.step} steps in {seconds / 60:.1f} min on {torch.get_num_threads()} CPU threads.",
        "SynthFaces is a smoke dataset: these scores say the machinery works, not how a model does on real faces.",
        "",
        "Each metric stands beside the trivial answer (no model: the training split's mean shape, per-pixel",
        "majority map, mean age, majority class, per-attribute majority; chance for verification), scored on the",
        "same test items with the same metric.",
        "",
        "| task | metric | model | trivial answer | beats it? |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task, metrics in results.items():
        spec = trainer.specs[task]
        for k, v in metrics.items():
            if k.startswith(("baseline/", "acc_")):  # per-attribute accuracies: in metrics.json
                continue
            b = metrics.get(f"baseline/{k}")
            higher = higher_is_better(spec, k, trainer.metric_meta.get(task))  # the metric's meta says
            better = "-" if b is None or higher is None else ("yes" if (v > b if higher else v < b) else "**no**")
            lines.append(f"| {task} | {k} | {v:.4f} | {'-' if b is None else f'{b:.4f}'} | {better} |")
    answers = {t: ev.baseline_answer for t, ev in trainer.baselines.items() if ev.baseline_answer}
    if answers:
        lines += ["", "Trivial answers: " + "; ".join(f"{t}: {a}" for t, a in answers.items()) + "."]
    lines += ["", "![loss curves](loss_curves.png)", "", "![predictions](predictions.png)", ""]
    (report / "metrics.md").write_text("\n".join(lines))
    plot_curves(_loss_series(out / "log.jsonl"), title="training losses (log scale)").save(report / "loss_curves.png")
    reg = default_registry()
    spec = reg.get_task("synth_landmarks")
    ds = spec.dataset(None, "test", transform=None)
    images = np.stack([ds[i]["image"] for i in range(8)])  # predict() works in these images' own geometry
    preds = model.predict(images, [t for t in model.task_names if model.tasks[t].head_type != "identity"])
    cards = [prediction_card(images[i], preds, index=i, scale=2) for i in range(len(images))]
    contact_sheet(cards, columns=4).save(report / "predictions.png")
    return report / "metrics.md"


def owned_by_demo(out: Path) -> bool:
    """``out`` is empty (or absent) or holds an earlier demo run (its config.json trains the demo's tasks)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return True
    try:
        tasks = tuple(t["name"] for t in json.loads((out / "config.json").read_text())["tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return tasks == DEMO_TASKS


def run_demo(out: Path, quick: bool = False, steps: int | None = None) -> Path:
    missing = [t for t in DEMO_TASKS if t not in default_registry().task_names()]
    if missing:
        raise RuntimeError(f"the demo needs the SynthFaces tasks {missing}; is faceptor_tasks installed?")
    cfg = demo_config(out, quick, steps)
    if not owned_by_demo(out):
        raise RunDirectoryError(
            f"{out}: not empty and not the output of an earlier `faceptor demo`; the demo only "
            "replaces its own output. Choose another --out"
        )
    trainer = Trainer(cfg, overwrite=True)  # the demo owns its folder: each run starts over
    t0 = time.perf_counter()
    results = trainer.fit()
    seconds = time.perf_counter() - t0
    for task, metrics in results.items():
        print(f"{task}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return write_report(trainer, results, out, seconds)
