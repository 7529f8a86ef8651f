"""Head pose of SynthFaces: where and how the canonical face is placed in the image.

The renderer draws a flat face relief, so its pose has two angles and no pitch:

- **yaw**: an orthographic turn about the vertical axis of a relief (a half-cylinder head plus a nose bump,
  :func:`depth`): ``x' = x cos(yaw) + depth(x, y) sin(yaw)``; points move sideways only and nothing hides
  anything (no self-occlusion, no ears). Positive yaw moves the nose tip (the deepest point) towards the
  image right, more than the face outline: the face turns towards the image right (the subject's left).
- **roll**: an in-plane rotation about the image centre. With y pointing down, positive roll turns the face
  clockwise as seen in the image: the image-right eye drops below the image-left one, and the angle of the
  line from outer eye corner 36 to 45 (``atan2(dy, dx)`` in pixels) equals the roll.

A horizontal image flip is rendered exactly by :meth:`HeadPose.mirrored` (yaw and roll change sign, the
scale stays, the horizontal shift changes sign).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .curves import pairs

Array = np.ndarray
#: Names and order of the angles in :meth:`HeadPose.angles` (the dataset's ``head_pose`` target).
POSE_ANGLES = ("yaw", "roll")


@dataclass(frozen=True)
class HeadPose:
    """The placement of one face: angles in radians (see the module docstring for their signs), ``scale``
    (1: a jaw 0.6 of the image wide) and ``shift`` of the face centre in pixels (x right, y down)."""

    yaw: float
    roll: float
    scale: float
    shift: tuple[float, float]

    def angles(self) -> Array:
        """``(yaw, roll)`` in degrees, float32 (the ``head_pose`` target)."""
        return np.array([math.degrees(self.yaw), math.degrees(self.roll)], np.float32)

    def mirrored(self) -> HeadPose:
        """The pose of the horizontally flipped image: yaw and roll negated, horizontal shift negated."""
        return HeadPose(-self.yaw, -self.roll, self.scale, (-self.shift[0], self.shift[1]))

    def as_dict(self) -> dict[str, float | tuple[float, float]]:
        """The render parameters (the ``pose`` target): ``roll`` and ``yaw_squash`` in radians, ``scale``,
        ``shift`` in pixels."""
        return {"roll": self.roll, "scale": self.scale, "shift": self.shift, "yaw_squash": self.yaw}


def depth(points: Array) -> Array:
    """A head-shaped depth profile used by the yaw turn: a half-cylinder plus a nose bump (towards the viewer)."""
    x, y = points[:, 0], points[:, 1]
    z = 0.55 * np.sqrt(np.maximum(1 - (x * (1 / 1.1)) ** 2, 0))
    return z + 0.22 * np.exp(-((x * (1 / 0.14)) ** 2) - ((y - 0.2) * (1 / 0.3)) ** 2)


def pose_transform(size: int, pose: HeadPose, unit: float = 0.3, y_offset: float = 0.0, offset: float = 0.0):
    """The map canonical (N x 2) -> pixel coordinates (pixel centres at integers, plus ``offset``).

    Yaw turn ``x' = x cos(yaw) + depth(x, y) sin(yaw)``; then scale (``unit`` image sides per canonical unit
    at scale 1), in-plane rotation by ``roll`` about the image centre and the shift; canonical
    ``y = y_offset`` lands on the image centre row.
    """
    u = unit * size * pose.scale
    c, s = np.cos(pose.roll), np.sin(pose.roll)
    cx, cy = (size - 1) / 2 + pose.shift[0] + offset, (size - 1) / 2 + pose.shift[1] + offset
    cyaw, syaw = np.cos(pose.yaw), np.sin(pose.yaw)

    def apply(points: Array) -> Array:
        p = np.asarray(points, np.float64)
        x = p[:, 0] * cyaw + depth(p) * syaw
        y = p[:, 1] - y_offset
        return pairs(cx + u * (c * x - s * y), cy + u * (s * x + c * y))

    return apply
