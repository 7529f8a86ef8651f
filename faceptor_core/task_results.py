"""One face's result of one task, in photo coordinates: what :func:`faceptor_core.analyze` puts in
``FaceResult.tasks``. Each result knows its JSON form (``to_json``: the ``faces[].tasks`` entries of the
prediction record, :mod:`faceptor_core.photo.records`), its one-line summary and how to draw itself on a photo.

Predictions (:mod:`faceptor_core.predictions`) make them: ``Prediction.face_results`` maps a batch of crops'
predictions back to the photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .drawing import draw_landmarks, scaled_points


class FaceTaskResult:
    """What every per-face result offers besides its fields."""

    kind = "custom"

    def to_json(self, **_: Any) -> dict[str, Any]:  # pragma: no cover - every result overrides it
        raise NotImplementedError

    def summary(self) -> str | None:
        """One line with the value and its unit (None: nothing to say in a line)."""
        return None

    def draw(self, img: Image.Image, scale: float, face_width: float) -> None:
        """Draw onto ``img`` (the photo drawn ``scale`` times larger); a face ``face_width`` px wide there."""


def _floats(a: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


@dataclass(frozen=True)
class LandmarksResult(FaceTaskResult):
    """Landmarks in photo pixels (``N x 2``, pixel centres at integers)."""

    points: np.ndarray
    names: tuple[str, ...] = ()
    kind = "landmarks"

    def to_json(self, **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "unit": "px", "points": _floats(self.points, 3)}
        if self.names:
            out["names"] = list(self.names)
        return out

    def summary(self) -> str:
        return f"{len(self.points)} points (px)"

    def draw(self, img: Image.Image, scale: float, face_width: float) -> None:
        draw_landmarks(img, scaled_points(self.points, scale), colour=(0, 255, 0), radius=max(1.0, face_width / 120))


@dataclass(frozen=True)
class ParsingResult(FaceTaskResult):
    """The face's label map over ``region`` (``x0, y0, x1, y1``, photo pixels, end exclusive): what the task
    predicts there from this face's crop (0 outside the crop)."""

    region: tuple[int, int, int, int]
    labels: np.ndarray
    label_names: tuple[str, ...] = ()
    #: The winning logit at each pixel of ``region`` (-inf outside the crop; 0 where a plugin's own decoding
    #: labelled it): decides between overlapping faces in the photo-wide map. Not part of the record.
    confidence: np.ndarray | None = field(default=None, repr=False, compare=False)
    kind = "parsing"

    def mask(self, height: int, width: int) -> np.ndarray:
        """The face's photo-sized label map (0 outside its region)."""
        out = np.zeros((height, width), np.uint8)
        x0, y0, x1, y1 = self.region
        out[y0:y1, x0:x1] = self.labels
        return out

    def class_pixels(self) -> dict[str, int]:
        """Pixels of each class but the background (class 0)."""
        k = max(len(self.label_names), int(self.labels.max(initial=0)) + 1)
        counts = np.bincount(self.labels.ravel(), minlength=k)
        names = self.label_names or tuple(str(i) for i in range(k))
        return {names[i]: int(c) for i, c in enumerate(counts) if c and i != 0}

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "region": list(self.region), "class_pixels": self.class_pixels()}

    def summary(self) -> str:
        return f"{sum(self.class_pixels().values())} face px"


@dataclass(frozen=True)
class AgeResult(FaceTaskResult):
    """Expected age in years and the distribution over ages ``0..K-1``."""

    age: float
    distribution: np.ndarray
    kind = "age"

    def to_json(self, **_: Any) -> dict[str, Any]:
        p = np.asarray(self.distribution, np.float64)
        std = float(np.sqrt((p * (np.arange(len(p)) - self.age) ** 2).sum()))
        return {"kind": self.kind, "unit": "years", "age": round(float(self.age), 3), "std": round(std, 3)}

    def summary(self) -> str:
        return f"{self.age:.1f} years"


@dataclass(frozen=True)
class ClassificationResult(FaceTaskResult):
    """One class out of several, with every class's probability."""

    label: str
    index: int
    probabilities: dict[str, float]
    kind = "classification"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "index": self.index,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
        }

    def summary(self) -> str:
        return f"{self.label} (p={self.probabilities[self.label]:.2f})"


@dataclass(frozen=True)
class MultilabelResult(FaceTaskResult):
    """Independent labels with their probabilities; ``positive`` are those at or above ``threshold``."""

    probabilities: dict[str, float]
    threshold: float = 0.5
    kind = "multilabel"

    @property
    def positive(self) -> list[str]:
        return [k for k, v in self.probabilities.items() if v >= self.threshold]

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "positive": self.positive,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
        }

    def summary(self) -> str:
        on = self.positive
        return f"{', '.join(on[:5]) or '-'}{' ...' if len(on) > 5 else ''}"


@dataclass(frozen=True)
class RegressionResult(FaceTaskResult):
    """Raw values by name (units as the task defines them)."""

    values: dict[str, float]
    kind = "regression"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "values": {k: round(v, 6) for k, v in self.values.items()}}

    def summary(self) -> str:
        return ", ".join(f"{k}={v:.3g}" for k, v in list(self.values.items())[:4])


@dataclass(frozen=True)
class EmbeddingResult(FaceTaskResult):
    """An L2-normalised identity embedding (compare two faces by their dot product)."""

    embedding: np.ndarray
    kind = "embedding"

    def to_json(self, embeddings: bool = True, **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "dim": int(self.embedding.shape[-1])}
        if embeddings:
            out["embedding"] = _floats(self.embedding)
        return out

    def summary(self) -> str:
        return f"{self.embedding.shape[-1]}-d embedding"


@dataclass(frozen=True)
class CustomResult(FaceTaskResult):
    """A task decoded by its plugin's own ``decode``: its JSON item, in crop coordinates."""

    value: dict[str, Any]
    kind = "custom"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "frame": "crop", "value": self.value}


TaskResult = (
    LandmarksResult
    | ParsingResult
    | AgeResult
    | ClassificationResult
    | MultilabelResult
    | RegressionResult
    | EmbeddingResult
    | CustomResult
)
