"""Affine geometry of the transforms and the metrics: the core's crop geometry
(:mod:`faceptor_core.geometry`, re-exported here) plus augmentation matrices, flips and batched maps.

Pixel centres sit at integer coordinates (pixel ``i`` spans ``[i - 0.5, i + 0.5]``); every crop is a 2x3
matrix mapping original-image pixel coordinates to crop pixel coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from faceptor_core.geometry import (  # noqa: F401  (re-exported: the families' geometry in one place)
    affine_scale,
    apply_affine,
    box_to_crop,
    compose,
    invert_affine,
    resize_matrix,
    similarity_transform,
    square_box,
    to3x3,
    unwarp_labels,
    warp_image,
)

#: FaRL's five-point face template (eye centres, nose tip, mouth corners) in [-1, 1] crop coordinates.
FACE_TEMPLATE_5 = (
    np.array([[196.0, 226.0], [316.0, 226.0], [256.0, 286.0], [220.0, 360.4], [292.0, 360.4]], np.float64) / 256.0 - 1.0
)


def about_centre(size: int, angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)):
    """Rotation (radians) and scaling about the crop centre, then a shift in pixels (2x3)."""
    c = size / 2 - 0.5
    ca, sa = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[ca, -sa, c - ca * c + sa * c + shift[0]], [sa, ca, c - sa * c - ca * c + shift[1]]])


def hflip_matrix(width: int) -> np.ndarray:
    """Mirror of a ``width``-wide image: ``x -> width - 1 - x``."""
    return np.array([[-1.0, 0, width - 1.0], [0, 1.0, 0]])


def random_hflip(
    m: np.ndarray, size: int, rng: np.random.Generator, enabled: bool = True, p: float = 0.5
) -> tuple[np.ndarray, bool]:
    """With probability ``p`` (when ``enabled``; nothing is drawn otherwise) mirror the crop ``m`` of a
    ``size``-wide crop: returns the new matrix and whether it flipped. The caller then applies the task's flip rule
    to the labels (``LabelFlip.relabel``): the geometry of points and label maps follows the matrix."""
    if enabled and rng.random() < p:
        return compose(hflip_matrix(size), m), True
    return m, False


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


def invert_affine_batch(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``B x 2 x 3`` affines (torch, any float dtype)."""
    lin = torch.linalg.inv(m[:, :, :2])
    return torch.cat([lin, -(lin @ m[:, :, 2:])], dim=2)


def apply_affine_batch(points: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``B x N x 2`` points through ``B x 2 x 3`` matrices (torch)."""
    return points @ m[:, :, :2].transpose(1, 2) + m[:, :, 2].unsqueeze(1)


def flip_points(points: np.ndarray, width: int, permutation: Sequence[int] | None) -> np.ndarray:
    """Landmarks of the mirrored image: x mirrored, then reordered so point ``i`` keeps its meaning."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 0] = width - 1 - out[:, 0]
    return out[list(permutation)] if permutation is not None else out


def face_align_matrix(points5: np.ndarray, size: int, face_scale: float = 1.0) -> np.ndarray:
    """Similarity aligning five face points (eyes, nose, mouth corners) to FaRL's template in the crop."""
    target = (FACE_TEMPLATE_5 * face_scale + 1.0) * (size - 1) / 2.0
    return similarity_transform(points5, target)
