"""Affine geometry of crops, shared by the training transforms (in task plugins) and photo inference.

Pixel centres sit at integer coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``), as in
:mod:`faceptor_core.outputs`. Every crop is a 2x3 matrix ``A`` mapping photo pixel coordinates to crop
pixel coordinates; ``cv2.warpAffine(image, A, (S, S))`` produces the crop and ``invert_affine(A)`` maps
predictions back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def to3x3(m: np.ndarray) -> np.ndarray:
    """2x3 affine -> 3x3 homogeneous matrix (float64)."""
    out = np.eye(3)
    out[:2] = np.asarray(m, np.float64).reshape(2, 3)
    return out


def compose(*mats: np.ndarray) -> np.ndarray:
    """``compose(A, B, C)`` applies ``C`` first, then ``B``, then ``A``; returns 2x3 float64."""
    out = np.eye(3)
    for m in mats:
        out = out @ to3x3(m)
    return out[:2]


def resize_matrix(height: int, width: int, size: int | tuple[int, int]) -> np.ndarray:
    """Whole image -> ``size`` (an int, or ``(height, width)``), pixel areas kept: edge ``-0.5`` maps to
    ``-0.5``."""
    oh, ow = (size, size) if isinstance(size, int) else size
    sx, sy = ow / width, oh / height
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])


def square_box(box: Sequence[float]) -> np.ndarray:
    """``(x1, y1, x2, y2)`` grown about its centre to a square on its longer side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def box_to_crop(box: Sequence[float], size: int, scale: float = 1.0, square: bool = True) -> np.ndarray:
    """Matrix mapping ``box`` (pixel edges) onto an ``size x size`` crop; ``scale < 1`` zooms out about
    the centre (the box then fills ``scale`` of the crop)."""
    x1, y1, x2, y2 = square_box(box) if square else np.asarray(box, np.float64)
    w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
    sx, sy = size / w * scale, size / h * scale
    c = size / 2 - 0.5
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[sx, 0, c - sx * cx], [0, sy, c - sy * cy]])


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``... x 2`` points through a 2x3 matrix (numpy, float64)."""
    m = np.asarray(m, np.float64)
    pts = np.asarray(points, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (numpy)."""
    return np.linalg.inv(to3x3(m))[:2]


def affine_scale(m: np.ndarray) -> float:
    """Mean linear scale of a 2x3 affine (``sqrt |det|``): crop pixels per photo pixel."""
    return math.sqrt(abs(float(np.linalg.det(np.asarray(m, np.float64)[:, :2]))))


def warp_image(
    image: np.ndarray, m: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR, antialias: bool = True
) -> np.ndarray:
    """Crop/warp ``image`` into ``size x size`` with the 2x3 matrix ``m`` (zeros outside).

    With ``antialias``, a warp that shrinks by more than 2x first area-resizes the image (the overall
    mapping stays ``m``)."""
    m = np.asarray(m, np.float64)
    if antialias and interpolation != cv2.INTER_NEAREST:
        k = affine_scale(m)
        if k < 0.5:
            h, w = image.shape[:2]
            nh, nw = max(1, round(h * 2 * k)), max(1, round(w * 2 * k))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            m = compose(m, invert_affine(resize_matrix(h, w, (nh, nw))))
    return cv2.warpAffine(image, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def unwarp_labels(labels: np.ndarray, m: np.ndarray, height: int, width: int, fill: int = 0) -> np.ndarray:
    """Map a crop label map back to the ``height x width`` original with the inverse of ``m`` (nearest)."""
    return cv2.warpAffine(
        np.ascontiguousarray(labels.astype(np.uint8)),
        np.asarray(m, np.float64),
        (width, height),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) mapping ``src`` onto ``dst``
    (2x3); the solution of MATLAB's ``cp2tform(..., 'nonreflective similarity')`` and scikit-image's
    ``SimilarityTransform.estimate``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    a = (s * d).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()
    k = max((s**2).sum(), 1e-12)
    ca, sa = a / k, b / k
    lin = np.array([[ca, -sa], [sa, ca]])
    return np.concatenate([lin, (md - lin @ ms)[:, None]], axis=1)
