"""Typed, decoded predictions returned by ``model.predict``; one class per output kind.

Every prediction holds a batch and knows its own forms:

- ``tensor()``: what a metric scores (points, labels, ages, probabilities, values, embeddings);
- ``item(i)``: a JSON-ready dict for image ``i`` (in the given image's pixels);
- ``face_results(frames)``: one per-face result per row, mapped back to the photos the rows were cropped from
  (:class:`~faceptor_core.task_results.FaceTaskResult`, whose ``to_json`` is the prediction record's entry);
- ``caption(i)`` and ``draw(img, i, scale)``: how image ``i``'s prediction appears on a picture.

Which prediction each output kind decodes to is the table :data:`faceptor_core.outputs.OUTPUTS`. A plugin's own
``decode`` may return any subclass of :class:`Prediction`; the defaults then give its ``item(i)`` as a custom
per-face result and draw nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from .crop_frames import CropFrames, map_labels, map_logits
from .drawing import draw_landmarks, overlay_parsing, scaled_points
from .task_results import (
    AgeResult,
    ClassificationResult,
    CustomResult,
    EmbeddingResult,
    FaceTaskResult,
    LandmarksResult,
    MultilabelResult,
    ParsingResult,
    RegressionResult,
)


def _names(names: tuple[str, ...], k: int) -> tuple[str, ...]:
    return tuple(names) if len(names) == k else tuple(str(i) for i in range(k))


@dataclass(frozen=True)
class Prediction:
    task: str

    #: Drawing order on a picture: area fills (0) go under marks and points (1).
    layer: ClassVar[int] = 1

    def item(self, i: int) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def tensor(self) -> torch.Tensor:
        """The tensor a metric scores (a plugin's own prediction has none unless it says so)."""
        raise TypeError(
            f"task {self.task!r}: a {type(self).__name__} has no metric tensor; give it a tensor() "
            "method or let the metric take the raw output (takes_raw_output = True)"
        )

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        """Each row's result in its photo's coordinates (default: its ``item`` as a custom result, in crop
        coordinates)."""
        return [CustomResult(self.item(k)) for k in range(len(frames))]

    def caption(self, i: int) -> str | None:
        """One line describing image ``i``'s prediction (None: nothing to write)."""
        return None

    def draw(self, img: Image.Image, i: int, scale: int = 1) -> Image.Image:
        """Image ``i``'s prediction drawn on ``img`` (image ``i`` drawn ``scale`` times larger)."""
        return img


@dataclass(frozen=True)
class LandmarkPrediction(Prediction):
    points: torch.Tensor  # B x N x 2 pixel (x, y) in the given images

    def item(self, i: int) -> dict[str, Any]:
        return {"landmarks": self.points[i].tolist()}

    def tensor(self) -> torch.Tensor:
        return self.points

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        pts = self.points.detach().double().cpu().numpy()
        return [LandmarksResult(frames.points_to_photo(k, pts[k]), frames.label_names) for k in range(len(frames))]

    def draw(self, img: Image.Image, i: int, scale: int = 1) -> Image.Image:
        draw_landmarks(img, scaled_points(self.points[i].detach().cpu().numpy(), scale))
        return img


@dataclass(frozen=True)
class ParsingPrediction(Prediction):
    labels: torch.Tensor | list[torch.Tensor]  # B x H x W int64 class index (a list for images of different sizes)
    label_names: tuple[str, ...] = ()
    layer: ClassVar[int] = 0

    def item(self, i: int) -> dict[str, Any]:
        counts = torch.bincount(self.labels[i].flatten(), minlength=max(len(self.label_names), 1))
        names = self.label_names or tuple(str(k) for k in range(len(counts)))
        return {"class_pixels": {names[k]: int(c) for k, c in enumerate(counts.tolist()) if c}}

    def tensor(self) -> torch.Tensor:
        if not isinstance(self.labels, torch.Tensor):
            raise TypeError(f"task {self.task!r}: label maps of different sizes have no single metric tensor")
        return self.labels

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        """The core's own decoding is sampled from the logits at the photo pixels; a plugin's label maps are
        mapped nearest."""
        names = tuple(self.label_names) or frames.label_names
        out: list[FaceTaskResult] = []
        for k, (h, w) in enumerate(frames.photo_hw):
            m = frames.matrices[k]
            if frames.logits is not None:
                region, labels, conf = map_logits(frames.logits[k], m, frames.size, h, w, frames.crop)
            else:
                region, labels, conf = map_labels(self.labels[k].cpu().numpy(), m, frames.size, h, w, frames.crop)
            out.append(ParsingResult(region, labels, names, conf))
        return out

    def draw(self, img: Image.Image, i: int, scale: int = 1) -> Image.Image:
        labels = self.labels[i].cpu().numpy()
        if scale != 1:
            labels = labels.repeat(scale, axis=0).repeat(scale, axis=1)
        return Image.fromarray(overlay_parsing(np.asarray(img.convert("RGB")), labels, len(self.label_names) or None))


@dataclass(frozen=True)
class AgePrediction(Prediction):
    age: torch.Tensor  # B years
    distribution: torch.Tensor  # B x K

    def item(self, i: int) -> dict[str, Any]:
        return {"age": float(self.age[i])}

    def tensor(self) -> torch.Tensor:
        return self.age

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        return [AgeResult(float(self.age[k]), self.distribution[k].cpu().numpy()) for k in range(len(frames))]

    def caption(self, i: int) -> str:
        return f"{float(self.age[i]):.1f} y"


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

    def tensor(self) -> torch.Tensor:
        return self.probabilities

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        probs = self.probabilities.cpu().numpy()
        names = _names(self.label_names, probs.shape[1])
        return [
            ClassificationResult(
                names[int(probs[k].argmax())],
                int(probs[k].argmax()),
                dict(zip(names, map(float, probs[k]), strict=True)),
            )
            for k in range(len(frames))
        ]

    def caption(self, i: int) -> str:
        k = int(self.labels[i])
        label = self.label_names[k] if self.label_names else str(k)
        return f"{label} ({float(self.probabilities[i, k]):.2f})"


@dataclass(frozen=True)
class MultilabelPrediction(Prediction):
    probabilities: torch.Tensor  # B x K
    label_names: tuple[str, ...] = ()

    def item(self, i: int) -> dict[str, Any]:
        names = self.label_names or tuple(str(k) for k in range(self.probabilities.shape[-1]))
        return {"probabilities": dict(zip(names, self.probabilities[i].tolist(), strict=True))}

    def tensor(self) -> torch.Tensor:
        return self.probabilities

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        probs = self.probabilities.cpu().numpy()
        names = _names(self.label_names, probs.shape[1])
        return [MultilabelResult(dict(zip(names, map(float, probs[k]), strict=True))) for k in range(len(frames))]

    def caption(self, i: int) -> str:
        on = [n for n, p in zip(self.label_names, self.probabilities[i].tolist(), strict=False) if p > 0.5]
        return ", ".join(on[:4]) or "-"


@dataclass(frozen=True)
class RegressionPrediction(Prediction):
    values: torch.Tensor  # B x K
    names: tuple[str, ...] = ()

    def item(self, i: int) -> dict[str, Any]:
        names = self.names or tuple(str(k) for k in range(self.values.shape[-1]))
        return {"values": dict(zip(names, self.values[i].tolist(), strict=True))}

    def tensor(self) -> torch.Tensor:
        return self.values

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        vals = self.values.cpu().numpy()
        names = _names(self.names, vals.shape[1])
        return [RegressionResult(dict(zip(names, map(float, vals[k]), strict=True))) for k in range(len(frames))]

    def caption(self, i: int) -> str:
        return ", ".join(f"{v:.2f}" for v in self.values[i].tolist()[:4])


@dataclass(frozen=True)
class EmbeddingPrediction(Prediction):
    embedding: torch.Tensor  # B x D, L2-normalised
    extra: dict = field(default_factory=dict)

    def item(self, i: int) -> dict[str, Any]:
        return {"embedding": self.embedding[i].tolist()}

    def tensor(self) -> torch.Tensor:
        return self.embedding

    def face_results(self, frames: CropFrames) -> list[FaceTaskResult]:
        emb = self.embedding.cpu().numpy()
        return [EmbeddingResult(emb[k]) for k in range(len(frames))]
