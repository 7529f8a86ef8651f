"""Canonical face geometry of SynthFaces: the 68 landmarks and every painted shape, from one set of curves.

Each facial part is a parametric curve; its landmarks are samples of that curve at fixed parameters and its
polygon is a dense sampling of the same curve, so landmarks and the parsing map cannot disagree. Coordinates
are canonical (see :mod:`.identity`); :func:`pose_transform` maps them to pixels. The parts that depend on
the identity only (outline, nose, hair, accessories) are computed once per identity and cached
(:func:`static_geometry`); :func:`face_geometry` adds the expression and the gaze, one helper per part.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .identity import Identity

Array = np.ndarray


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
    "surprise":  Expression(1.45, 0.12,  0.0,   0.0,  0.72,  0.0,   0.26, 1.0,  0.0),
    "fear":      Expression(1.35, 0.07,  0.06,  0.04, 1.1,  -0.04,  0.11, 0.9,  0.0),
    "disgust":   Expression(0.7, -0.04, -0.02,  0.03, 0.95, -0.05,  0.0,  1.0,  0.05),
    "happiness": Expression(0.72, 0.02,  0.0,   0.0,  1.2,   0.12,  0.09, 1.0,  0.0),
    "sadness":   Expression(0.8,  0.0,   0.08,  0.01, 0.95, -0.09,  0.0,  1.05, 0.0),
    "anger":     Expression(0.8, -0.05, -0.06,  0.05, 0.9,  -0.02,  0.0,  0.6,  0.0),
    "neutral":   Expression(1.0,  0.0,   0.0,   0.0,  1.0,   0.0,   0.0,  1.0,  0.0),
}
#: Expressions whose open mouth shows the teeth.
TEETH_EXPRESSIONS = ("happiness", "fear", "surprise")
#: Largest brow raise of any expression (the bangs and the hat stay above it).
MAX_BROW_RAISE = 0.12
#: Mouth opening (canonical units at the lip centre) from which Mouth_Slightly_Open is set.
MOUTH_OPEN = 0.03
#: Eye opening / eye width ratio under which Narrow_Eyes is set.
NARROW_EYES = 0.3
MOUTH_INNER_CORNER = 0.88
#: How far the chin drops per unit of mouth opening.
JAW_DROP = 0.45

# curve parameters: landmark samples first, then the dense polygon samples
_U_EYE_UP = np.concatenate([[-1.0, -1 / 3, 1 / 3, 1.0], np.linspace(-1, 1, 13)])
_U_EYE_LO = np.concatenate([[1 / 3, -1 / 3], np.linspace(1, -1, 13)[1:-1]])
_P_EYE_UP = (1 - _U_EYE_UP**2) ** 0.6
_P_EYE_LO = (1 - _U_EYE_LO**2) ** 0.75
_V_BROW = np.concatenate([np.linspace(0, 1, 5), np.linspace(0, 1, 11)])
_IC = MOUTH_INNER_CORNER
_U_OUT = np.concatenate([[-1.0, -0.62, -0.28, 0.0, 0.28, 0.62, 1.0], [0.62, 0.28, 0.0, -0.28, -0.62],
                         np.linspace(-1, 1, 21)])  # 48-54, 55-59, dense
_U_IN = np.concatenate([[-_IC, -0.45, 0.0, 0.45, _IC], [0.45, 0.0, -0.45], np.linspace(-_IC, _IC, 15)])
_PROF_OUT = np.clip(1 - _U_OUT**2, 0, 1) ** 0.35
_PROF_IN = np.clip(1 - _U_IN**2, 0, 1) ** 0.35
_GAP_IN = np.sqrt(np.clip(1 - (_U_IN / _IC) ** 2, 0, 1))
_BOW_OUT = 0.012 * np.exp(-((_U_OUT / 0.13) ** 2))
#: The two sides of the face (image left, image right) with the first landmark of their eye and brow.
_SIDES = ((-1, 0), (1, 1))


@dataclass(frozen=True)
class FaceGeometry:
    """Canonical landmarks (68 x 2) and polygons (N x 2) of one face, plus the values labels are made from.

    After :meth:`transformed` every array holds pixel coordinates instead.
    """

    landmarks: Array
    face: Array
    hair_back: Array
    scalp: Array | None
    hair_front: Array | None
    neck: Array
    torso: Array
    brows: tuple[Array, Array]
    eyes: tuple[Array, Array]
    iris_centres: Array  # 2 x 2
    nose: Array
    nostrils: tuple[Array, Array]
    upper_lip: Array
    lower_lip: Array
    inner_mouth: Array | None
    teeth: Array | None
    lip_line: Array
    mustache: Array | None
    goatee: Array | None
    beard: Array | None
    hat: Array | None
    glasses: tuple[Array, Array] | None
    wrinkles: tuple[Array, ...]
    cheeks: tuple[Array, Array]
    iris_radius: float
    mouth_open: float
    eye_ratio: float

    def transformed(self, tf) -> FaceGeometry:
        """The same geometry mapped by ``tf`` (one call over all points)."""
        arrays: list[Array] = []
        slots = []
        for name in _ARRAY_FIELDS:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                slots.append((name, -1, len(arrays)))
                arrays.append(v)
            elif v is not None:
                slots.append((name, len(v), len(arrays)))
                arrays.extend(v)
        bounds = np.cumsum([0] + [len(a) for a in arrays]).tolist()
        pts = tf(np.concatenate(arrays))
        parts = [pts[bounds[i]:bounds[i + 1]] for i in range(len(arrays))]
        out = copy.copy(self)
        for name, n, i in slots:
            object.__setattr__(out, name, parts[i] if n < 0 else tuple(parts[i:i + n]))
        return out


_ARRAY_FIELDS = tuple(f.name for f in fields(FaceGeometry) if f.type not in ("float",))


# -- curve primitives --------------------------------------------------------------------------------------
def pairs(x: Array, y: Array) -> Array:
    """N x 2 points from x and y arrays (faster than np.stack for small arrays)."""
    out = np.empty((len(x), 2))
    out[:, 0] = x
    out[:, 1] = y
    return out


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, a0: float = 0.0,
            a1: float = 2 * np.pi) -> Array:
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


# -- the parts that depend on the identity only ------------------------------------------------------------
class Outline(NamedTuple):
    """The face outline: jaw landmarks 0-16, the skin polygon, and how much each point follows the chin."""

    jaw: Array  # 17 x 2
    face: Array  # jaw (33 points) then forehead
    jaw_drop: Array  # 17: 1 at the chin, 0 at the jaw ends
    face_drop: Array  # one per face point (0 on the forehead)


class NoseShape(NamedTuple):
    """Nose landmarks 27-35 (bridge top to tip, then the base from the image-left wing) and polygons."""

    landmarks: Array  # 9 x 2
    outline: Array
    nostrils: tuple[Array, Array]
    base_y: float  # canonical y of the nose base


class FacialHair(NamedTuple):
    mustache: Array | None
    goatee: Array | None
    beard: Array | None


class Crown(NamedTuple):
    """The head's top: the hair ellipse's radii (centred on the jaw top) and the heights that bound it."""

    rx: float
    ry: float
    temple_y: float
    brow_top: float  # above the highest brow of any expression


class Hair(NamedTuple):
    back: Array
    scalp: Array | None  # bald heads
    front: Array | None  # top hair down to the hairline or the bangs


class StaticParts(NamedTuple):
    """Everything :func:`static_geometry` computes for one identity."""

    outline: Outline
    nose: NoseShape
    facial_hair: FacialHair
    hair: Hair
    hat: Array | None
    glasses: tuple[Array, Array] | None
    neck: Array
    torso: Array
    cheeks: tuple[Array, Array]
    wrinkles: tuple[Array, ...]


def face_outline(ident: Identity) -> Outline:
    """Jaw landmarks and the skin polygon (jaw plus an elliptic forehead)."""
    fh_ry = ident.jaw_top_y - ident.forehead_y
    forehead = ellipse(0, ident.jaw_top_y, ident.face_w, fh_ry, 25, 0.0, -np.pi)[1:-1]
    face = np.concatenate([jaw_curve(ident, np.linspace(0, 1, 33)), forehead])
    jaw_drop = np.sin(np.pi * np.linspace(0, 1, 17)).clip(0) ** 1.5
    face_drop = np.concatenate([np.sin(np.pi * np.linspace(0, 1, 33)).clip(0) ** 1.5, 0 * forehead[:, 0]])
    return Outline(jaw_curve(ident, np.linspace(0, 1, 17)), face, jaw_drop, face_drop)


def nose_shape(ident: Identity) -> NoseShape:
    """The nose: landmarks on the bridge and the base, a wing-to-wing outline and two nostrils."""
    y27 = ident.eye_y - 0.03
    base_y = ident.nose_tip_y + 0.05
    nw = ident.nose_w
    lm = np.zeros((9, 2))
    lm[0:4, 1] = np.linspace(y27, ident.nose_tip_y, 4)
    lm[4:9, 0] = (-nw, -nw * 0.5, 0.0, nw * 0.5, nw)
    lm[4:9, 1] = base_y + np.array((0.0, 0.02, 0.03, 0.02, 0.0))
    p = np.linspace(0, 1, 8)
    left = pairs(-(ident.bridge_w + (nw * 0.95 - ident.bridge_w) * p**3), y27 + (base_y - 0.05 - y27) * p)
    outline = np.concatenate([left, lm[4:9], left[::-1] * np.array([-1.0, 1.0])])
    nostrils = tuple(ellipse(sx * nw * 0.55, base_y - 0.005, nw * 0.22, 0.022, 10) for sx in (-1, 1))
    return NoseShape(lm, outline, (nostrils[0], nostrils[1]), base_y)


def neutral_lips(ident: Identity) -> tuple[Array, Array]:
    """Upper-lip top and lower-lip bottom of the closed neutral mouth, dense (21 points each)."""
    u = _U_OUT[12:]
    prof, bow = _PROF_OUT[12:], _BOW_OUT[12:]
    x = ident.mouth_w * u
    top = np.stack([x, ident.mouth_y - ident.lip_up * prof + bow], 1)
    bottom = np.stack([x, ident.mouth_y + ident.lip_lo * prof], 1)
    return top, bottom


def facial_hair(ident: Identity, base_y: float) -> FacialHair:
    """Moustache, goatee and beard, shaped on the neutral mouth (the lips are painted over them)."""
    lip_top, lip_bottom = neutral_lips(ident)
    mustache = goatee = beard = None
    if ident.mustache:
        mustache = np.concatenate([lip_top * [1.12, 1.0] + [0, 0.015], (lip_top * [0.95, 1.0])[::-1] - [0, 0.075]])
    if ident.goatee:
        chin = jaw_curve(ident, np.linspace(0.36, 0.64, 9))
        goatee = np.concatenate([lip_bottom[2:-2:2] * [1.1, 1.0] - [0, 0.02], chin[::-1]])
    if ident.beard:
        jaw_part = jaw_curve(ident, np.linspace(0.12, 0.88, 21))
        mw = ident.mouth_w
        upper = np.array([(jaw_part[-1, 0] * 0.95, base_y - 0.08), (mw * 1.1, base_y + 0.03),
                          (-mw * 1.1, base_y + 0.03), (jaw_part[0, 0] * 0.95, base_y - 0.08)])
        beard = np.concatenate([jaw_part, upper])
    return FacialHair(mustache, goatee, beard)


def crown(ident: Identity) -> Crown:
    """The hair ellipse and the heights the hair, bangs and hat are placed by."""
    fh_ry = ident.jaw_top_y - ident.forehead_y
    brow_top = ident.eye_y - ident.brow_gap - ident.brow_arch - ident.brow_thick / 2 - MAX_BROW_RAISE
    return Crown(ident.face_w * 1.1, fh_ry * 1.08 + 0.06, ident.eye_y - 0.22, brow_top)


def hairline(ident: Identity, top: Crown) -> Array:
    """The lower edge of the front hair, image left to right (21 points): bangs, a hairline or a receding one."""
    xs = np.linspace(-1, 1, 21) * ident.face_w * 0.99
    q = np.abs(xs) / ident.face_w
    if ident.bangs:
        line_y = top.brow_top - 0.05 + 0.025 * np.cos(np.arange(21) * np.pi) - 0.12 * q**4
    else:
        line_y = np.minimum(ident.hairline_y, top.brow_top - 0.12) + (top.temple_y - ident.hairline_y) * q**2.5
        if ident.receding:
            line_y = line_y - 0.22 * np.exp(-(((q - 0.5) / 0.22) ** 2)) - 0.06
    return np.stack([xs, line_y], 1)


def hair(ident: Identity, top: Crown) -> Hair:
    """Back hair (length by style), and either a bald scalp or the front hair down to the hairline."""
    rx, ry = top.rx, top.ry
    back_bottom = (ident.jaw_top_y + 0.12, 0.75, 1.7)[ident.hair_len]
    flare = (0.0, 0.08, 0.25)[ident.hair_len]
    top_arc = ellipse(0, ident.jaw_top_y, rx, ry, 25, 0.0, -np.pi)
    back = np.concatenate([[(rx + flare, back_bottom)], top_arc, [(-rx - flare, back_bottom)]])
    if ident.bald:
        a = np.arcsin(np.clip((ident.jaw_top_y - top.temple_y + 0.12) / ry, 0, 1))
        return Hair(back, ellipse(0, ident.jaw_top_y, rx * 0.985, ry * 0.985, 21, -a, -np.pi + a), None)
    a = np.arcsin(np.clip((ident.jaw_top_y - top.temple_y) / ry, 0, 1))
    outer = ellipse(0, ident.jaw_top_y, rx, ry, 25, -a, -np.pi + a)
    return Hair(back, None, np.concatenate([outer, hairline(ident, top)]))


def hat(ident: Identity, top: Crown) -> Array | None:
    """A beanie or a cap (a dome plus a brim in front), above the brows; None without a hat."""
    if not ident.hat:
        return None
    rx, ry = top.rx, top.ry
    base = min(ident.hairline_y - 0.02, top.brow_top - 0.14)
    ha = np.arcsin(np.clip((ident.jaw_top_y - base) / (ry + 0.12), 0, 1))
    dome = ellipse(0, ident.jaw_top_y, rx + 0.06, ry + 0.12, 21, -ha, -np.pi + ha)
    if ident.hat_style == 1:  # cap: a brim in front
        brim = np.array([(-rx * 0.95, base), (-rx * 0.6, base + 0.1), (rx * 0.6, base + 0.1), (rx * 0.95, base)])
        return np.concatenate([dome, brim])
    return np.concatenate([dome, [(-rx - 0.06, base + 0.03), (rx + 0.06, base + 0.03)]])


def glasses(ident: Identity) -> tuple[Array, Array] | None:
    """The two lens rings (image left, image right); None without glasses."""
    if not ident.glasses:
        return None
    rx_g, ry_g = ident.eye_w * 1.45, ident.eye_w * 1.05
    return (ellipse(-ident.eye_dx, ident.eye_y + 0.01, rx_g, ry_g, 20),
            ellipse(ident.eye_dx, ident.eye_y + 0.01, rx_g, ry_g, 20))


def neck_and_torso(ident: Identity) -> tuple[Array, Array]:
    neck_w = 0.5 * ident.face_w
    neck = np.array([(-neck_w, 0.3), (neck_w, 0.3), (neck_w * 1.05, 2.4), (-neck_w * 1.05, 2.4)])
    torso = np.array([(-2.6, 3.2), (-2.2, 1.95), (-1.2, 1.6), (-neck_w, 1.5), (0, 1.72), (neck_w, 1.5),
                      (1.2, 1.6), (2.2, 1.95), (2.6, 3.2)])
    return neck, torso


def cheeks(ident: Identity, base_y: float) -> tuple[Array, Array]:
    return (ellipse(-(ident.eye_dx + 0.05), base_y - 0.02, 0.15, 0.1, 14),
            ellipse(ident.eye_dx + 0.05, base_y - 0.02, 0.15, 0.1, 14))


def age_lines(ident: Identity, brow_top: float) -> tuple[Array, ...]:
    """Forehead lines and crow's feet (by the wrinkle level), under-eye bags from :data:`BAGS_AGE` (50)."""
    wr: list[Array] = []
    w = ident.wrinkles
    if w > 0.05:
        for i in range(1 + int(3 * w)):
            y = brow_top + MAX_BROW_RAISE - 0.1 - 0.07 * i
            xs = np.linspace(-0.4, 0.4, 7) * (1 - 0.1 * i)
            wr.append(np.stack([xs, y - 0.03 * (1 - (xs / 0.4) ** 2)], 1))
        for s in (-1, 1):
            cx = s * (ident.eye_dx + ident.eye_w + 0.05)
            for j in range(1 + int(2 * w)):
                dy = (j - 0.5 * int(2 * w)) * 0.05
                wr.append(np.array([(cx, ident.eye_y + dy), (cx + s * 0.09, ident.eye_y + dy * 1.6)]))
    if ident.age >= 50:
        for s in (-1, 1):
            wr.append(ellipse(s * ident.eye_dx, ident.eye_y + ident.eye_h * 0.9, ident.eye_w * 0.8, 0.06, 7,
                              0.2, np.pi - 0.2))
    return tuple(wr)


@lru_cache(maxsize=4096)
def static_geometry(ident: Identity) -> StaticParts:
    """The parts of a face that depend on the identity only."""
    nose = nose_shape(ident)
    top = crown(ident)
    neck, torso = neck_and_torso(ident)
    return StaticParts(outline=face_outline(ident), nose=nose, facial_hair=facial_hair(ident, nose.base_y),
                       hair=hair(ident, top), hat=hat(ident, top), glasses=glasses(ident), neck=neck,
                       torso=torso, cheeks=cheeks(ident, nose.base_y), wrinkles=age_lines(ident, top.brow_top))


# -- the parts that move with the expression and the gaze --------------------------------------------------
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
        up = pairs(cx + ident.eye_w * _U_EYE_UP, ident.eye_y - h_up * _P_EYE_UP - tilt * _U_EYE_UP)
        lo = pairs(cx + ident.eye_w * _U_EYE_LO, ident.eye_y + h_lo * _P_EYE_LO - tilt * _U_EYE_LO)
        lm[6 * i:6 * i + 4] = up[:4]
        lm[6 * i + 4:6 * i + 6] = lo[:2]
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
        d_in = _V_BROW if side < 0 else 1 - _V_BROW  # 1 at the inner end
        arch = ident.brow_arch * np.sin(np.pi * (0.95 - 0.9 * d_in)) ** 0.8
        half = 0.5 * ident.brow_thick * (0.55 + 0.45 * d_in)
        y = ident.eye_y - ident.brow_gap - k * e.brow_raise - arch - k * e.inner_raise * d_in**2
        y = np.minimum(y, eye_top - half - 0.045)
        line = pairs(x0 + (x1 - x0) * _V_BROW, y)
        lm[5 * i:5 * i + 5] = line[:5]
        xd, yd, hd = line[5:, 0], line[5:, 1], half[5:]
        polygons.append(pairs(np.concatenate([xd, xd[::-1]]), np.concatenate([yd - hd, (yd + hd)[::-1]])))
    return BrowShapes(lm, (polygons[0], polygons[1]))


class _LipCurves(NamedTuple):
    """Heights of the mouth's curves at the ``_U_OUT`` (outer) and ``_U_IN`` (inner) parameters."""

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
    gap = opening * _GAP_IN
    c_in = my - corner * _U_IN**2
    in_up = c_in - 0.25 * gap - 0.3 * uplift * _PROF_IN
    in_lo = c_in + 0.75 * gap
    gap_o = opening * np.sqrt(np.clip(1 - (_U_OUT / _IC) ** 2, 0, 1))
    c_out = my - corner * _U_OUT**2
    out_up = c_out - 0.25 * gap_o - (0.3 * uplift + ident.lip_up * lips + uplift) * _PROF_OUT + _BOW_OUT
    out_lo = c_out + 0.75 * gap_o + ident.lip_lo * lips * _PROF_OUT
    curves = _LipCurves(c_in, in_up, in_lo, c_out, out_up, out_lo)
    drop = max(0.0, nose_base_y + 0.07 - float(out_up[12:].min()))  # keep the upper lip below the nose
    if drop > 0:
        curves = _LipCurves(*(c + drop for c in curves))
    return curves


def mouth(ident: Identity, e: Expression, k: float, opening: float, nose_base_y: float,
          teeth_shown: bool) -> MouthShapes:
    """Mouth landmarks 48-67 and the lip, inner-mouth and teeth polygons."""
    c = lip_curves(ident, e, k, opening, nose_base_y)
    mw = ident.mouth_w * (1 + k * (e.mouth_width - 1))
    xo, xi = mw * _U_OUT, mw * _U_IN
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


def expression_lines(ident: Identity, expression: str, k: float, mouth_w: float, corner_y: float,
                     nose_base_y: float) -> tuple[Array, ...]:
    """Nasolabial folds (age or a strong smile) and the nose wrinkles of disgust."""
    lines: tuple[Array, ...] = ()
    if ident.wrinkles > 0.25 or (expression == "happiness" and k > 0.5):
        t = np.linspace(0, 1, 6)[:, None]
        lines = tuple(np.array([(s * (ident.nose_w + 0.05), nose_base_y - 0.04)]) * (1 - t)
                      + np.array([(s * (mouth_w + 0.05), corner_y + 0.06)]) * t for s in (-1, 1))
    if expression == "disgust" and k > 0.3:
        y = ident.eye_y
        lines = lines + tuple(np.array([(s * 0.08, y + 0.06), (s * 0.11, y + 0.11)]) for s in (-1, 1))
    return lines


def face_geometry(ident: Identity, expression: str, intensity: float, gaze: Array | tuple[float, float],
                  open_scale: float = 1.0) -> FaceGeometry:
    """Canonical geometry of ``ident`` with an expression (``intensity`` 0..1) and gaze (pitch, yaw, radians).

    ``open_scale`` scales the expression's mouth opening (0 gives a closed mouth).
    """
    st = static_geometry(ident)
    e = EXPRESSION_PARAMS[expression]
    k = float(intensity)
    opening = float(intensity) * e.mouth_open * open_scale
    jaw, face = jaw_landmarks(st.outline, opening)
    eye = eyes(ident, e, k)
    brow = brows(ident, e, k, eye.top)
    mth = mouth(ident, e, k, opening, st.nose.base_y, expression in TEETH_EXPRESSIONS)
    lm = np.concatenate([jaw, brow.landmarks, st.nose.landmarks, eye.landmarks, mth.landmarks])
    lines = expression_lines(ident, expression, k, mth.width, lm[54, 1], st.nose.base_y)
    hair_, beard = st.hair, st.facial_hair
    return FaceGeometry(
        landmarks=lm, face=face, hair_back=hair_.back, scalp=hair_.scalp, hair_front=hair_.front,
        neck=st.neck, torso=st.torso, brows=brow.polygons, eyes=eye.polygons,
        iris_centres=iris_centres(ident, gaze), nose=st.nose.outline, nostrils=st.nose.nostrils,
        upper_lip=mth.upper_lip, lower_lip=mth.lower_lip, inner_mouth=mth.inner_mouth, teeth=mth.teeth,
        lip_line=lm[[48, 60, 61, 62, 63, 64, 54]], mustache=beard.mustache, goatee=beard.goatee,
        beard=beard.beard, hat=st.hat, glasses=st.glasses, wrinkles=st.wrinkles + lines, cheeks=st.cheeks,
        iris_radius=ident.eye_w * 0.48, mouth_open=opening,
        eye_ratio=float(ident.eye_h * eye.opening * 1.9 / (2 * ident.eye_w)),
    )
