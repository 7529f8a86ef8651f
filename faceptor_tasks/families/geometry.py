"""Affine geometry shared by the transforms and the metrics.

Pixel centres sit at integer coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``), as in
:mod:`faceptor_core.model.decode`. Every crop is a 2x3 matrix ``A`` mapping original-image pixel
coordinates to crop pixel coordinates; ``cv2.warpAffine(image, A, (S, S))`` produces the crop and
``invert_affine(A)`` maps predictions back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

#: FaRL's five-point face template (eye centres, nose tip, mouth corners) in [-1, 1] crop coordinates.
FACE_TEMPLATE_5 = np.array(
    [[196.0, 226.0], [316.0, 226.0], [256.0, 286.0], [220.0, 360.4], [292.0, 360.4]], np.float64
) / 256.0 - 1.0


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
    """Whole image -> ``size`` (pixel areas kept: edge ``-0.5`` maps to ``-0.5``)."""
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


def about_centre(size: int, angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)):
    """Rotation (radians) and scaling about the crop centre, then a shift in pixels (2x3)."""
    c = size / 2 - 0.5
    ca, sa = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[ca, -sa, c - ca * c + sa * c + shift[0]], [sa, ca, c - sa * c - ca * c + shift[1]]])


def hflip_matrix(width: int) -> np.ndarray:
    """Mirror of a ``width``-wide image: ``x -> width - 1 - x``."""
    return np.array([[-1.0, 0, width - 1.0], [0, 1.0, 0]])


def random_affine(
    size: int,
    rng: np.random.Generator,
    shift: float = 0.0,
    rotation: float = 0.0,
    scale: float = 0.0,
    normal: bool = False,
    shift_normal: bool | None = None,
) -> np.ndarray:
    """Random rotation (radians), scale (relative) and shift (fraction of ``size``) about the centre.

    ``normal=False`` draws each uniformly in ``[-sigma, sigma]``; ``normal=True`` from ``N(0, sigma)``;
    ``shift_normal`` overrides ``normal`` for the shift (the reference's parsing augmentation draws rotation and
    scale from normals and the shift uniformly).
    """
    def draw(s: float, gaussian: bool) -> float:
        return rng.normal(0.0, abs(s)) if gaussian else rng.uniform(-abs(s), abs(s))

    gaussian_shift = normal if shift_normal is None else shift_normal
    angle = draw(rotation, normal) if rotation else 0.0
    k = 1.0 + (draw(scale, normal) if scale else 0.0)
    tx, ty = (draw(shift, gaussian_shift) * size, draw(shift, gaussian_shift) * size) if shift else (0.0, 0.0)
    return about_centre(size, angle, max(k, 1e-3), (tx, ty))


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``N x 2`` points through a 2x3 matrix (numpy)."""
    m = np.asarray(m, np.float64)
    pts = np.asarray(points, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (numpy)."""
    return np.linalg.inv(to3x3(m))[:2]


def invert_affine_batch(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``B x 2 x 3`` affines (torch, any float dtype)."""
    lin = torch.linalg.inv(m[:, :, :2])
    return torch.cat([lin, -(lin @ m[:, :, 2:])], dim=2)


def apply_affine_batch(points: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``B x N x 2`` points through ``B x 2 x 3`` matrices (torch)."""
    return points @ m[:, :, :2].transpose(1, 2) + m[:, :, 2].unsqueeze(1)


def warp_image(
    image: np.ndarray, m: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR, antialias: bool = True
) -> np.ndarray:
    """Crop/warp ``image`` into ``size x size`` with the 2x3 matrix ``m`` (zeros outside).

    With ``antialias``, a warp that shrinks by more than 2x first area-resizes the image (the overall
    mapping stays ``m``)."""
    m = np.asarray(m, np.float64)
    if antialias and interpolation != cv2.INTER_NEAREST:
        k = math.sqrt(abs(np.linalg.det(m[:, :2])))
        if k < 0.5:
            h, w = image.shape[:2]
            nh, nw = max(1, round(h * 2 * k)), max(1, round(w * 2 * k))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
            m = compose(m, invert_affine(resize_matrix(h, w, (nh, nw))))
    return cv2.warpAffine(image, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flip_points(points: np.ndarray, width: int, permutation: Sequence[int] | None) -> np.ndarray:
    """Landmarks of the mirrored image: x mirrored, then reordered so point ``i`` keeps its meaning."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    return out[list(permutation)] if permutation is not None else out


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``src`` onto ``dst`` (2x3)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    a = (s * d).sum()
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()
    k = max((s**2).sum(), 1e-12)
    ca, sa = a / k, b / k
    lin = np.array([[ca, -sa], [sa, ca]])
    return np.concatenate([lin, (md - lin @ ms)[:, None]], axis=1)


def face_align_matrix(points5: np.ndarray, size: int, face_scale: float = 1.0) -> np.ndarray:
    """Similarity aligning five face points (eyes, nose, mouth corners) to FaRL's template in the crop."""
    target = (FACE_TEMPLATE_5 * face_scale + 1.0) * (size - 1) / 2.0
    return similarity_transform(points5, target)
