"""Render docs/results.md from benchmarks/results/*.json (written by experiments.py and bench scripts)."""

from __future__ import annotations

import json
from pathlib import Path

METRIC_NAMES = {
    "synth_landmarks": "NME (inter-ocular)",
    "synth_age": "MAE (years)",
    "gaze_synth": "angular error (deg)",
    "synth_parsing": "F1 (no background)",
    "synth_expression": "accuracy",
    "synth_attributes": "mAcc",
    "synth_identity": "verification accuracy",
}


def _metric_name(task: str) -> str:
    return METRIC_NAMES.get(task, "metric")


def _better(task: str, a: float, b: float) -> bool:
    """Whether ``a`` beats ``b`` on the task's primary metric (its direction from the metric's meta)."""
    from faceptor_core import get_task
    from faceptor_core.evaluate import higher_is_better, metric_meta

    spec = get_task(task)
    higher = higher_is_better(spec, spec.primary_metric, metric_meta(spec, spec.metrics(spec)))
    return a > b if higher else a < b


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def render(results: Path, out: Path) -> None:
    lines = [
        "# Results",
        "",
        "Measured on this repository's CPU set-up (2 cores); produced by `benchmarks/experiments.py` and",
        "rendered by `benchmarks/report_results.py`. SynthFaces is a smoke dataset: these numbers say whether",
        "the machinery behaves as the paper claims on easy synthetic faces, not how a model does on real ones.",
        "",
    ]
    inf = _load(results, "inference")
    if inf:
        lines += ["## All-task inference (paper's six tasks, random weights)", "", inf["table"], ""]
    mt = _load(results, "multitask")
    if mt:
        lines += [
            f"## Faceptor multi-task vs one model per task ({mt['steps']} steps each, same batches per task)",
            "",
            "| task | metric | multi-task | single-task | multi-task better? |",
            "| --- | --- | --- | --- | --- |",
        ]
        wins = 0
        for task, value in mt["multi"]["metrics"].items():
            single = mt["single"][task]["metric"]
            better = _better(task, value, single)
            wins += better
            verdict = "yes" if better else "no"
            lines.append(f"| {task} | {_metric_name(task)} | {value:.4f} | {single:.4f} | {verdict} |")
        m, s = mt["multi"], mt["single_total"]
        lines += [
            "",
            "| | one Faceptor | six single-task models |",
            "| --- | --- | --- |",
            f"| parameters | {m['parameters'] / 1e6:.2f}M | {s['parameters'] / 1e6:.2f}M |",
            f"| all-task inference, batch 8 at 112 px | {m['inference_ms_all_tasks']:.0f} ms | "
            f"{s['inference_ms_all_tasks']:.0f} ms |",
            f"| training time | {m['seconds'] / 60:.1f} min | {s['seconds'] / 60:.1f} min |",
            "",
            f"Multi-task is better on {wins} of {len(mt['multi']['metrics'])} tasks.",
            "",
        ]
    aux = _load(results, "auxiliary")
    if aux:
        a, b = aux["age_only"]["mae"], aux["age_with_auxiliary"]["mae"]
        lines += [
            f"## Auxiliary supervised learning: age from {aux['labelled_age_images']} labelled images "
            f"({aux['steps']} steps)",
            "",
            "| training | age MAE (years) |",
            "| --- | --- |",
            f"| age only | {a:.2f} |",
            f"| age + {', '.join(aux['age_with_auxiliary']['tasks'][1:])} | {b:.2f} |",
            "",
            (
                "The auxiliary tasks help."
                if b < a - 0.5
                else "No measurable effect: in this budget age does not learn in either run (an MAE near 25 is what "
                "predicting the middle of the 0-100 range gives), so the claim cannot be judged here."
            ),
            "",
        ]
    st = _load(results, "stage2")
    if st:
        s1, q, s2 = st["stage1_as_trained"], st["stage1_queries_only"], st["stage2_layer_attention"]
        lines += [
            f"## Stage 2 (Layer-Attention) vs Stage 1 on {st['task']} ({st['steps']} more steps)",
            "",
            "| model | accuracy | trainable parameters |",
            "| --- | --- | --- |",
            f"| Stage 1 as trained | {s1:.4f} | - |",
            f"| Stage 1 + queries tuned | {q['metric']:.4f} | {q['trainable_parameters']:,} |",
            f"| Stage 2: Layer-Attention + queries | {s2['metric']:.4f} | {s2['trainable_parameters']:,} |",
            "",
            "Layer preference of the task (share of cross-attention mass per encoder layer): "
            + ", ".join(f"layer {k}: {v:.3f}" for k, v in s2.get("layer_preference", {}).items()),
            "",
        ]
    pr = _load(results, "prompt")
    if pr:
        p, f = pr["prompt_tuning"], pr["full_fine_tuning"]
        lines += [
            f"## Prompt tuning vs full fine-tuning: new task {pr['task']} ({pr['steps']} steps)",
            "",
            "| method | angular error (deg) | trainable parameters |",
            "| --- | --- | --- |",
            f"| untrained queries | {pr['untrained']:.2f} | - |",
            f"| prompt tuning (queries only) | {p['metric']:.2f} | {p['trainable_parameters']:,} |",
            f"| full fine-tuning | {f['metric']:.2f} | {f['trainable_parameters']:,} |",
            "",
        ]
    lines += [
        "## Reading these numbers",
        "",
        "- Every model here trains from scratch on 2 CPU cores for a few hundred steps (no pretrained weights "
        "are reachable offline). Landmarks, parsing and identity learn measurably in that budget; age and "
        "expression stay near the trivial baselines (MAE about 25 years; accuracy about 1/7) in every "
        "setting, so the comparisons involving them say nothing either way.",
        "- At equal steps, the single-task models are better on landmarks and parsing: the paper's central "
        "claim (multi-task at least as good as specialists) does not hold at this budget on this data. What "
        "does hold is the cost side: one model with 5.8x fewer parameters serves all tasks, and all-task "
        "inference is several times faster than six models, with outputs identical to decoding each task alone.",
        "- Prompt tuning a new task (512 trainable parameters) reaches the error of full fine-tuning (all "
        "6.9M parameters) and leaves the base model bit-identical.",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
