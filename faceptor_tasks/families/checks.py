"""The families' record checks: what makes a record unusable, said once per family so that every reader of
the family (built-in or a plugin's) gets them.

``*_sample`` checks run on a :class:`~faceptor_tasks.families.common.Sample` when a split is read,
``*_item`` checks on a raw item when it is loaded (they need the image). Each returns the reason a record
is rejected, or ``None``; ``build_dataset`` turns a reason into an error naming the annotation line (or a
``skipped`` record with ``skip_invalid``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import LazyTarget, Sample

#: How far outside the image a landmark may lie, in image sizes, before it is an annotation error (points a
#: little outside are real: faces cut by the border).
FAR_OUTSIDE = 1.0


def _box_problem(box: Any) -> str | None:
    if box is None:
        return None
    b = np.asarray(box, np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        return f"face box {tuple(np.round(b.reshape(-1), 2).tolist())} is not four finite numbers"
    if b[2] <= b[0] or b[3] <= b[1]:
        return f"face box {tuple(np.round(b, 2).tolist())} is empty (x2 <= x1 or y2 <= y1)"
    return None


@dataclass(frozen=True)
class LandmarkSample:
    """``num_points x 2`` finite points and a sane box."""

    num_points: int

    def __call__(self, s: Sample) -> str | None:
        pts = np.asarray(s.target, np.float64)
        if pts.shape != (self.num_points, 2):
            return f"expected {self.num_points} x 2 landmarks, got shape {pts.shape}"
        bad = np.flatnonzero(~np.isfinite(pts).all(axis=1))
        if bad.size:
            return f"non-finite landmark(s) {', '.join(map(str, bad[:5].tolist()))} (NaN or infinite coordinates)"
        return _box_problem(s.box)


@dataclass(frozen=True)
class LandmarkItem:
    """No landmark lies more than :data:`FAR_OUTSIDE` image sizes outside the image."""

    margin: float = FAR_OUTSIDE

    def __call__(self, item: dict[str, Any]) -> str | None:
        h, w = item["image"].shape[:2]
        pts = np.asarray(item["target"], np.float64)
        lo = np.array([-self.margin * w, -self.margin * h])
        hi = np.array([(1 + self.margin) * w, (1 + self.margin) * h])
        far = np.flatnonzero(((pts < lo) | (pts > hi)).any(axis=1))
        if far.size:
            k = int(far[0])
            return (
                f"{far.size} landmark(s) far outside the {w} x {h} image (point {k} at "
                f"({pts[k, 0]:.1f}, {pts[k, 1]:.1f})): wrong image or wrong coordinates"
            )
        return None


@dataclass(frozen=True)
class LabelMapItem:
    """Label values are class indices ``0 .. num_classes - 1``."""

    num_classes: int

    def __call__(self, item: dict[str, Any]) -> str | None:
        label = np.asarray(item["target"])
        if label.ndim != 2:
            return f"label map must be H x W, got shape {label.shape}"
        if label.size and int(label.max()) >= self.num_classes:
            bad = np.unique(label[label >= self.num_classes])[:5].tolist()
            return f"label value(s) {', '.join(map(str, bad))} outside the {self.num_classes} classes"
        return None


@dataclass(frozen=True)
class ClassSample:
    """An integer class index ``0 .. num_classes - 1``."""

    num_classes: int

    def __call__(self, s: Sample) -> str | None:
        t = s.target
        if isinstance(t, LazyTarget):
            return None
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            return f"class label {t!r} is not an integer"
        if not 0 <= int(t) < self.num_classes:
            return f"class label {int(t)} outside 0..{self.num_classes - 1}"
        return _box_problem(s.box)


@dataclass(frozen=True)
class AgeSample:
    """A finite age in ``[0, max_age]`` years."""

    max_age: float

    def __call__(self, s: Sample) -> str | None:
        try:
            age = float(s.target)
        except (TypeError, ValueError):
            return f"age {s.target!r} is not a number"
        if not math.isfinite(age) or not 0 <= age <= self.max_age:
            return f"age {age} outside 0..{self.max_age:g}"
        return _box_problem(s.box)


@dataclass(frozen=True)
class AttributeSample:
    """``num_labels`` values, each 0, 1 or -1 (unknown)."""

    num_labels: int

    def __call__(self, s: Sample) -> str | None:
        v = np.asarray(s.target)
        if v.shape != (self.num_labels,):
            return f"expected {self.num_labels} attribute values, got shape {v.shape}"
        if not np.isin(v, (-1, 0, 1)).all():
            return "attribute values must be 0, 1 or -1 (unknown)"
        return _box_problem(s.box)
