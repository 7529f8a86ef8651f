"""Typed, decoded predictions returned by ``model.predict``; one class per output kind.

Every prediction holds a batch; ``item(i)`` gives a JSON-ready dict for image ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Prediction:
    task: str

    def item(self, i: int) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class LandmarkPrediction(Prediction):
    points: torch.Tensor  # B x N x 2 pixel (x, y) in the given images
    def item(self, i: int) -> dict[str, Any]:
        return {"landmarks": self.points[i].tolist()}


@dataclass(frozen=True)
class ParsingPrediction(Prediction):
    labels: torch.Tensor | list[torch.Tensor]  # B x H x W int64 class index (a list for images of different sizes)
    label_names: tuple[str, ...] = ()

    def item(self, i: int) -> dict[str, Any]:
        counts = torch.bincount(self.labels[i].flatten(), minlength=max(len(self.label_names), 1))
        names = self.label_names or tuple(str(k) for k in range(len(counts)))
        return {"class_pixels": {names[k]: int(c) for k, c in enumerate(counts.tolist()) if c}}


@dataclass(frozen=True)
class AgePrediction(Prediction):
    age: torch.Tensor  # B years
    distribution: torch.Tensor  # B x K

    def item(self, i: int) -> dict[str, Any]:
        return {"age": float(self.age[i])}


@dataclass(frozen=True)
class ClassificationPrediction(Prediction):
    probabilities: torch.Tensor  # B x K
    label_names: tuple[str, ...] = ()

    @property
    def labels(self) -> torch.Tensor:
        return self.probabilities.argmax(dim=-1)

    def item(self, i: int) -> dict[str, Any]:
        k = int(self.labels[i])
        name = self.label_names[k] if self.label_names else str(k)
        return {"label": name, "index": k, "probabilities": self.probabilities[i].tolist()}


@dataclass(frozen=True)
class MultilabelPrediction(Prediction):
    probabilities: torch.Tensor  # B x K
    label_names: tuple[str, ...] = ()

    def item(self, i: int) -> dict[str, Any]:
        names = self.label_names or tuple(str(k) for k in range(self.probabilities.shape[-1]))
        return {"probabilities": dict(zip(names, self.probabilities[i].tolist(), strict=True))}


@dataclass(frozen=True)
class RegressionPrediction(Prediction):
    values: torch.Tensor  # B x K
    names: tuple[str, ...] = ()

    def item(self, i: int) -> dict[str, Any]:
        names = self.names or tuple(str(k) for k in range(self.values.shape[-1]))
        return {"values": dict(zip(names, self.values[i].tolist(), strict=True))}


@dataclass(frozen=True)
class EmbeddingPrediction(Prediction):
    embedding: torch.Tensor  # B x D, L2-normalised
    extra: dict = field(default_factory=dict)

    def item(self, i: int) -> dict[str, Any]:
        return {"embedding": self.embedding[i].tolist()}
