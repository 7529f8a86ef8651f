"""``faceptor demo``: train a small Faceptor on every SynthFaces task on the CPU and write a report."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from faceptor_core.errors import RunDirectoryError
from faceptor_core.evaluate import metric_verdict
from faceptor_core.registry import default_registry
from faceptor_core.spec import TaskSpec
from faceptor_core.train.config import RunConfig
from faceptor_core.train.engine import RUN_CONFIG, Trainer
from faceptor_core.train.precision import Precision, precision_note

#: The demo's SynthFaces tasks keep their painted images here, in the output folder (every task's ``root``): the two
#: stages draw 78,000 training images and paint about 20,000 (docs/synthfaces.md, "Render cache"): 5% off the demo's
#: time. About 1 GB while the demo trains; deleted when it ends.
RENDER_CACHE = "synthfaces-cache"
DEMO_TASKS = ("synth_landmarks", "synth_parsing", "synth_age", "synth_expression", "synth_attributes", "synth_identity")
#: Images per task per step, unless a preset says otherwise (:data:`PRESETS`).
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
#: The ``--quick`` preset's encoder (docs/results.md, "Why the demo learned nothing"): ViT-T/16 with a convolutional
#: stem and 6 blocks. From scratch, the plain patch-embedding ViT leaves age, identity and the attributes at their
#: trivial answers at this budget; the conv stem learns them (400 steps of 8 images per task: age MAE 24 -> 13.5,
#: verification 0.55 -> 0.73), and 6 blocks score as 12 do while costing half. The stem
#: skip hands the pixel decoder the stem's 28 x 28 map (parsing F1 0.14 -> 0.18). The dense tasks' output priors
#: start them at the mean shape and the majority map (2 seeds: landmarks 0.115 -> 0.100, parsing 0.18 -> 0.37);
#: on the attribute tasks the same priors held age and the attributes at their trivial answers, so they are off
#: (docs/results.md). It was the standard demo's encoder until 2026-12-01.
CONV_MODEL = {
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
#: The standard and ``--full`` presets' encoder: ResNet-18's first three stages at width 48 as the patch embedding,
#: 2 transformer blocks started near the identity (LayerScale 1e-5). Expression needs this front end and 32 images a
#: step; with the conv stem, or with 8 images a step, it stays at the majority class (docs/results.md). The pixel
#: decoder takes the stem's stride-8 and stride-2 maps and gives the dense maps at stride 2 (``pixel_fpn``,
#: ``pixel_stride`` 2: parsing F1 0.644-0.662 -> 0.768-0.773 in float32, 2 seeds, docs/results.md).
RESNET_MODEL = {
    **CONV_MODEL,
    "stem": "resnet",
    "stem_width": 48,
    "layer_scale": 1e-5,
    "depth": 2,
    "decoder": {**CONV_MODEL["decoder"], "pixel_fpn": True, "pixel_stride": 2},
}


class HeadsStage(BaseModel):
    """The demo's stage 2: the decoders trained on the frozen encoder (``train.mode: heads``)."""

    model_config = ConfigDict(frozen=True)

    steps: int = Field(default=0, ge=0, description="steps of stage 2; 0: one stage")
    lr: float | None = Field(
        default=None,
        gt=0,
        description="stage 2's base learning rate (the decoders train at head_lr_multiplier times it); None: stage 1's",
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description="stage 2's train section besides its mode (heads), e.g. add_grid_readout (left out of a run "
        "without an attribute-type task)",
    )
    type_weights: dict[str, float] = Field(
        default_factory=dict, description="stage 2's type weights where they differ from stage 1's (type_weights)"
    )


class DemoPreset(BaseModel):
    """One way to run the demo: how long, which model, how many images of each task a step."""

    model_config = ConfigDict(frozen=True)

    steps: int = Field(gt=0)
    minutes: str = Field(description="wall time on 2 idle CPU cores with bf16 instructions, for the help text")
    minutes_fp32: str = Field(
        default="",
        description="wall time in float32 on 2 AVX2 cores without bf16, measured or scaled from a measurement by a "
        "measured step-time ratio, for the help text",
    )
    model: dict[str, Any]
    train: dict[str, Any] = Field(
        default_factory=dict, description="stage 1's train section (RunConfig.train); stage 2 trains in mode heads"
    )
    batch_sizes: dict[str, int] = Field(default_factory=dict, description="images a step where not BATCH")
    type_weights: dict[str, float] = Field(default_factory=lambda: dict(TYPE_WEIGHTS))
    precision: Precision = Field(default="auto", description="training forward pass (RunConfig.precision)")
    heads: HeadsStage = Field(default_factory=HeadsStage, description="stage 2 (none by default)")
    eval_limit: int = Field(default=300, gt=0, description="test items scored per task")
    baseline_limit: int = Field(default=300, gt=0, description="training items the trivial answers are fitted on")

    def batch_size(self, task: str) -> int:
        """Images of ``task`` per step."""
        return self.batch_sizes.get(task, BATCH)


#: Identity takes 4 x BATCH with the conv stem: verification gains most from more images (2 seeds: 0.60 / 0.68 with
#: 16, 0.84 / 0.84 with 32, the other tasks unchanged; docs/results.md). It costs about 0.3 s a step on 2 cores.
_IDENTITY = {"synth_identity": 4 * BATCH}
#: Expression at 32 images a step and weight 3 (at 8 images, or weight 1, it stays at the majority class), the
#: attributes at 16 and weight 0.3 (0.824 -> 0.834): what the ResNet stem needs to read them (docs/results.md).
_RESNET_BATCHES = {"synth_expression": 4 * BATCH, "synth_attributes": 2 * BATCH}
_RESNET_WEIGHTS = {**TYPE_WEIGHTS, "expression": 3.0, "attributes": 0.3}
# Pooled heads supervise the encoder on the attribute-type tasks while their queries send it a tenth of their gradient
# through the decoder (docs/results.md, "Pooled heads with identity at 32 a step"). The attributes' head at twice its
# share: 5 seeds, verification 0.90 against 0.81, attributes +0.005, expression 0.45 against 0.48 (docs/results.md,
# "The attributes' gap"). Each pooled head reads the tokens by 4 attention queries beside the mean token: 6 paired
# seeds, attributes +0.006, expression +0.011, landmarks, parsing and age better (docs/results.md, "The mean token
# beside the attention readout").
POOLED_MODEL = {**RESNET_MODEL, "decoder": {**RESNET_MODEL["decoder"], "memory_grad": 0.1}}
POOLED_TRAIN = {
    "pooled_heads": {"synth_age": 1.0, "synth_expression": 1.0, "synth_attributes": 2.0},
    "pooled_head_queries": 4,
    "pooled_head_mean": True,
}
#: ``standard`` (``faceptor demo``): 300 steps of the ResNet stem at 112 px with identity at 32 images and pooled heads
#: (attention beside the mean token) on the attribute-type tasks, the forward pass in bf16 where the CPU has bf16
#: instructions, then stage 2: 450 steps of everything but the frozen encoder at twice the rate (``train.mode:
#: heads``), the attributes read by a 3 x 3 grid readout as well at 3 times their weight. Over 6 seeds expression is
#: read at the like-for-like ResNet-18 anchor's level (0.46 against 0.45-0.48), verification above it (0.93 against
#: 0.85), the attributes level with it (0.871 against 0.868; docs/results.md).
#: About 8:50 end to end on 2 such cores with the render cache, 11:38-12:49 on a much slower host; with AVX512-BF16 and
#: no AMX, 7:04 on a Zen 5 host and 11:01-14:13 on older ones (13:36 and, with the grid readout, 11:01 on two Zen 4
#: hosts; ``minutes_fp32`` in float32).
#: ``quick``: 2 minutes, the conv stem, one stage. ``full`` (``--full``): 400 steps with identity at 32, no pooled
#: heads (with them it trades verification for expression), and stage 2 without the grid readout or its weight.
PRESETS: dict[str, DemoPreset] = {
    # 64 steps: landmarks and parsing beat their trivial answers beyond two standard errors and a twentieth of the
    # way to perfect on 2 seeds (32 steps: "barely", parsing F1 0.1245 against 0.1223); 1:36 and 1:42 in float32 on 2
    # AVX2 cores
    "quick": DemoPreset(
        steps=64, minutes="under 2", model=CONV_MODEL, batch_sizes=_IDENTITY, eval_limit=64, baseline_limit=200
    ),
    "standard": DemoPreset(
        steps=300,
        # 8:29 measured for the recipe without pooled heads and with identity at 16, times 1.093: the two recipes
        # timed one after the other on a slower host (13:52 against 12:41; demo_bf16_amx_seed0_pooled.json); 10:21
        # measured on a host about 10% slower than the 8:29 run's (demo_bf16_amx_seed0_pooled_attr2.json); the render
        # cache takes 5% off (12:14 -> 11:38 on a host 1.5 times as slow; demo_bf16_amx_seed0_render_cache.json):
        # about 8:50 on the 8:29 run's host; 14:13 and, with the attention readout, 11:52 measured on AVX512-BF16
        # without AMX on two days (demo_bf16_avx512bf16_seed0.json, demo_bf16_avx512bf16_seed0_attention_mean.json);
        # 7:04 on a Zen 5 host with AVX512-BF16, the same results to the last digit (demo_bf16_zen5_seed0.json); 13:36
        # on a Zen 4 host with AVX512-BF16, the same results again (demo_bf16_zen4_seed0.json)
        minutes="7-14",
        # 21:19 measured on a Zen 2 host (demo_fp32_zen2_seed0.json); its fixed-batch step is 1.44-1.63 times as fast
        # as that of the AVX2 host that took 36:02 for the previous recipe, whose step costs the same: about 31-35 there
        minutes_fp32="21-35",
        model=POOLED_MODEL,
        train=POOLED_TRAIN,
        batch_sizes={**_RESNET_BATCHES, **_IDENTITY},
        type_weights=_RESNET_WEIGHTS,
        # stage 2 reads the attributes through a 3 x 3 grid readout beside their queries, at 3 times their stage-1
        # weight: 6 fresh paired seeds, attributes 0.866 -> 0.871 (+0.004 +- 0.0015, 5 better, 1 equal), no task worse
        # beyond its error (docs/results.md, "The grid readout and a larger share together")
        heads=HeadsStage(steps=450, lr=1e-3, train={"add_grid_readout": 3}, type_weights={"attributes": 0.9}),
    ),
    "full": DemoPreset(
        steps=400,
        heads=HeadsStage(steps=450, lr=1e-3),
        minutes="about 11.5",  # 11:30 measured (benchmarks/results/demo_full_bf16_amx_seed0_unpadded.json)
        minutes_fp32="25-41",  # 25:12 measured on the Zen 2 host, times 1.44-1.63 on the slower one (as above)
        model=RESNET_MODEL,
        batch_sizes={**_RESNET_BATCHES, **_IDENTITY},
        type_weights=_RESNET_WEIGHTS,
    ),
}


def demo_config(
    out: Path, preset: str = "standard", steps: int | None = None, tasks: Sequence[str] = DEMO_TASKS
) -> RunConfig:
    """The demo's run with ``preset`` (one of :data:`PRESETS`) on every SynthFaces task (or the subset ``tasks``,
    with the type weights of their families only; a name that is no demo family is kept, for the Trainer to refuse)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset {preset!r}; expected one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    steps = steps or p.steps
    specs = [default_registry().get_task(t) for t in tasks]
    train = _train_section(p.train, specs)
    return RunConfig.model_validate(
        {
            "output_dir": str(out),
            "seed": 0,
            "model": p.model,
            **({"train": train} if train else {}),
            "tasks": [
                {"name": t, "batch_size": p.batch_size(t), "eval_limit": p.eval_limit, "root": str(out / RENDER_CACHE)}
                for t in tasks
            ],
            "type_weights": _run_type_weights(p.type_weights, specs),
            "baseline_limit": p.baseline_limit,
            # measured with the conv stem: 2e-4 leaves age at its trivial answer; 5e-4 and 1e-3 learn it
            "optimizer": {"lr": 5e-4, "weight_decay": 0.05, "head_lr_multiplier": 2.0},
            "schedule": {"steps": steps, "warmup_steps": max(1, steps // 20), "warmup_start_lr": 1e-6},
            "eval_every": steps,
            "checkpoint_every": steps,
            "log_every": 5,
            "num_workers": 1,
            "precision": p.precision,
        }
    )


def _run_type_weights(weights: dict[str, float], specs: Sequence[TaskSpec]) -> dict[str, float]:
    """``weights`` for a run of ``specs``, in either stage: a demo family (:data:`TYPE_WEIGHTS`) that the run does not
    train is left out; any other name is kept, for the Trainer to refuse by name."""
    families = {spec.family for spec in specs}
    return {f: w for f, w in weights.items() if f in families or f not in TYPE_WEIGHTS}


def remove_render_cache(out: Path) -> None:
    """Delete the demo's render cache in ``out`` (:data:`RENDER_CACHE`), if there is one."""
    shutil.rmtree(Path(out) / RENDER_CACHE, ignore_errors=True)


def without_pooled_heads(train: dict[str, Any]) -> dict[str, Any]:
    """A train section without its pooled-head options (``pooled_heads``, ``pooled_head_hidden``,
    ``pooled_head_queries``)."""
    return {k: v for k, v in train.items() if not k.startswith("pooled_head")}


def _train_section(train: dict[str, Any], specs: Sequence[TaskSpec]) -> dict[str, Any]:
    """The preset's stage-1 train section for a run of ``specs``: pooled heads supervise attribute-type tasks, so
    per-task fractions and readouts keep the run's tasks only (``pooled_head_mean`` only where an attention readout
    is left), and a run without an attribute-type task (landmarks alone) trains without them."""
    names = {spec.name for spec in specs}
    pooled, queries = train.get("pooled_heads"), train.get("pooled_head_queries")
    if isinstance(pooled, dict):
        pooled = {name: f for name, f in pooled.items() if name in names}
    if isinstance(queries, dict):
        queries = {name: q for name, q in queries.items() if name in names}
    if not pooled or not any(spec.head_type == "attribute" for spec in specs):
        return without_pooled_heads(train)
    section = {**train, "pooled_heads": pooled, **({} if queries is None else {"pooled_head_queries": queries})}
    if isinstance(queries, dict) and not any(queries.values()):
        section.pop("pooled_head_mean", None)  # it adds to an attention readout, which this run's heads do not have
    return section


def stage1_config(cfg: RunConfig) -> RunConfig:
    """The demo's stage 1 of ``cfg``: the same run in ``<output_dir>/stage1``, scored without trivial answers (stage
    2 scores them on the same items)."""
    return cfg.model_copy(update={"output_dir": str(Path(cfg.output_dir) / "stage1"), "eval_baselines": False})


def heads_config(cfg: RunConfig, stage: HeadsStage) -> RunConfig:
    """The demo's stage 2 of ``cfg``, in its ``output_dir``: from stage 1's last checkpoint, the encoder frozen
    (``train.mode: heads``, with ``stage.train``), ``stage.steps`` steps of a fresh warm-up and cosine peaking at
    ``stage.lr`` (``cfg``'s by default), with ``cfg``'s type weights updated by ``stage.type_weights``, on a fresh
    order of the training data (the seed after ``cfg``'s). A grid readout (``add_grid_readout``) is left out of a run
    without an attribute-type task, which would have nothing to read for, and so are the type weights of the demo's
    families that the run does not train (any other name is kept, for the Trainer to refuse by name)."""
    train = dict(stage.train)
    registry = default_registry()
    specs = [registry.get_task(t.name) for t in cfg.tasks]
    if not any(spec.head_type == "attribute" for spec in specs):
        train.pop("add_grid_readout", None)
    d = cfg.model_dump()
    d.update(
        init_from=str(Path(stage1_config(cfg).output_dir) / "checkpoints" / "last"),
        seed=cfg.seed + 1,
        train={**train, "mode": "heads"},
        eval_every=stage.steps,
        checkpoint_every=stage.steps,
    )
    d["type_weights"] = {**d["type_weights"], **_run_type_weights(stage.type_weights, specs)}
    d["schedule"] = {**d["schedule"], "steps": stage.steps, "warmup_steps": max(1, stage.steps // 20)}
    if stage.lr is not None:
        d["optimizer"] = {**d["optimizer"], "lr": stage.lr}
    return RunConfig.model_validate(d)


@dataclass
class DemoRun:
    """A trained demo: the last stage's trainer and test results, stage 1's steps and results when there were two
    stages, the training logs in order, and the wall time."""

    trainer: Trainer
    results: dict[str, dict[str, float]]
    stage1_steps: int | None
    stage1_results: dict[str, dict[str, float]] | None
    logs: list[Path]
    seconds: float


def demo_plan(trainer: Trainer, heads_steps: int) -> str:
    """One line saying what the demo will train, for how many steps, and in which precision (and why float32)."""
    steps = trainer.cfg.schedule.steps
    plan = f"demo: {steps} steps training the whole model"
    if heads_steps:
        plan += f", then {heads_steps} training its decoders on the frozen encoder (stage 2)"
    plan += f"; forward pass in {trainer.precision} on {trainer.device.type}"
    note = precision_note(trainer.cfg.precision, trainer.precision, trainer.device)
    return plan + (f" ({note})" if note else "")


def train_demo(cfg: RunConfig, heads: HeadsStage | None = None) -> DemoRun:
    """Train ``cfg`` (a :func:`demo_config`) and, with ``heads`` of some steps, a second stage on its frozen encoder
    (:func:`heads_config`). The render cache is deleted afterwards, whether or not training ends well.

    With two stages, stage 1 runs in ``<output_dir>/stage1`` (:func:`stage1_config`) and stage 2 in ``output_dir``,
    whose ``checkpoints/last`` is the demo's model either way.
    """
    out = Path(cfg.output_dir)
    try:
        return _train_stages(cfg, heads or HeadsStage(steps=0))
    finally:
        remove_render_cache(out)


def _train_stages(cfg: RunConfig, heads: HeadsStage) -> DemoRun:
    out = Path(cfg.output_dir)
    t0 = time.perf_counter()
    if not heads.steps:
        shutil.rmtree(out / "stage1", ignore_errors=True)  # an earlier two-stage demo's first stage
        trainer = Trainer(cfg, overwrite=True)  # the demo owns its folder: each run starts over
        print(demo_plan(trainer, 0), flush=True)
        results = fit_stage(trainer)
        return DemoRun(trainer, results, None, None, [out / "log.jsonl"], time.perf_counter() - t0)
    stage1 = Trainer(stage1_config(cfg), overwrite=True)
    print(demo_plan(stage1, heads.steps), flush=True)
    stage1_results = fit_stage(stage1)
    trainer = Trainer(heads_config(cfg, heads), overwrite=True)
    results = fit_stage(trainer)
    logs = [stage1.out / "log.jsonl", out / "log.jsonl"]
    return DemoRun(trainer, results, stage1.step, stage1_results, logs, time.perf_counter() - t0)


def fit_stage(trainer: Trainer) -> dict[str, dict[str, float]]:
    """``trainer.fit()``, its data workers stopped when it ends or fails: stage 1's would otherwise sit through stage
    2, and no worker may still paint into the render cache when the demo removes it."""
    try:
        return trainer.fit()
    finally:
        trainer.close_streams()


def _loss_series(logs: Sequence[Path]) -> dict[str, list[tuple[float, float]]]:
    """Each loss over the logs in order, a later log's steps counted on from the earlier's last step."""
    series: dict[str, list[tuple[float, float]]] = {}
    offset = 0
    for log in logs:
        last = 0
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            last = max(last, rec.get("step", 0))
            if "loss" not in rec:
                continue
            for key, value in rec.items():
                if key == "loss" or key.startswith("loss/"):
                    series.setdefault(key.removeprefix("loss/"), []).append((offset + rec["step"], value))
        offset += last
    return series


def write_report(run: DemoRun, out: Path) -> Path:
    """Metrics table (Markdown + JSON), loss curves and a sheet of test predictions."""
    from faceptor_core.viz import contact_sheet, plot_curves, prediction_card

    trainer, results, stage1 = run.trainer, run.results, run.stage1_results
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "metrics.json").write_text(json.dumps(results, indent=2))
    if stage1 is not None:
        (report / "metrics_stage1.json").write_text(json.dumps(stage1, indent=2))
    else:  # an earlier two-stage demo's
        (report / "metrics_stage1.json").unlink(missing_ok=True)
    model = trainer.model
    if stage1 is None:
        steps = f"{trainer.step} steps"
    else:
        steps = f"{run.stage1_steps} steps, then {trainer.step} with the encoder frozen (stage 2),"
    lines = [
        "# Faceptor demo on SynthFaces",
        "",
        f"Model: Faceptor, encoder {model.config.encoder.name}, {model.num_parameters() / 1e6:.2f}M parameters, "
        f"{steps} in {run.seconds / 60:.1f} min on {torch.get_num_threads()} CPU threads, forward pass in "
        f"{trainer.precision}.",
        "SynthFaces is a smoke dataset: these scores say the machinery works, not how a model does on real faces.",
        "",
        "Each metric stands beside the trivial answer (no model: the training split's mean shape, per-pixel",
        "majority map, mean age, majority class, per-attribute majority; chance for verification), scored on the",
        'same test items with the same metric. "beats it?" shows the margin ± two standard errors (from groups',
        "of the test items scored apart) and says yes only beyond them and by at least a twentieth of the way to",
        'a perfect score; "barely" beyond them by less, "within noise" inside them.',
        "",
    ]
    if stage1 is None:
        lines += ["| task | metric | model | trivial answer | beats it? |", "| --- | --- | --- | --- | --- |"]
    else:
        lines += [
            "| task | metric | model | after stage 1 | trivial answer | beats it? |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
    for task, metrics in results.items():
        spec = trainer.specs[task]
        for k, v in metrics.items():
            if k.startswith(("baseline/", "margin_se/", "acc_")):  # per-attribute accuracies: in metrics.json
                continue
            b = metrics.get(f"baseline/{k}")
            better = metric_verdict(spec, k, v, b, metrics.get(f"margin_se/{k}"), trainer.metric_meta.get(task))
            first = "" if stage1 is None else f" {_cell(stage1.get(task, {}).get(k))} |"
            lines.append(f"| {task} | {k} | {v:.4f} |{first} {_cell(b)} | {better} |")
    answers = {t: ev.baseline_answer for t, ev in trainer.baselines.items() if ev.baseline_answer}
    if answers:
        lines += ["", "Trivial answers: " + "; ".join(f"{t}: {a}" for t, a in answers.items()) + "."]
    lines += ["", "![loss curves](loss_curves.png)", "", "![predictions](predictions.png)", ""]
    (report / "metrics.md").write_text("\n".join(lines))
    title = "training losses (log scale)" + ("" if stage1 is None else "; stage 2: the encoder frozen")
    marks = None if run.stage1_steps is None else {"stage 2": run.stage1_steps}
    plot_curves(_loss_series(run.logs), title=title, marks=marks).save(report / "loss_curves.png")
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
        tasks = tuple(t["name"] for t in json.loads((out / RUN_CONFIG).read_text())["tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return tasks == DEMO_TASKS


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def run_demo(out: Path, preset: str = "standard", steps: int | None = None, heads_steps: int | None = None) -> Path:
    """Train the demo (``steps`` and ``heads_steps`` default to the preset's) in ``out`` and write its report."""
    missing = [t for t in DEMO_TASKS if t not in default_registry().task_names()]
    if missing:
        raise RuntimeError(f"the demo needs the SynthFaces tasks {missing}; is faceptor_tasks installed?")
    cfg = demo_config(out, preset, steps)
    if not owned_by_demo(out):
        raise RunDirectoryError(
            f"{out}: not empty and not the output of an earlier `faceptor demo`; the demo only "
            "replaces its own output. Choose another --out"
        )
    p = PRESETS[preset]
    if heads_steps is not None and heads_steps < 0:
        raise ValueError(f"--heads-steps {heads_steps}: expected 0 (no stage 2) or a positive number of steps")
    run = train_demo(cfg, p.heads if heads_steps is None else p.heads.model_copy(update={"steps": heads_steps}))
    for task, metrics in run.results.items():
        print(f"{task}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return write_report(run, out)
