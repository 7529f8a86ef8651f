"""Faces of a photo before any task runs: where they are (box, five points), how sure, and flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..detect import Detections

#: Flags a face can carry; a flagged face is kept and analysed like any other.
SMALL = "small"  # the box's shorter side is below ``min_face`` pixels
CUT_BY_BORDER = "cut_by_border"  # the box or a point lies outside the photo
BOX_SIDE_PER_FACE = 2.2  # box side estimated from five points, in max(eye distance, eye-mouth distance)


@dataclass(frozen=True)
class Face:
    """One face of a photo: box ``(x1, y1, x2, y2)`` (pixel edges), five points (or None), score (None when
    the face was given), where it came from (``detector``, ``given`` or ``whole_image``) and flags."""

    box: np.ndarray
    points: np.ndarray | None = None
    score: float | None = None
    source: str = "given"
    flags: tuple[str, ...] = field(default=())


def box_from_points(points: np.ndarray) -> np.ndarray:
    """A square face box estimated from five points (about the size of a detector's box): centred between the
    eyes' and the mouth's midpoints, side 2.2 x the larger of the eye distance and the eye-mouth distance."""
    p = np.asarray(points, np.float64)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    side = BOX_SIDE_PER_FACE * max(np.linalg.norm(p[1] - p[0]), np.linalg.norm(mouth - eyes), 1e-3)
    c = (eyes + mouth) / 2
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])


def flag(face: Face, height: int, width: int, min_face: float) -> Face:
    """``face`` with its flags set for a ``height x width`` photo."""
    flags = []
    x1, y1, x2, y2 = face.box
    if min(x2 - x1, y2 - y1) < min_face:
        flags.append(SMALL)
    tol_x, tol_y = 0.02 * (x2 - x1), 0.02 * (y2 - y1)
    outside = x1 < -0.5 - tol_x or y1 < -0.5 - tol_y or x2 > width - 0.5 + tol_x or y2 > height - 0.5 + tol_y
    if face.points is not None:
        p = face.points
        outside |= bool(((p < -0.5) | (p > np.array([width, height]) - 0.5)).any())
    if outside:
        flags.append(CUT_BY_BORDER)
    return Face(face.box, face.points, face.score, face.source, tuple(flags))


def whole_image_face(height: int, width: int) -> Face:
    """The whole photo as one face (a photo that is already a face crop)."""
    return Face(np.array([-0.5, -0.5, width - 0.5, height - 0.5]), None, None, "whole_image")


def from_detections(det: Detections) -> list[Face]:
    pts = det.points
    return [
        Face(
            det.boxes[i].astype(np.float64),
            None if pts is None else pts[i].astype(np.float64),
            float(det.scores[i]),
            "detector",
        )
        for i in range(len(det))
    ]


def parse_face(value: Any, where: str) -> Face:
    """A user's face: ``{"box": [x1, y1, x2, y2], "points": [[x, y] x 5], "score": s}`` (box or points or both),
    a length-4 box or a 5 x 2 array of points. Errors name ``where`` and the field."""
    box = points = score = None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"box", "points", "score"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; a face has 'box', 'points' and 'score'")
        box, points, score = value.get("box"), value.get("points"), value.get("score")
    else:
        arr = np.asarray(value, np.float64)
        if arr.shape == (4,):
            box = arr
        elif arr.shape == (5, 2):
            points = arr
        else:
            raise ValueError(
                f"{where}: a face is a box [x1, y1, x2, y2], five points [[x, y] x 5] or a dict of "
                f"them, got an array of shape {arr.shape}"
            )
    if box is None and points is None:
        raise ValueError(f"{where}: a face needs 'box' or 'points'")
    if points is not None:
        points = _array(points, (5, 2), f"{where}.points", "five [x, y] pairs")
    if box is not None:
        box = _array(box, (4,), f"{where}.box", "[x1, y1, x2, y2]")
        if not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"{where}.box: x2 > x1 and y2 > y1 needed, got {box.tolist()}")
    else:
        box = box_from_points(points)
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.score: expected a number, got {score!r}") from None
    return Face(box, points, score, "given")


def _array(value: Any, shape: tuple[int, ...], where: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {what}, got {value!r}") from None
    if arr.shape != shape:
        raise ValueError(f"{where}: expected {what} (shape {shape}), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: values must be finite")
    return arr


def parse_faces(values: Sequence[Any] | Detections, photo: str) -> list[Face]:
    """A photo's given faces (a list of faces, or :class:`Detections`)."""
    if isinstance(values, Detections):
        return [Face(f.box, f.points, f.score, "given") for f in from_detections(values)]
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{photo}: faces must be a list of faces, got {type(values).__name__}")
    return [parse_face(v, f"{photo}: face {i}") for i, v in enumerate(values)]


def looks_like_face(value: Any) -> bool:
    """Whether ``value`` is one face (rather than a list of faces of one photo)."""
    if isinstance(value, Mapping):
        return True
    try:
        return np.asarray(value, np.float64).shape in ((4,), (5, 2))
    except (TypeError, ValueError):
        return False
