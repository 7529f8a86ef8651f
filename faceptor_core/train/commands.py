"""CLI commands for training and evaluating models: train, eval, tune (predict: photo.commands; the SynthFaces
demo comes from the built-in plugin, faceptor_tasks.synthfaces.commands)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from ..registry import default_registry


def _parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        if "=" not in v:
            raise SystemExit(f"{what} takes TASK=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k] = val
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_run_config
    from .engine import Trainer
    from .precision import precision_note

    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    try:
        cfg = load_run_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
    note = precision_note(cfg.precision, trainer.precision, trainer.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    results = trainer.fit()
    print(json.dumps(results, indent=2))
    return 0


def _load_model(checkpoint: str, addons: list[str] | None):
    from ..build import load

    return load(checkpoint, addons=addons or ())


def _json_number(v: float) -> float | None:
    """NaN (e.g. a parsing F1 with a class absent from the whole set, as the reference) -> JSON null."""
    return None if v != v else v


def format_evaluation(result, spec=None) -> str:
    """A task's evaluation as text: protocol, baseline answer, then each metric beside its baseline and, for a
    score (``spec`` and the metric's meta give its direction), whether it beats the baseline beyond the noise."""
    from ..evaluate import metric_verdict

    lines = [f"{result.task} (split {result.split}, {result.items:,} items)"]
    if result.protocol:
        lines.append(f"  protocol: {result.protocol}")
    lines.append(f"  baseline: {result.baseline_answer or 'n/a (' + result.baseline_error + ')'}")
    if result.baseline is not None and result.groups_error:
        lines.append(f"  no error bars: {result.groups_error}")
    width = max(len(k) for k in result.metrics) if result.metrics else 0
    se = result.margin_se()
    for k, v in result.metrics.items():
        b = (result.baseline or {}).get(k)
        line = f"  {k:<{width}}  {v:.4f}" + (f"   baseline {b:.4f}" if b is not None else "")
        said = metric_verdict(spec, k, v, b, se.get(k), result.meta) if spec is not None else "-"
        lines.append(line + (f"   beats it? {said.replace('**', '')}" if said != "-" else ""))
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_with_baseline

    model = _load_model(args.checkpoint, args.addon)
    roots = _parse_pairs(args.root, "--root")
    tasks = args.tasks or model.task_names
    reg = default_registry()
    results, about = {}, {}
    for name in tasks:
        spec = reg.get_task(name)
        result = evaluate_with_baseline(
            model,
            spec,
            roots.get(name),
            args.split,
            args.batch_size,
            args.limit,
            progress=True,
            baseline=not args.no_baseline,
            baseline_split=args.baseline_split,
            baseline_limit=args.baseline_limit or None,
            skip_invalid=args.skip_invalid,
            on_report=lambda line, n=name: print(f"warning: task {n!r}: {line}", file=sys.stderr),
        )
        results[name] = {k: _json_number(v) for k, v in result.flat().items()}
        about[name] = {
            "split": result.split,
            "items": result.items,
            "protocol": result.protocol,
            "baseline": result.baseline_answer or None,
            "baseline_error": result.baseline_error or None,
            "error_bars_error": (result.groups_error or None) if result.baseline is not None else None,
        }
        print(format_evaluation(result, spec))
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "_about": about}, indent=2))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .engine import Trainer
    from .prompt import prompt_tune_config

    cfg = prompt_tune_config(
        args.checkpoint,
        args.task,
        out=args.out,
        root=args.root,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_limit=args.eval_limit,
        precision=args.precision,
    )
    trainer = Trainer(cfg, overwrite=args.overwrite)
    before = trainer.evaluate()
    results = trainer.fit()
    print(f"trainable parameters: {trainer.num_trainable_parameters():,} of {trainer.model.num_parameters():,}")
    for name, metrics in results.items():
        print(
            f"{name}: before "
            + ", ".join(f"{k}={v:.4f}" for k, v in before[name].items())
            + " | after "
            + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        )
    print(
        f"add-on written to {Path(cfg.output_dir) / 'addon'}; load it with "
        f"faceptor_core.load({args.checkpoint!r}, addons=[{str(Path(cfg.output_dir) / 'addon')!r}])"
    )
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML run configuration")
    p.add_argument("config", help="the run configuration (YAML; docs/architecture.md, Training)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run's checkpoints and log in OUTPUT_DIR and start over",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a top-level key of the configuration with a YAML value; repeatable (default: none)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on tasks' evaluation splits")
    p.add_argument("checkpoint", help="a Faceptor checkpoint directory")
    p.add_argument("--tasks", nargs="+", help="tasks to evaluate (default: all of the checkpoint's)")
    p.add_argument(
        "--root",
        action="append",
        metavar="TASK=PATH",
        help="dataset root of a task; repeatable (default: none; real datasets need one, SynthFaces tasks do not)",
    )
    p.add_argument("--split", default="test", help="the split to evaluate on")
    p.add_argument("--limit", type=int, help="evaluate only the first N items of each task (default: all)")
    p.add_argument("--batch-size", type=int, default=32, help="images per model pass")
    p.add_argument(
        "--addon", action="append", help="prompt-tuning add-on directory to load on top; repeatable (default: none)"
    )
    p.add_argument(
        "--json",
        help="also write the metrics to this file (NaN as null; baselines as baseline/<metric>, the standard error "
        "of each margin over its baseline as margin_se/<metric>; default: no file)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the trivial baselines")
    p.add_argument("--baseline-split", default="train", help="split the baselines' statistics come from")
    p.add_argument(
        "--baseline-limit",
        type=int,
        default=2000,
        help="training items the baselines are fitted on, evenly spaced (0: all)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave unusable records out (each one reported) instead of stopping at the first",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "tune",
        help="prompt-tune a new task onto a trained checkpoint (only its queries and output gain and bias train)",
    )
    p.add_argument("checkpoint", help="the trained Faceptor checkpoint directory to tune on top of")
    p.add_argument("--task", required=True, help="the registered task to add")
    p.add_argument("--root", help="the task's dataset root (default: none; real datasets need one)")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the new queries")
    p.add_argument("--eval-limit", type=int, default=500, help="items evaluated before and after tuning")
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="training forward pass: auto (bf16 where the device computes it natively, else fp32), bf16 or fp32",
    )
    p.add_argument("--out", help="run folder; the add-on goes to OUT/addon (default: runs/tune-TASK)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier tuning run in --out")
    p.set_defaults(func=cmd_tune)
