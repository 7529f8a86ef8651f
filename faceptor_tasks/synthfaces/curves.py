"""Curve primitives of SynthFaces' canonical face frame and the fixed curve parameters of each part.

Each part's landmarks are samples of its curve at fixed parameters, listed first in each array below, and
its polygon is a dense sampling of the same curve (the rest of the array).
"""

from __future__ import annotations

import numpy as np

from .identity import Identity

Array = np.ndarray
#: Inner mouth corners, as a fraction of the mouth half-width.
MOUTH_INNER_CORNER = 0.88
_IC = MOUTH_INNER_CORNER

# curve parameters: landmark samples first, then the dense polygon samples
U_EYE_UP = np.concatenate([[-1.0, -1 / 3, 1 / 3, 1.0], np.linspace(-1, 1, 13)])
U_EYE_LO = np.concatenate([[1 / 3, -1 / 3], np.linspace(1, -1, 13)[1:-1]])
P_EYE_UP = (1 - U_EYE_UP**2) ** 0.6
P_EYE_LO = (1 - U_EYE_LO**2) ** 0.75
V_BROW = np.concatenate([np.linspace(0, 1, 5), np.linspace(0, 1, 11)])
U_OUT = np.concatenate(
    [[-1.0, -0.62, -0.28, 0.0, 0.28, 0.62, 1.0], [0.62, 0.28, 0.0, -0.28, -0.62], np.linspace(-1, 1, 21)]
)  # 48-54, 55-59, dense
U_IN = np.concatenate([[-_IC, -0.45, 0.0, 0.45, _IC], [0.45, 0.0, -0.45], np.linspace(-_IC, _IC, 15)])
PROF_OUT = np.clip(1 - U_OUT**2, 0, 1) ** 0.35
PROF_IN = np.clip(1 - U_IN**2, 0, 1) ** 0.35
GAP_IN = np.sqrt(np.clip(1 - (U_IN / _IC) ** 2, 0, 1))
BOW_OUT = 0.012 * np.exp(-((U_OUT / 0.13) ** 2))


def pairs(x: Array, y: Array) -> Array:
    """N x 2 points from x and y arrays (faster than np.stack for small arrays)."""
    out = np.empty((len(x), 2))
    out[:, 0] = x
    out[:, 1] = y
    return out


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, a0: float = 0.0, a1: float = 2 * np.pi) -> Array:
    """Points on an ellipse arc (angles measured with y down, so negative angles run over the top)."""
    t = np.linspace(a0, a1, n, endpoint=abs(a1 - a0) < 2 * np.pi - 1e-9)
    return pairs(cx + rx * np.cos(t), cy + ry * np.sin(t))


def jaw_curve(ident: Identity, t: Array) -> Array:
    """The jaw contour (superellipse, lower half): t = 0 image-left end, 0.5 chin, 1 image-right end."""
    th = np.pi * (1 - t)
    c, s = np.cos(th), np.abs(np.sin(th))
    e = 2.0 / ident.jaw_n
    x = ident.face_w * np.sign(c) * np.abs(c) ** e
    y = ident.jaw_top_y + (ident.chin_y - ident.jaw_top_y) * s**e
    return np.stack([x * (1 + 0.05 * ident.wrinkles * s), y], 1)  # older faces: a fuller lower jaw
