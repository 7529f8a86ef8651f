"""Evaluation: each task's metrics on its evaluation split, batched, with the model's decoding, and beside them
the same metrics of the task's trivial baseline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from . import predictions as P
from .data.collate import collate_items
from .data.streams import data_report_line, open_dataset, unwrap_worker_error
from .errors import FaceptorError, PluginContractError, contract_error, plugin_of
from .margins import GroupedScores, margin_se, verdict
from .model.base import FaceptorBase
from .spec import Baseline, MetricMeta, TaskSpec


class NonFinitePredictionError(FaceptorError, ValueError):
    """The model predicted NaN or infinite values (a diverged model); the message names the task."""


def prediction_tensor(pred: P.Prediction) -> torch.Tensor:
    """The tensor a metric scores (``pred.tensor()``: points, labels, ages, probabilities, values or embeddings)."""
    return pred.tensor()


def eval_dataset(
    spec: TaskSpec,
    root: str | None,
    split: str,
    input_size: int,
    limit: int | None = None,
    transform_split: str | None = None,
    skip_invalid: bool = False,
):
    """``spec``'s dataset for ``split`` through its transform for ``transform_split`` (default: ``split``)."""
    if spec.dataset is None:
        raise ValueError(f"task {spec.name!r} supplies no dataset")
    transform = spec.transforms(transform_split or split, input_size) if spec.transforms is not None else None
    if transform is not None and not callable(transform):
        raise contract_error(spec, "transforms", f"returned {type(transform).__name__}; expected a callable")
    ds = open_dataset(spec, root, split, transform, skip_invalid)
    if limit is not None and len(ds) > limit:
        ds = Subset(ds, range(limit))
    return ds


@torch.no_grad()
def embed_with_flip(model: FaceptorBase, task: str, images: torch.Tensor) -> torch.Tensor:
    """Verification embedding: embedding(image) + embedding(flipped image), L2-normalised."""
    size = model.tasks[task].input_size
    raw = model({size: images}, [task])[task] + model({size: images.flip(-1)}, [task])[task]
    return torch.nn.functional.normalize(raw.float(), dim=-1)


#: Training items a baseline is fitted on by default (evenly spaced over the training split; 0/None: all).
DEFAULT_BASELINE_ITEMS = 2000


class BaselineUnavailable(RuntimeError):
    """A task's trivial baseline cannot be computed (no baseline declared, or its training split unreadable)."""


@dataclass(frozen=True)
class TaskEvaluation:
    """One task's evaluation: its metrics and, beside them, the same metrics of the trivial baseline.

    ``protocol`` names the evaluation protocol (``spec.extra["protocol"]``); ``baseline_answer`` says what the
    trivial answer is; ``baseline_error`` why there is none (``baseline`` is then None).
    """

    task: str
    split: str
    items: int
    metrics: dict[str, float]
    baseline: dict[str, float] | None = None
    baseline_answer: str = ""
    baseline_error: str = ""
    protocol: str = ""
    #: The metric's :class:`~faceptor_core.spec.MetricMeta` per value (direction, unit, description).
    meta: dict[str, MetricMeta] = field(default_factory=dict)
    #: The metrics of each group of the items, and the baseline's (:mod:`faceptor_core.margins`); empty without
    #: error bars, ``groups_error`` then says why.
    groups: list[dict[str, float]] = field(default_factory=list)
    baseline_groups: list[dict[str, float]] = field(default_factory=list)
    groups_error: str = ""

    def margin_se(self) -> dict[str, float]:
        """Per metric, the standard error of (metric - baseline) on these items (empty without error bars)."""
        return margin_se(self.groups, self.baseline_groups)

    def flat(self) -> dict[str, float]:
        """``{metric: value, ..., "baseline/<metric>": value, ..., "margin_se/<metric>": value, ...}``: the
        metrics, the trivial baseline's, and the standard error of each margin between them."""
        out = dict(self.metrics)
        out.update({f"baseline/{k}": v for k, v in (self.baseline or {}).items()})
        out.update({f"margin_se/{k}": v for k, v in self.margin_se().items()})
        return out


def fit_baseline(
    spec: TaskSpec,
    root: str | None,
    input_size: int,
    split: str = "train",
    eval_split: str = "test",
    limit: int | None = DEFAULT_BASELINE_ITEMS,
    batch_size: int = 32,
    num_workers: int = 0,
) -> Baseline:
    """``spec``'s baseline fitted on ``split`` (at most ``limit`` items, evenly spaced), the items presented by
    the evaluation transform of ``eval_split`` so that they share the evaluated items' crop geometry."""
    if spec.baseline is None:
        raise BaselineUnavailable(f"task {spec.name!r} declares no baseline")
    baseline = spec.baseline(spec)
    if not isinstance(baseline, Baseline):
        raise TypeError(f"task {spec.name!r}: baseline() returned {type(baseline).__name__}, not a Baseline")
    if not baseline.needs_training:
        baseline.fit(())
        return baseline
    try:
        ds = eval_dataset(spec, root, split, input_size, transform_split=eval_split)
    except (ValueError, OSError) as exc:
        raise BaselineUnavailable(
            f"task {spec.name!r}: cannot read its {split!r} split for the baseline ({exc})"
        ) from None
    if len(ds) == 0:
        raise BaselineUnavailable(f"task {spec.name!r}: its {split!r} split is empty")
    if limit and len(ds) > limit:
        ds = Subset(ds, np.unique(np.linspace(0, len(ds) - 1, limit).round().astype(int)).tolist())
    try:
        baseline.fit(
            DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_items)
        )
    except (ValueError, OSError) as exc:  # e.g. an unreadable training image
        raise BaselineUnavailable(f"task {spec.name!r}: fitting the baseline on {split!r} failed ({exc})") from None
    return baseline


def _model_input(metric: Any, model: FaceptorBase, task: str, raw: torch.Tensor, size: int) -> torch.Tensor:
    """What ``metric.update`` scores: the raw output for metrics that take it, else the decoded prediction."""
    if getattr(metric, "takes_raw_output", False):
        return raw.detach().float().cpu()
    return prediction_tensor(model.decode(task, raw, (size, size))).cpu()


@torch.no_grad()
def evaluate_with_baseline(
    model: FaceptorBase,
    spec: TaskSpec,
    root: str | None = None,
    split: str = "test",
    batch_size: int = 32,
    limit: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    baseline: bool = True,
    baseline_split: str = "train",
    baseline_limit: int | None = DEFAULT_BASELINE_ITEMS,
    on_report: Callable[[str], None] | None = None,
    skip_invalid: bool = False,
    fitted_baseline: Baseline | None = None,
    error_bars: bool = True,
) -> TaskEvaluation:
    """Run ``spec``'s metrics over its ``split`` and, when ``baseline``, score the task's trivial baseline
    (fitted on ``baseline_split``) on the same items with the same metric. A baseline that cannot be computed
    leaves ``baseline`` None with the reason in ``baseline_error``.

    A metric that declares ``pairs`` (verification, :class:`~faceptor_core.spec.PairMetric`) is fed pair items
    ``{"image_a", "image_b", "issame"}`` as flip-augmented embeddings through ``update_pairs``.
    ``on_report`` receives the dataset's data report (records skipped, excluded or dropped) as one line when there
    is one; ``skip_invalid`` leaves unusable records out (reported) instead of stopping at the first;
    ``fitted_baseline`` is a baseline already fitted on ``baseline_split`` (scored instead of fitting one);
    ``error_bars=False`` skips scoring the groups of items that the margins' standard errors come from. An empty
    split, NaN or infinite predictions and a metric that breaks its contract are errors naming the task.
    """
    if spec.metrics is None:
        raise ValueError(f"task {spec.name!r} supplies no metrics")
    size = model.tasks[spec.name].input_size
    ds = eval_dataset(spec, root, split, size, limit, skip_invalid=skip_invalid)
    line = data_report_line(ds.dataset if isinstance(ds, Subset) else ds)
    if line and on_report is not None:
        on_report(line)
    trivial: Baseline | None = None
    error = ""
    if baseline and fitted_baseline is not None:
        trivial = fitted_baseline
    elif baseline:
        try:
            trivial = fit_baseline(spec, root, size, baseline_split, split, baseline_limit, batch_size, num_workers)
        except BaselineUnavailable as exc:
            error = str(exc)
    metric = make_metric(spec)
    trivial_metric = make_metric(spec) if trivial is not None else None
    pairs = scores_pairs(spec, metric)
    grouped = GroupedScores(lambda: make_metric(spec), len(ds), error_bars)
    trivial_grouped = GroupedScores(lambda: make_metric(spec), len(ds), error_bars) if trivial is not None else None
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_items)
    device = model.pixel_mean.device
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(_batches(loader), desc=f"eval {spec.name}", disable=not progress, leave=False):
            _check_items(spec, batch, pairs)
            if pairs:
                emb_a = embed_with_flip(model, spec.name, batch["image_a"].to(device))
                emb_b = embed_with_flip(model, spec.name, batch["image_b"].to(device))
                _check_finite(spec, emb_a, split)
                _check_finite(spec, emb_b, split)
                emb_a, emb_b, same = emb_a.cpu(), emb_b.cpu(), batch["issame"]
                metric.update_pairs(emb_a, emb_b, same)
                grouped.feed("update_pairs", emb_a, emb_b, same)
                if trivial is not None:
                    emb = torch.as_tensor(trivial.predict(batch))
                    trivial_metric.update_pairs(emb, emb, same)
                    trivial_grouped.feed("update_pairs", emb, emb, same)
                continue
            raw = model({size: batch["image"].to(device)}, [spec.name])[spec.name]
            values = _model_input(metric, model, spec.name, raw, size)
            _check_finite(spec, values, split)
            target, meta = batch["target"], batch.get("meta")
            metric.update(values, target, meta)
            grouped.feed("update", values, target, meta)
            if trivial is not None:
                guess = trivial.predict(batch)
                trivial_metric.update(guess, target, meta)
                trivial_grouped.feed("update", guess, target, meta)
    finally:
        model.train(was_training)
    groups = grouped.compute()
    baseline_groups = trivial_grouped.compute() if trivial_grouped is not None else []
    return TaskEvaluation(
        task=spec.name,
        split=split,
        items=len(ds),
        metrics=checked_results(spec, metric.compute()),
        baseline=checked_results(spec, trivial_metric.compute()) if trivial_metric is not None else None,
        baseline_answer=trivial.describe() if trivial is not None else "",
        baseline_error=error,
        protocol=str(spec.extra.get("protocol", "")),
        meta=metric_meta(spec, metric),
        groups=groups,
        baseline_groups=baseline_groups,
        groups_error=grouped.error or (trivial_grouped.error if trivial_grouped is not None else ""),
    )


def evaluate_task(
    model: FaceptorBase,
    spec: TaskSpec,
    root: str | None = None,
    split: str = "test",
    batch_size: int = 32,
    limit: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    baseline: bool = False,
    baseline_split: str = "train",
    baseline_limit: int | None = DEFAULT_BASELINE_ITEMS,
    on_report: Callable[[str], None] | None = None,
    skip_invalid: bool = False,
) -> dict[str, float]:
    """``spec``'s metrics over its ``split``: ``{metric: value}``; with ``baseline=True`` also
    ``{"baseline/<metric>": value}`` of the task's trivial baseline (raises :class:`BaselineUnavailable` when it
    cannot be computed). See :func:`evaluate_with_baseline`."""
    result = evaluate_with_baseline(
        model,
        spec,
        root,
        split,
        batch_size,
        limit,
        num_workers,
        progress,
        baseline,
        baseline_split,
        baseline_limit,
        on_report=on_report,
        skip_invalid=skip_invalid,
    )
    if baseline and result.baseline is None:
        raise BaselineUnavailable(result.baseline_error)
    return result.flat()


def _batches(loader):
    """The loader's batches; a user error raised in a worker keeps its own one-line message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:
            unwrapped = unwrap_worker_error(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from None
        yield batch


PAIR_KEYS = ("image_a", "image_b", "issame")


def scores_pairs(spec: TaskSpec, metric: Any) -> bool:
    """Whether ``metric`` declares pair scoring (``pairs = True``); such a metric must have ``update_pairs``."""
    pairs = bool(getattr(metric, "pairs", False))
    if pairs and not callable(getattr(metric, "update_pairs", None)):
        raise contract_error(
            spec, "metrics", f"returned {type(metric).__name__}, which declares pairs = True without update_pairs()"
        )
    return pairs


def _check_items(spec: TaskSpec, batch: Mapping[str, Any], pairs: bool) -> None:
    """The evaluation items are what the metric scores: pair items for a pair metric, images otherwise."""
    if pairs:
        missing = [k for k in PAIR_KEYS if k not in batch]
        if missing:
            raise contract_error(
                spec,
                "dataset",
                f"gave evaluation items without {', '.join(missing)}; the task's metric scores pairs (pairs = True)",
            )
    elif "image" not in batch:
        hint = " (pair items: the metric must declare pairs = True)" if "image_a" in batch else ""
        raise contract_error(spec, "dataset", f"gave evaluation items without 'image'{hint}")


def metric_meta(spec: TaskSpec, metric: Any) -> dict[str, MetricMeta]:
    """The metric's ``meta`` (empty for a metric that declares none); anything but a mapping of
    :class:`~faceptor_core.spec.MetricMeta` breaks the metric contract."""
    meta = getattr(metric, "meta", None)
    if meta is None:
        return {}
    if not isinstance(meta, Mapping) or not all(isinstance(v, MetricMeta) for v in meta.values()):
        raise contract_error(
            spec,
            "metrics",
            f"returned {type(metric).__name__} whose meta is not a dict of faceptor_core.spec.MetricMeta",
        )
    return {str(k): v for k, v in meta.items()}


def make_metric(spec: TaskSpec):
    """``spec.metrics(spec)``, checked to have ``update`` and ``compute``; named after the task."""
    metric = spec.metrics(spec)
    missing = [m for m in ("update", "compute") if not callable(getattr(metric, m, None))]
    if missing:
        raise contract_error(spec, "metrics", f"returned {type(metric).__name__} without {', '.join(missing)}()")
    if isinstance(getattr(metric, "task", None), str):  # metrics that name their task in errors
        metric.task = spec.name
    return metric


def checked_results(spec: TaskSpec, values) -> dict[str, float]:
    """``compute()``'s result as ``{name: float}``; anything else breaks the metric contract."""
    if not isinstance(values, Mapping):
        raise contract_error(spec, "metrics", f"compute() returned {type(values).__name__}; expected a dict of numbers")
    try:
        return {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise PluginContractError(
            f"task {spec.name!r} (plugin {plugin_of(spec)!r}): metrics "
            f"compute() returned a value that is not a number ({exc})"
        ) from None


def _check_finite(spec: TaskSpec, values: torch.Tensor, split: str) -> None:
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise NonFinitePredictionError(
            f"task {spec.name!r}: the model predicts NaN or infinite values on split "
            f"{split!r} (has it diverged?); refusing to score them"
        )


def evaluate(
    model: FaceptorBase,
    specs: Mapping[str, TaskSpec],
    roots: Mapping[str, str | None] | None = None,
    splits: Mapping[str, str] | None = None,
    limits: Mapping[str, int | None] | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics of every task in ``specs``: ``{task: {metric: value}}``."""
    roots, splits, limits = roots or {}, splits or {}, limits or {}
    return {
        name: evaluate_task(
            model, spec, roots.get(name), splits.get(name, "test"), batch_size, limits.get(name), progress=progress
        )
        for name, spec in specs.items()
    }


def higher_is_better(spec: TaskSpec, key: str, meta: Mapping[str, MetricMeta] | None = None) -> bool | None:
    """Whether a larger ``key`` is better: the metric's ``meta`` says (None: the value is no score); for a metric
    without ``meta``, the spec's ``higher_is_better`` for its primary metric, else unknown (None)."""
    if meta and key in meta:
        return meta[key].higher_is_better
    return spec.higher_is_better if key == spec.primary_metric else None


def metric_verdict(
    spec: TaskSpec,
    key: str,
    value: float,
    baseline: float | None,
    se: float | None,
    meta: Mapping[str, MetricMeta] | None = None,
) -> str:
    """:func:`~faceptor_core.margins.verdict` for metric ``key`` of ``spec``: its direction and unit from the
    metric's ``meta`` (``-`` for a value that is no score)."""
    meta = meta or {}
    fraction = key in meta and meta[key].unit == "fraction"
    return verdict(value, baseline, se, higher_is_better(spec, key, meta), fraction)


def primary_value(spec: TaskSpec, metrics: Mapping[str, float], meta: Mapping[str, MetricMeta] | None = None) -> float:
    """The task's primary metric, oriented so that larger is better (direction from the metric's ``meta``)."""
    key = spec.primary_metric or next(iter(metrics))
    if key not in metrics:
        raise KeyError(f"task {spec.name!r}: primary metric {key!r} not among {sorted(metrics)}")
    higher = higher_is_better(spec, key, meta)
    if higher is None:
        raise ValueError(f"task {spec.name!r}: primary metric {key!r} is no score (its meta declares no direction)")
    value = metrics[key]
    return value if higher else -value
