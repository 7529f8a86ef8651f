"""Render docs/paper_claims.md from benchmarks/results/claims/<preset>/<experiment>_s<seed>.json (experiments.py).

Every number is shown per seed ("a / b") beside the trivial answer on the same split, and every comparison says
whether it held beyond the noise on every seed, and whether either side learned at all: when both sides sit at the
trivial answer the comparison says nothing, and the table says so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from faceptor_core.margins import MIN_SHARE, practical_margin

METRIC_NAMES = {
    "synth_landmarks": "NME (inter-ocular)",
    "synth_age": "MAE (years)",
    "gaze_synth": "angular error (deg)",
    "synth_parsing": "F1 (no background)",
    "synth_expression": "accuracy",
    "synth_attributes": "mAcc",
    "synth_identity": "verification accuracy",
}
#: A model "learned" a task when, on every seed, it closes more than this share of the distance from the trivial
#: answer to a perfect score (1 for a fraction scored higher-is-better, 0 for an error).
LEARNED_MARGIN = MIN_SHARE


def _metric_name(task: str) -> str:
    return METRIC_NAMES.get(task, "metric")


@functools.cache
def _meta(task: str):
    from faceptor_core import get_task
    from faceptor_core.evaluate import metric_meta

    spec = get_task(task)
    return spec, metric_meta(spec, spec.metrics(spec)).get(spec.primary_metric)


def _higher(task: str) -> bool:
    from faceptor_core.evaluate import higher_is_better

    spec, meta = _meta(task)
    return higher_is_better(spec, spec.primary_metric, {spec.primary_metric: meta} if meta else None)


def _better(task: str, a: float, b: float) -> bool:
    """Whether ``a`` beats ``b`` on the task's primary metric."""
    return a > b if _higher(task) else a < b


def learned(task: str, metric: float, baseline: float) -> bool:
    """Whether ``metric`` closes more than :data:`LEARNED_MARGIN` of the distance from the trivial ``baseline`` to
    a perfect score (without a known perfect score: beats it by that share of the baseline itself): the margin the
    demo's report calls a clear win (:func:`faceptor_core.margins.practical_margin`)."""
    _, meta = _meta(task)
    higher = _higher(task)
    margin = metric - baseline if higher else baseline - metric
    return margin > practical_margin(baseline, higher, meta is not None and meta.unit == "fraction")


def _load(results: Path, name: str) -> list[dict]:
    """Every seed's record of experiment ``name``, by seed."""
    records = [json.loads(p.read_text()) for p in results.glob(f"{name}_s*.json")]
    return sorted(records, key=lambda r: r["seed"])


def _per_seed(values: list[float], digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def _digits(task: str) -> int:
    return 2 if task in ("synth_age", "gaze_synth") else 3


#: A difference between two models counts on a seed when it exceeds this many standard errors of the difference.
NOISE_SE = 2.0


def seed_outcome(task: str, a: dict, b: dict) -> str:
    """``"yes"`` when ``a`` beats ``b`` on the task's primary metric, ``"no"`` when ``b`` beats ``a``, ``"within
    noise"`` when both entries carry standard errors (``se``) and the difference is within :data:`NOISE_SE` of the
    difference's (the two combined as if independent; the models were scored on the same items, so this errs towards
    "within noise"). Without standard errors the values alone decide."""
    if a.get("se") is not None and b.get("se") is not None:
        gain = a["metric"] - b["metric"] if _higher(task) else b["metric"] - a["metric"]
        noise = NOISE_SE * (a["se"] ** 2 + b["se"] ** 2) ** 0.5
        if abs(gain) <= noise:
            return "within noise"
        return "yes" if gain > 0 else "no"
    return "yes" if _better(task, a["metric"], b["metric"]) else "no"


def _verdict(task: str, a: list[dict], b: list[dict]) -> str:
    """Does side ``a`` beat side ``b`` beyond the noise on every seed, and did either learn at all?"""
    learned_a = all(learned(task, r["metric"], r["baseline"]) for r in a)
    learned_b = all(learned(task, r["metric"], r["baseline"]) for r in b)
    if not (learned_a or learned_b):
        return "neither beats the trivial answer: says nothing"
    outcomes = [seed_outcome(task, x, y) for x, y in zip(a, b, strict=True)]
    if len(set(outcomes)) == 1:
        return f"{outcomes[0]}, every seed"
    return f"mixed across seeds ({' / '.join(outcomes)})"


def _without_error_bars(record: object) -> bool:
    """Whether a record holds a scored entry (``metric`` beside ``baseline``) without its standard error."""
    if isinstance(record, dict):
        if "metric" in record and "baseline" in record and record.get("se") is None:
            return True
        return any(_without_error_bars(v) for v in record.values())
    return False


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _tally(verdicts: dict[str, str]) -> str:
    """How many tasks each verdict (by task) of the multi-task comparison holds for: the paper's claim counted."""
    by_verdict: dict[str, list[str]] = {}
    for task, verdict in verdicts.items():
        by_verdict.setdefault(verdict, []).append(task)
    n = len(verdicts)
    counts = [f"{verdict} on {len(found)} of {n} ({', '.join(found)})" for verdict, found in by_verdict.items()]
    return "Multi-task better? " + "; ".join(counts) + "."


def _multitask(records: list[dict]) -> list[str]:
    records = [r for r in records if "single_total" in r]  # a run still under way has no total yet
    if not records:
        return []
    seeds = [r["seed"] for r in records]
    first = records[0]
    lines = [
        f"## Faceptor multi-task vs one model per task ({first['steps']} steps each, same images per task; "
        f"seeds {', '.join(map(str, seeds))})",
        "",
        "| task | metric | multi-task | single-task | trivial answer | multi-task better? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = {}
    for task in first["multi"]["metrics"]:
        multi = [r["multi"]["metrics"][task] for r in records]
        single = [r["single"][task] for r in records]
        verdicts[task] = _verdict(task, multi, single)
        d = _digits(task)
        lines.append(
            f"| {task} | {_metric_name(task)} | {_per_seed([m['metric'] for m in multi], d)} | "
            f"{_per_seed([s['metric'] for s in single], d)} | {_per_seed([m['baseline'] for m in multi], d)} | "
            f"{verdicts[task]} |"
        )
    lines += ["", _tally(verdicts)]
    m = {k: _mean([r["multi"][k] for r in records]) for k in ("parameters", "inference_ms_all_tasks", "seconds")}
    s = {k: _mean([r["single_total"][k] for r in records]) for k in ("parameters", "inference_ms_all_tasks", "seconds")}
    return lines + [
        "",
        "| | one Faceptor | six single-task models |",
        "| --- | --- | --- |",
        f"| parameters | {m['parameters'] / 1e6:.2f}M | {s['parameters'] / 1e6:.2f}M |",
        f"| all-task inference, batch 8 at 112 px (mean over seeds) | {m['inference_ms_all_tasks']:.0f} ms | "
        f"{s['inference_ms_all_tasks']:.0f} ms |",
        f"| training time (mean over seeds) | {m['seconds'] / 60:.1f} min | {s['seconds'] / 60:.1f} min |",
        "",
    ]


def _two_rows(title: str, task: str, rows: list[tuple[str, list[dict], str]]) -> list[str]:
    """A table of methods (label, per-seed entries, extra column or "-") beside the trivial answer."""
    d = _digits(task)
    extra = any(x != "-" for _, _, x in rows)
    lines = [
        title,
        "",
        f"| method | {_metric_name(task)} per seed | trivial answer |" + (" cost |" if extra else ""),
        "| --- | --- | --- |" + (" --- |" if extra else ""),
    ]
    for label, entries, cost in rows:
        baseline = _per_seed([e["baseline"] for e in entries], d)
        values = _per_seed([e["metric"] for e in entries], d)
        lines.append(f"| {label} | {values} | {baseline} |" + (f" {cost} |" if extra else ""))
    return [*lines, ""]


def _auxiliary(records: list[dict]) -> list[str]:
    first = records[0]
    only = [r["age_only"] for r in records]
    rows = [("age only", only, "-")]
    verdicts = []
    for key in ("age_with_auxiliary", "age_with_all_auxiliary"):
        if all(key in r for r in records):
            entries = [r[key] for r in records]
            label = f"age + {', '.join(first[key]['tasks'][1:])}"
            rows.append((label, entries, "-"))
            verdicts.append(f"- {label}, better than age only: {_verdict('synth_age', entries, only)}.")
    lines = _two_rows(
        f"## Auxiliary supervised learning: age from {first['labelled_age_images']} labelled images "
        f"({first['steps']} steps)",
        "synth_age",
        rows,
    )
    return [*lines, *verdicts, ""]


def _unscored(records: list[dict], key: str, scored: list[dict]) -> list[dict]:
    """A per-seed value stored without its baseline, given the baseline of ``scored`` (same task and split)."""
    return [{"metric": r[key], "baseline": s["baseline"]} for r, s in zip(records, scored, strict=True)]


def _sides(records: list[dict], *keys: str) -> tuple[dict, str, list[list[dict]]]:
    """The first record, the experiment's task, and the per-seed entries of each compared side."""
    return records[0], records[0]["task"], [[r[k] for r in records] for k in keys]


def _cost(entries: list[dict]) -> str:
    return f"{entries[0]['trainable_parameters']:,} trainable parameters"


def _stage2(records: list[dict]) -> list[str]:
    first, task, (q, s2) = _sides(records, "stage1_queries_only", "stage2_layer_attention")
    lines = _two_rows(
        f"## Stage 2 (Layer-Attention) vs Stage 1 on {task} ({first['steps']} more steps from the multi-task model)",
        task,
        [
            ("Stage 1 as trained", _unscored(records, "stage1_as_trained", q), "-"),
            ("Stage 1 + queries tuned", q, _cost(q)),
            ("Stage 2: Layer-Attention + queries", s2, _cost(s2)),
        ],
    )
    prefs = [r["stage2_layer_attention"].get("layer_preference", {}) for r in records]
    lines += [f"Stage 2 better than Stage 1 with the same steps: {_verdict(task, s2, q)}.", ""]
    if prefs and prefs[0]:
        lines += [
            "Layer preference of the task (share of cross-attention mass per encoder layer, seed "
            f"{records[0]['seed']}): " + ", ".join(f"layer {k}: {v:.3f}" for k, v in sorted(prefs[0].items())),
            "",
        ]
    return lines


def _prompt(records: list[dict]) -> list[str]:
    first, task, (p, f) = _sides(records, "prompt_tuning", "full_fine_tuning")
    lines = _two_rows(
        f"## Prompt tuning vs full fine-tuning: new task {task} ({first['steps']} steps) on a model trained on "
        f"{', '.join(first.get('base_tasks', []))}",
        task,
        [
            ("untrained queries", _unscored(records, "untrained", p), "-"),
            ("prompt tuning (queries, output prior)", p, _cost(p)),
            ("full fine-tuning", f, _cost(f)),
        ],
    )
    share = [(a["metric"] - a["baseline"]) / (b["metric"] - b["baseline"]) for a, b in zip(p, f, strict=True)]
    return [
        *lines,
        f"Prompt tuning better than full fine-tuning: {_verdict(task, p, f)}. Of full fine-tuning's gain over the "
        f"trivial answer, prompt tuning reaches {' / '.join(f'{x:.0%}' for x in share)} (per seed), training "
        f"{p[0]['trainable_parameters'] / f[0]['trainable_parameters']:.2%} of the parameters and leaving the base "
        "model's weights unchanged.",
        "",
    ]


def _claims(results: Path) -> list[str]:
    """The sections of every experiment with records directly in ``results``."""
    sections = {"multitask": _multitask, "stage2": _stage2, "auxiliary": _auxiliary, "prompt": _prompt}
    records = {name: _load(results, name) for name in sections}
    if not any(records.values()):
        return []
    lines = []
    # the recipe's type weights (older records name them at the top level)
    weights = {
        json.dumps(r.get("recipe", {}).get("type_weights", r.get("type_weights")))
        for found in records.values()
        for r in found
    }
    if len(weights) == 1 and (w := json.loads(weights.pop())):
        lines += ["Type weights of every run: " + ", ".join(f"{k} {v:g}" for k, v in w.items()) + ".", ""]
    elif weights:
        lines += ["The records were measured with different type weights; each file names its own.", ""]
    if any(_without_error_bars(r) for found in records.values() for r in found):
        lines += ["These records carry no error bars: each comparison below reads the values alone.", ""]
    for name, section in sections.items():
        if records[name]:
            lines += section(records[name])
    return lines


def render(results: Path, out: Path) -> None:
    """docs/paper_claims.md from the records in ``results`` and in each of its preset folders (one section each,
    introduced by the folder's README.md when it has one)."""
    lines = [
        "# The paper's claims on SynthFaces",
        "",
        "Generated by `benchmarks/report_results.py` from `benchmarks/results/claims/` (written by",
        "`benchmarks/experiments.py`, one seed per run). Every model trains from scratch on 2 CPU cores with a demo",
        "preset's model and recipe, one section per preset. Each number is given per seed (seed 0 / seed 1 ...) beside",
        "the trivial answer fitted on the same training split and scored on the same test split. A comparison is",
        f"only read when at least one side closes more than {LEARNED_MARGIN:.0%} of the distance from the trivial",
        "answer to a perfect score (1 for accuracies and F1, 0 for errors) on every seed, and a difference counts on a",
        f"seed only beyond {NOISE_SE:g} standard errors of the difference (each model's from its evaluation's error",
        "bars, combined as if independent); records without error bars compare the values alone, and say so.",
        "SynthFaces is a smoke dataset: these numbers say whether the machinery behaves as the paper claims on",
        "easy synthetic faces, not how a model does on real ones.",
        "",
        *_claims(results),
    ]
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        body = _claims(folder)
        if not body:
            continue
        lines += [f"## `experiments.py --preset {folder.name}`", ""]
        if (intro := folder / "README.md").is_file():
            lines += [intro.read_text().strip(), ""]
        lines += ["#" + line if line.startswith("#") else line for line in body]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
