"""What :func:`faceptor_core.analyze` returns: per photo its faces, each with every task's result in photo
coordinates, and photo-sized parsing maps. ``to_json()`` gives the parts of the prediction record
(:mod:`faceptor_core.photo.records`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .faces import Face


def _floats(a: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


@dataclass(frozen=True)
class LandmarksResult:
    """Landmarks in photo pixels (``N x 2``, pixel centres at integers)."""

    points: np.ndarray
    names: tuple[str, ...] = ()
    kind = "landmarks"

    def to_json(self, **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "unit": "px", "points": _floats(self.points, 3)}
        if self.names:
            out["names"] = list(self.names)
        return out


@dataclass(frozen=True)
class ParsingResult:
    """The face's label map over ``region`` (``x0, y0, x1, y1``, photo pixels, end exclusive): what the task
    predicts there from this face's crop (0 outside the crop)."""

    region: tuple[int, int, int, int]
    labels: np.ndarray
    label_names: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class AgeResult:
    """Expected age in years and the distribution over ages ``0..K-1``."""

    age: float
    distribution: np.ndarray
    kind = "age"

    def to_json(self, **_: Any) -> dict[str, Any]:
        p = np.asarray(self.distribution, np.float64)
        std = float(np.sqrt((p * (np.arange(len(p)) - self.age) ** 2).sum()))
        return {"kind": self.kind, "unit": "years", "age": round(float(self.age), 3), "std": round(std, 3)}


@dataclass(frozen=True)
class ClassificationResult:
    """One class out of several, with every class's probability."""

    label: str
    index: int
    probabilities: dict[str, float]
    kind = "classification"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "index": self.index,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class MultilabelResult:
    """Independent labels with their probabilities; ``positive`` are those at or above ``threshold``."""

    probabilities: dict[str, float]
    threshold: float = 0.5
    kind = "multilabel"

    @property
    def positive(self) -> list[str]:
        return [k for k, v in self.probabilities.items() if v >= self.threshold]

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": self.threshold, "positive": self.positive,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class RegressionResult:
    """Raw values by name (units as the task defines them)."""

    values: dict[str, float]
    kind = "regression"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "values": {k: round(v, 6) for k, v in self.values.items()}}


@dataclass(frozen=True)
class EmbeddingResult:
    """An L2-normalised identity embedding (compare two faces by their dot product)."""

    embedding: np.ndarray
    kind = "embedding"

    def to_json(self, embeddings: bool = True, **_: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "dim": int(self.embedding.shape[-1])}
        if embeddings:
            out["embedding"] = _floats(self.embedding)
        return out


@dataclass(frozen=True)
class CustomResult:
    """A task decoded by its plugin's own ``decode``: its JSON item, in crop coordinates."""

    value: dict[str, Any]
    kind = "custom"

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"kind": self.kind, "frame": "crop", "value": self.value}


TaskResult = (LandmarksResult | ParsingResult | AgeResult | ClassificationResult | MultilabelResult
              | RegressionResult | EmbeddingResult | CustomResult)


@dataclass
class FaceResult:
    """One face: where it is (see :class:`~faceptor_core.photo.faces.Face`), each task's result, and each
    task's crop (2x3 affine, photo pixels -> crop pixels)."""

    index: int
    face: Face
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def box(self) -> np.ndarray:
        return self.face.box

    @property
    def points(self) -> np.ndarray | None:
        return self.face.points

    @property
    def score(self) -> float | None:
        return self.face.score

    @property
    def flags(self) -> tuple[str, ...]:
        return self.face.flags

    def __getitem__(self, task: str) -> TaskResult:
        return self.tasks[task]


@dataclass
class PhotoParsing:
    """A parsing task over the whole photo: ``labels`` (H x W class indices) and ``faces`` (H x W index of the
    face each labelled pixel belongs to, -1 for none). Where faces overlap, the face with the higher winning
    logit there wins."""

    labels: np.ndarray
    faces: np.ndarray
    label_names: tuple[str, ...] = ()


@dataclass
class PhotoResult:
    """One photo: its name and size, its faces (possibly none), photo-sized parsing maps by task (for photos
    with at least one face), where the faces came from (a detector's name, ``given`` or ``whole_image``) and
    timings in seconds (``align``, ``model`` and ``map`` are shared by the photos of one call)."""

    name: str
    height: int
    width: int
    faces: list[FaceResult]
    parsing: dict[str, PhotoParsing] = field(default_factory=dict)
    faces_from: str = "detector"
    timings: dict[str, float] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()  # the tasks that were run

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self):
        return iter(self.faces)

    def __getitem__(self, i: int) -> FaceResult:
        return self.faces[i]
