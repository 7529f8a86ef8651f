"""The parts of a SynthFaces face that move with the expression and the gaze: jaw drop, eyes, irises, brows,
mouth and expression lines (canonical coordinates, see :mod:`.identity`); one helper per part, each
returning a small record of landmarks and polygons."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .curves import (
    BOW_OUT,
    GAP_IN,
    MOUTH_INNER_CORNER,
    P_EYE_LO,
    P_EYE_UP,
    PROF_IN,
    PROF_OUT,
    U_EYE_LO,
    U_EYE_UP,
    U_IN,
    U_OUT,
    V_BROW,
    Array,
    pairs,
)
from .head import MAX_BROW_RAISE, Outline
from .identity import Identity


class Expression(NamedTuple):
    """How an expression deforms the face at full intensity (scaled by the sample's intensity)."""

    eye_open: float  # eye opening factor
    brow_raise: float  # both brows up (negative: down)
    inner_raise: float  # inner brow ends up (negative: a frown)
    brow_pull: float  # brows drawn together
    mouth_width: float  # mouth width factor
    corner_lift: float  # mouth corners up (negative: down)
    mouth_open: float  # mouth opening at the lip centre
    lip_scale: float  # lip thickness factor
    upper_lift: float  # upper lip raised


EXPRESSION_PARAMS: dict[str, Expression] = {
    #                       eye   brow   inner  pull  width corner  open  lips  uplift
    "surprise": Expression(1.45, 0.12, 0.0, 0.0, 0.72, 0.0, 0.26, 1.0, 0.0),
    "fear": Expression(1.35, 0.07, 0.06, 0.04, 1.1, -0.04, 0.11, 0.9, 0.0),
    "disgust": Expression(0.7, -0.04, -0.02, 0.03, 0.95, -0.05, 0.0, 1.0, 0.05),
    "happiness": Expression(0.72, 0.02, 0.0, 0.0, 1.2, 0.12, 0.09, 1.0, 0.0),
    "sadness": Expression(0.8, 0.0, 0.08, 0.01, 0.95, -0.09, 0.0, 1.05, 0.0),
    "anger": Expression(0.8, -0.05, -0.06, 0.05, 0.9, -0.02, 0.0, 0.6, 0.0),
    "neutral": Expression(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0),
}
#: Expressions whose open mouth shows the teeth.
TEETH_EXPRESSIONS = ("happiness", "fear", "surprise")
assert max(e.brow_raise for e in EXPRESSION_PARAMS.values()) == MAX_BROW_RAISE  # the hair is placed by it
#: How far the chin drops per unit of mouth opening.
JAW_DROP = 0.45
_IC = MOUTH_INNER_CORNER
#: The two sides of the face (image left, image right) with the index of their eye and brow.
_SIDES = ((-1, 0), (1, 1))


class EyeShapes(NamedTuple):
    landmarks: Array  # 12 x 2, points 36-47
    polygons: tuple[Array, Array]  # eye whites, image left and right
    top: float  # highest lid point of either eye
    opening: float  # the expression's eye opening factor


class BrowShapes(NamedTuple):
    landmarks: Array  # 10 x 2, points 17-26
    polygons: tuple[Array, Array]


class MouthShapes(NamedTuple):
    landmarks: Array  # 20 x 2, points 48-67
    width: float  # half-width after the expression
    upper_lip: Array
    lower_lip: Array
    inner_mouth: Array | None  # an open mouth only
    teeth: Array | None


def jaw_landmarks(outline: Outline, opening: float) -> tuple[Array, Array]:
    """Jaw landmarks and the skin polygon, the chin dropped by an open mouth."""
    jaw = outline.jaw.copy()
    face = outline.face
    if opening > 0:
        jaw[:, 1] += JAW_DROP * opening * outline.jaw_drop
        face = face.copy()
        face[:, 1] += JAW_DROP * opening * outline.face_drop
    return jaw, face


def eyes(ident: Identity, e: Expression, k: float) -> EyeShapes:
    """Lid contours: per eye the upper lid from the image-left corner, then the lower lid back."""
    eye_open = 1 + k * (e.eye_open - 1)
    h_up, h_lo = ident.eye_h * eye_open * 1.1, ident.eye_h * eye_open * 0.8
    lm = np.empty((12, 2))
    polygons = []
    for side, i in _SIDES:
        cx = side * ident.eye_dx
        tilt = ident.eye_tilt * side * ident.eye_w
        up = pairs(cx + ident.eye_w * U_EYE_UP, ident.eye_y - h_up * P_EYE_UP - tilt * U_EYE_UP)
        lo = pairs(cx + ident.eye_w * U_EYE_LO, ident.eye_y + h_lo * P_EYE_LO - tilt * U_EYE_LO)
        lm[6 * i : 6 * i + 4] = up[:4]
        lm[6 * i + 4 : 6 * i + 6] = lo[:2]
        polygons.append(np.concatenate([up[4:], lo[2:]]))
    top = ident.eye_y - h_up - abs(ident.eye_tilt) * ident.eye_w
    return EyeShapes(lm, (polygons[0], polygons[1]), top, eye_open)


def iris_centres(ident: Identity, gaze: Array | tuple[float, float]) -> Array:
    """Both iris centres (2 x 2), moved from the eye centres by the gaze (pitch, yaw)."""
    gx, gy = np.sin(gaze[1]) * ident.eye_w * 0.8, -np.sin(gaze[0]) * ident.eye_h * 1.2
    return np.array([(-ident.eye_dx + gx, ident.eye_y + gy), (ident.eye_dx + gx, ident.eye_y + gy)])


def brows(ident: Identity, e: Expression, k: float, eye_top: float) -> BrowShapes:
    """Brows: a centre line through the landmarks, thickness tapering to the outer end, kept above the eyes."""
    lm = np.empty((10, 2))
    polygons = []
    for side, i in _SIDES:
        inner_x = side * (ident.eye_dx - ident.eye_w * 0.95 - k * e.brow_pull)
        outer_x = side * (ident.eye_dx + ident.eye_w * 1.3)
        x0, x1 = (outer_x, inner_x) if side < 0 else (inner_x, outer_x)
        d_in = V_BROW if side < 0 else 1 - V_BROW  # 1 at the inner end
        arch = ident.brow_arch * np.sin(np.pi * (0.95 - 0.9 * d_in)) ** 0.8
        half = 0.5 * ident.brow_thick * (0.55 + 0.45 * d_in)
        y = ident.eye_y - ident.brow_gap - k * e.brow_raise - arch - k * e.inner_raise * d_in**2
        y = np.minimum(y, eye_top - half - 0.045)
        line = pairs(x0 + (x1 - x0) * V_BROW, y)
        lm[5 * i : 5 * i + 5] = line[:5]
        xd, yd, hd = line[5:, 0], line[5:, 1], half[5:]
        polygons.append(pairs(np.concatenate([xd, xd[::-1]]), np.concatenate([yd - hd, (yd + hd)[::-1]])))
    return BrowShapes(lm, (polygons[0], polygons[1]))


class _LipCurves(NamedTuple):
    """Heights of the mouth's curves at the ``U_OUT`` (outer) and ``U_IN`` (inner) parameters."""

    centre_in: Array
    inner_up: Array
    inner_lo: Array
    centre_out: Array
    outer_up: Array
    outer_lo: Array


def lip_curves(ident: Identity, e: Expression, k: float, opening: float, nose_base_y: float) -> _LipCurves:
    """A centre line bent by the corners, opened by the expression, lips around it; below the nose."""
    corner, lips, uplift = k * e.corner_lift, 1 + k * (e.lip_scale - 1), k * e.upper_lift
    my = ident.mouth_y
    gap = opening * GAP_IN
    c_in = my - corner * U_IN**2
    in_up = c_in - 0.25 * gap - 0.3 * uplift * PROF_IN
    in_lo = c_in + 0.75 * gap
    gap_o = opening * np.sqrt(np.clip(1 - (U_OUT / _IC) ** 2, 0, 1))
    c_out = my - corner * U_OUT**2
    out_up = c_out - 0.25 * gap_o - (0.3 * uplift + ident.lip_up * lips + uplift) * PROF_OUT + BOW_OUT
    out_lo = c_out + 0.75 * gap_o + ident.lip_lo * lips * PROF_OUT
    curves = _LipCurves(c_in, in_up, in_lo, c_out, out_up, out_lo)
    drop = max(0.0, nose_base_y + 0.07 - float(out_up[12:].min()))  # keep the upper lip below the nose
    if drop > 0:
        curves = _LipCurves(*(c + drop for c in curves))
    return curves


def mouth(
    ident: Identity, e: Expression, k: float, opening: float, nose_base_y: float, teeth_shown: bool
) -> MouthShapes:
    """Mouth landmarks 48-67 and the lip, inner-mouth and teeth polygons."""
    c = lip_curves(ident, e, k, opening, nose_base_y)
    mw = ident.mouth_w * (1 + k * (e.mouth_width - 1))
    xo, xi = mw * U_OUT, mw * U_IN
    lm = np.empty((20, 2))
    lm[0:7, 0], lm[0:7, 1] = xo[:7], c.outer_up[:7]
    lm[0, 1], lm[6, 1] = c.centre_out[0], c.centre_out[6]
    lm[7:12, 0], lm[7:12, 1] = xo[7:12], c.outer_lo[7:12]
    lm[12:17, 0], lm[12:17, 1] = xi[:5], c.inner_up[:5]
    lm[17:20, 0], lm[17:20, 1] = xi[5:8], c.inner_lo[5:8]
    lm[12, 1], lm[16, 1] = c.centre_in[0], c.centre_in[4]
    lip_x = np.concatenate([xo[12:], xi[:7:-1]])
    upper_lip = pairs(lip_x, np.concatenate([c.outer_up[12:], c.inner_up[:7:-1]]))
    lower_lip = pairs(lip_x, np.concatenate([c.outer_lo[12:], c.inner_lo[:7:-1]]))
    inner_mouth = teeth = None
    if opening > 1e-3:
        inner_mouth = np.concatenate([pairs(xi[8:], c.inner_up[8:]), pairs(xi[8:], c.inner_lo[8:])[::-1]])
        if teeth_shown:
            depth_t = np.minimum(0.045, 0.5 * (c.inner_lo[8:] - c.inner_up[8:]))
            top = c.inner_up[8:]
            teeth = pairs(np.concatenate([xi[8:], xi[:7:-1]]), np.concatenate([top, (top + depth_t)[::-1]]))
    return MouthShapes(lm, mw, upper_lip, lower_lip, inner_mouth, teeth)


def expression_lines(
    ident: Identity, expression: str, k: float, mouth_w: float, corner_y: float, nose_base_y: float
) -> tuple[Array, ...]:
    """Nasolabial folds (age or a strong smile) and the nose wrinkles of disgust."""
    lines: tuple[Array, ...] = ()
    if ident.wrinkles > 0.25 or (expression == "happiness" and k > 0.5):
        t = np.linspace(0, 1, 6)[:, None]
        lines = tuple(
            np.array([(s * (ident.nose_w + 0.05), nose_base_y - 0.04)]) * (1 - t)
            + np.array([(s * (mouth_w + 0.05), corner_y + 0.06)]) * t
            for s in (-1, 1)
        )
    if expression == "disgust" and k > 0.3:
        y = ident.eye_y
        lines = lines + tuple(np.array([(s * 0.08, y + 0.06), (s * 0.11, y + 0.11)]) for s in (-1, 1))
    return lines
