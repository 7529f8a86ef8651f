"""Evaluation: each task's metrics on its evaluation split, batched, with the model's decoding."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from .. import predictions as P
from ..data.streams import data_report_line, open_dataset, unwrap_worker_error
from ..errors import FaceptorError, PluginContractError, contract_error, plugin_of
from ..model.base import FaceptorBase
from ..spec import TaskSpec


class NonFinitePredictionError(FaceptorError, ValueError):
    """The model predicted NaN or infinite values (a diverged model); the message names the task."""


def prediction_tensor(pred: P.Prediction) -> torch.Tensor:
    """The tensor a metric scores: points, labels, ages, probabilities, values or embeddings."""
    if isinstance(pred, P.LandmarkPrediction):
        return pred.points
    if isinstance(pred, P.ParsingPrediction):
        return pred.labels
    if isinstance(pred, P.AgePrediction):
        return pred.age
    if isinstance(pred, (P.ClassificationPrediction, P.MultilabelPrediction)):
        return pred.probabilities
    if isinstance(pred, P.RegressionPrediction):
        return pred.values
    if isinstance(pred, P.EmbeddingPrediction):
        return pred.embedding
    raise TypeError(f"no metric tensor for {type(pred).__name__}")


def eval_dataset(spec: TaskSpec, root: str | None, split: str, input_size: int, limit: int | None = None,
                 skip_invalid: bool = False):
    if spec.dataset is None:
        raise ValueError(f"task {spec.name!r} supplies no dataset")
    transform = spec.transforms(split, input_size) if spec.transforms is not None else None
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


@torch.no_grad()
def evaluate_task(
    model: FaceptorBase,
    spec: TaskSpec,
    root: str | None = None,
    split: str = "test",
    batch_size: int = 32,
    limit: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    on_report: Callable[[str], None] | None = None,
    skip_invalid: bool = False,
) -> dict[str, float]:
    """Run ``spec``'s metrics over its ``split``. Verification tasks (items with ``image_a``/``image_b``)
    are scored on pairs with flip-augmented embeddings. ``on_report`` receives the dataset's data report
    (records skipped, excluded or dropped) as one line when there is one; ``skip_invalid`` leaves unusable
    records out (reported) instead of stopping at the first. An empty split, NaN or infinite
    predictions and a metric that breaks its contract are errors naming the task."""
    if spec.metrics is None:
        raise ValueError(f"task {spec.name!r} supplies no metrics")
    was_training = model.training
    model.eval()
    size = model.tasks[spec.name].input_size
    ds = eval_dataset(spec, root, split, size, limit, skip_invalid)
    line = data_report_line(ds.dataset if isinstance(ds, Subset) else ds)
    if line and on_report is not None:
        on_report(line)
    metric = make_metric(spec)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    device = model.pixel_mean.device
    try:
        for batch in tqdm(_batches(loader), desc=f"eval {spec.name}", disable=not progress, leave=False):
            if "image_a" in batch:
                emb_a = embed_with_flip(model, spec.name, batch["image_a"].to(device))
                emb_b = embed_with_flip(model, spec.name, batch["image_b"].to(device))
                _check_finite(spec, emb_a, split)
                _check_finite(spec, emb_b, split)
                metric.update_pairs(emb_a.cpu(), emb_b.cpu(), batch["issame"])
                continue
            images = batch["image"].to(device)
            raw = model({size: images}, [spec.name])[spec.name]
            pred = model.decode(spec.name, raw, (size, size))
            values = prediction_tensor(pred)
            _check_finite(spec, values, split)
            metric.update(values.cpu(), batch["target"], batch.get("meta"))
    finally:
        model.train(was_training)
    return checked_results(spec, metric.compute())


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
        raise contract_error(spec, "metrics", f"compute() returned {type(values).__name__}; expected a dict of "
                                              "numbers")
    try:
        return {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise PluginContractError(f"task {spec.name!r} (plugin {plugin_of(spec)!r}): metrics "
                                  f"compute() returned a value that is not a number ({exc})") from None


def _check_finite(spec: TaskSpec, values: torch.Tensor, split: str) -> None:
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise NonFinitePredictionError(f"task {spec.name!r}: the model predicts NaN or infinite values on split "
                                       f"{split!r} (has it diverged?); refusing to score them")


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
        name: evaluate_task(model, spec, roots.get(name), splits.get(name, "test"), batch_size,
                            limits.get(name), progress=progress)
        for name, spec in specs.items()
    }


def primary_value(spec: TaskSpec, metrics: Mapping[str, float]) -> float:
    """The task's primary metric, oriented so that larger is better."""
    key = spec.primary_metric or next(iter(metrics))
    if key not in metrics:
        raise KeyError(f"task {spec.name!r}: primary metric {key!r} not among {sorted(metrics)}")
    value = metrics[key]
    return value if spec.higher_is_better else -value
