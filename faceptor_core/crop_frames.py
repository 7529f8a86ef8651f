"""Crops of photos and the way back: what a model says about a crop, in the photo's pixels.

:class:`CropFrames` describes where a batch of crops came from (one photo -> crop affine per row, the task's
crop and input size, each photo's size); ``Prediction.face_results`` uses it to map each row's prediction back.
Segmentation is sampled from the logits at the photo pixels (:func:`map_logits`), or, for a plugin's own
label maps, mapped nearest (:func:`map_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .crop import CropSpec, to_crop, to_photo
from .geometry import compose, resize_matrix

#: Sampled logits held at once when parsing is mapped back (classes x pixels), to bound memory.
PARSING_CHUNK = 1 << 22


@dataclass(frozen=True)
class CropFrames:
    """Where rows ``0..N-1`` of a task's output came from.

    ``matrices``: ``N x 2 x 3`` photo pixels -> crop pixels; ``crop``: the task's crop (its tanh warp, if any,
    follows the affine); ``size``: the crop's side in pixels; ``photo_hw``: each row's photo ``(height, width)``;
    ``label_names``: the task's names of its outputs; ``logits``: the task's raw ``N x K x h x w`` segmentation
    logits when the core decoded them (then parsing is sampled from them), else None.
    """

    matrices: np.ndarray
    crop: CropSpec
    size: int
    photo_hw: Sequence[tuple[int, int]]
    label_names: tuple[str, ...] = ()
    logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.matrices)

    def points_to_photo(self, k: int, points: np.ndarray) -> np.ndarray:
        """Row ``k``'s crop pixel points in its photo's pixels."""
        return to_photo(points, self.matrices[k], self.crop, self.size)


def crop_region(
    m: np.ndarray, size: int, height: int, width: int, crop: CropSpec | None = None
) -> tuple[int, int, int, int]:
    """Photo pixels ``(x0, y0, x1, y1)`` (end exclusive) covered by a ``size``-px crop of affine ``m`` (and
    ``crop``'s tanh warp: then its border band reaches far into the photo)."""
    edge = np.linspace(-0.5, size - 0.5, 9)
    border = np.concatenate(
        [
            np.stack([edge, np.full(9, -0.5)], 1),
            np.stack([edge, np.full(9, size - 0.5)], 1),
            np.stack([np.full(9, -0.5), edge], 1),
            np.stack([np.full(9, size - 0.5), edge], 1),
        ]
    )
    pts = to_photo(border, m, crop or CropSpec(), size)
    x0, y0 = (max(0, math.floor(v + 0.5)) for v in pts.min(0))
    x1 = max(0, min(width, math.ceil(pts[:, 0].max() + 0.5)))
    y1 = max(0, min(height, math.ceil(pts[:, 1].max() + 0.5)))
    return x0, y0, max(x0, x1), max(y0, y1)


def map_logits(
    logits: torch.Tensor, m: np.ndarray, size: int, height: int, width: int, crop: CropSpec | None = None
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """A crop's ``K x h x w`` segmentation logits sampled at the photo pixels its crop covers.

    Returns the region, its label map (argmax; 0 outside the crop) and the winning logits (-inf outside; they
    decide between overlapping faces). Sampling follows the decoder's convention (bilinear,
    ``align_corners=False``: the logits are what ``upsample_logits`` gives at every crop pixel, read at the
    photo pixel's crop position; through the tanh warp too when ``crop`` has one).
    """
    crop = crop or CropSpec()
    x0, y0, x1, y1 = crop_region(m, size, height, width, crop)
    rh, rw = y1 - y0, x1 - x0
    labels, conf = np.zeros((rh, rw), np.uint8), np.full((rh, rw), -np.inf, np.float32)
    if rh == 0 or rw == 0:
        return (x0, y0, x1, y1), labels, conf
    k, h, w = logits.shape
    grid = np.ascontiguousarray(logits.detach().float().permute(1, 2, 0).cpu().numpy())  # h x w x K
    m = np.asarray(m, np.float64)
    to_grid = compose(resize_matrix(size, size, (h, w)), m)  # photo pixel -> logit cell
    xs = np.arange(x0, x1, dtype=np.float64)
    step = max(1, PARSING_CHUNK // max(1, k * rw))
    for r0 in range(0, rh, step):
        r1 = min(rh, r0 + step)
        ys = np.arange(y0 + r0, y0 + r1, dtype=np.float64)[:, None]
        if crop.warp_factor > 0:  # photo pixel -> warped crop pixel -> logit cell, then a remap
            gx, gy = np.broadcast_to(xs, (r1 - r0, rw)), np.broadcast_to(ys, (r1 - r0, rw))
            c = to_crop(np.stack([gx.ravel(), gy.ravel()], 1), m, crop, size)
            cx, cy = c[:, 0].reshape(r1 - r0, rw), c[:, 1].reshape(r1 - r0, rw)
            sampled = cv2.remap(
                grid,
                ((cx + 0.5) * w / size - 0.5).astype(np.float32),
                ((cy + 0.5) * h / size - 0.5).astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        else:
            band = compose(to_grid, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0 + r0]]))
            sampled = cv2.warpAffine(
                grid,
                band,
                (rw, r1 - r0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            cx, cy = m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        sampled = torch.from_numpy(sampled.reshape(r1 - r0, rw, k))
        top, lab = sampled.max(dim=2)
        valid = (cx >= -0.5) & (cx <= size - 0.5) & (cy >= -0.5) & (cy <= size - 0.5)
        labels[r0:r1] = np.where(valid, lab.numpy(), 0)
        conf[r0:r1] = np.where(valid, top.numpy(), -np.inf)
    return (x0, y0, x1, y1), labels, conf


def map_labels(
    labels: np.ndarray, m: np.ndarray, size: int, height: int, width: int, crop: CropSpec | None = None
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """A crop label map (from a plugin's own decoder) mapped back, nearest; confidence 0 where labelled."""
    crop = crop or CropSpec()
    x0, y0, x1, y1 = crop_region(m, size, height, width, crop)
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    c = to_crop(np.stack([gx.ravel(), gy.ravel()], 1), m, crop, size).reshape(y1 - y0, x1 - x0, 2)
    back = cv2.remap(
        np.ascontiguousarray(np.asarray(labels, np.uint8)),
        c[..., 0].astype(np.float32),
        c[..., 1].astype(np.float32),
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return (x0, y0, x1, y1), back, np.where(back > 0, 0.0, -np.inf).astype(np.float32)
