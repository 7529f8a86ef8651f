"""Evaluation: each task's metrics on its evaluation split, batched, with the model's decoding."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from .. import predictions as P
from ..model.base import FaceptorBase
from ..spec import TaskSpec


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


def eval_dataset(spec: TaskSpec, root: str | None, split: str, input_size: int, limit: int | None = None):
    if spec.dataset is None:
        raise ValueError(f"task {spec.name!r} supplies no dataset")
    transform = spec.transforms(split, input_size) if spec.transforms is not None else None
    ds = spec.dataset(root, split, transform=transform)
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
) -> dict[str, float]:
    """Run ``spec``'s metrics over its ``split``. Verification tasks (items with ``image_a``/``image_b``)
    are scored on pairs with flip-augmented embeddings."""
    if spec.metrics is None:
        raise ValueError(f"task {spec.name!r} supplies no metrics")
    was_training = model.training
    model.eval()
    size = model.tasks[spec.name].input_size
    ds = eval_dataset(spec, root, split, size, limit)
    metric = spec.metrics(spec)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    device = model.pixel_mean.device
    try:
        for batch in tqdm(loader, desc=f"eval {spec.name}", disable=not progress, leave=False):
            if "image_a" in batch:
                emb_a = embed_with_flip(model, spec.name, batch["image_a"].to(device))
                emb_b = embed_with_flip(model, spec.name, batch["image_b"].to(device))
                metric.update_pairs(emb_a.cpu(), emb_b.cpu(), batch["issame"])
                continue
            images = batch["image"].to(device)
            raw = model({size: images}, [spec.name])[spec.name]
            pred = model.decode(spec.name, raw, (size, size))
            metric.update(prediction_tensor(pred).cpu(), batch["target"], batch.get("meta"))
    finally:
        model.train(was_training)
    return {k: float(v) for k, v in metric.compute().items()}


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
