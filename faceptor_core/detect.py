"""Face detection as a plugin point: the detector protocol, its declaration and the detection record.

A plugin supplies detectors through the ``register_detectors`` hook (see :mod:`faceptor_core.hookspecs`),
exactly as it supplies tasks::

    @hookimpl
    def register_detectors(register):
        register(DetectorSpec(name="mydet", factory=MyDetector, description="...", license="MIT"))

``factory(**options)`` returns an object with ``detect(image) -> Detections`` for an ``H x W x 3`` uint8 RGB
image. Five points are eye centres, nose tip and mouth corners, image-left first (the order of
:data:`faceptor_core.crop.POINT_NAMES`), in pixels with pixel centres at integers; boxes are
``(x1, y1, x2, y2)`` pixel edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .errors import FaceptorError


class DetectorError(FaceptorError, RuntimeError):
    """A detector that cannot be loaded or broke its contract; the message names it."""


@dataclass(frozen=True)
class Detections:
    """The faces found in one image: ``N x 4`` boxes, ``N`` scores and ``N x 5 x 2`` points (or None)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, np.float32).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        points = None
        if self.points is not None:
            points = np.asarray(self.points, np.float32).reshape(-1, 5, 2)
            if len(points) != len(boxes):
                raise ValueError(f"{len(boxes)} boxes but {len(points)} sets of five points")
        if not (
            np.isfinite(boxes).all() and np.isfinite(scores).all() and (points is None or np.isfinite(points).all())
        ):
            raise ValueError("detections must be finite")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "points", points)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


@runtime_checkable
class Detector(Protocol):
    """What a detector factory returns."""

    def detect(self, image: np.ndarray) -> Detections:
        """Faces of an ``H x W x 3`` uint8 RGB image."""
        ...


class DetectorSpec(BaseModel):
    """Declaration of one detector (what ``register_detectors`` registers)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    factory: Callable[..., Any] = Field(description="factory(**options) -> an object with detect(image)")
    description: str = ""
    license: str = ""
    points: bool = Field(default=True, description="Whether it returns the five points of each face.")


def run_detector(detector: Any, image: np.ndarray, name: str) -> Detections:
    """``detector.detect(image)`` with its contract checked; errors name the detector."""
    try:
        out = detector.detect(image)
    except DetectorError:
        raise
    except Exception as exc:
        raise DetectorError(f"detector {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, Detections):
        raise DetectorError(f"detector {name!r}: detect() must return Detections, got {type(out).__name__}")
    return out


def as_detector(obj: Any, name: str) -> Detector:
    """Check that ``obj`` (a factory's result) has a ``detect`` method."""
    if not callable(getattr(obj, "detect", None)):
        raise DetectorError(f"detector {name!r}: its factory returned {type(obj).__name__}, which has no detect()")
    return obj
