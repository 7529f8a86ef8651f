"""What :func:`faceptor_core.analyze` returns: per photo its faces, each with every task's result in photo
coordinates, and photo-sized parsing maps. ``to_json()`` gives the parts of the prediction record
(:mod:`faceptor_core.photo.records`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..task_results import (  # noqa: F401  (one face's result of one task: defined in the core, named here too)
    AgeResult,
    ClassificationResult,
    CustomResult,
    EmbeddingResult,
    LandmarksResult,
    MultilabelResult,
    ParsingResult,
    RegressionResult,
    TaskResult,
)
from .faces import Face


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
