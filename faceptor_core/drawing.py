"""Drawing primitives shared by predictions, per-face results and the pictures of :mod:`faceptor_core.viz`
(Pillow and NumPy only)."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw


def palette(n: int) -> np.ndarray:
    """``n x 3`` uint8 distinct colours; class 0 (background) is black."""
    colours = [(0, 0, 0)]
    for k in range(1, n):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours[:n], dtype=np.uint8)


def overlay_parsing(
    image: np.ndarray, labels: np.ndarray, num_classes: int | None = None, alpha: float = 0.5
) -> np.ndarray:
    """Blend class colours over ``image`` (H x W x 3 uint8); background stays as it is."""
    n = int(num_classes or labels.max() + 1)
    colours = palette(max(n, 2))[labels.clip(0, n - 1)]
    mask = (labels > 0)[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return np.where(mask, blended, image).astype(np.uint8)


def draw_landmarks(img: Image.Image, points: np.ndarray, colour=(0, 255, 0), radius: float | None = None) -> None:
    """Draw points (N x 2 pixel coordinates, pixel centres at integers) onto ``img`` in place."""
    d = ImageDraw.Draw(img)
    r = radius if radius is not None else max(1.0, min(img.size) / 80)
    for x, y in np.asarray(points, dtype=np.float64):
        d.ellipse([x - r + 0.5, y - r + 0.5, x + r + 0.5, y + r + 0.5], fill=colour)


def scaled_points(points: np.ndarray, scale: float) -> np.ndarray:
    """Pixel coordinates (centres at integers) of an image drawn ``scale`` times larger."""
    return (np.asarray(points, np.float64) + 0.5) * scale - 0.5
