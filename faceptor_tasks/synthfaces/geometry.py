"""Canonical face geometry of SynthFaces: the 68 landmarks and every painted shape, from one set of curves.

Each facial part is a parametric curve; its landmarks are samples of that curve at fixed parameters and its
polygon is a dense sampling of the same curve, so landmarks and the parsing map cannot disagree. Coordinates
are canonical (see :mod:`.identity`); :func:`pose_transform` maps them to pixels. The parts that depend on
the identity only (outline, nose, hair, accessories) are computed once per identity and cached.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from .identity import Identity

Array = np.ndarray

#: Expression deformations (scaled by the sample's intensity): eye opening factor, brow raise, inner-brow
#: raise (negative: a frown), brows pulled together, mouth width factor, mouth-corner lift, mouth opening,
#: lip thickness factor, upper-lip raise.
EXPRESSION_PARAMS: dict[str, tuple[float, ...]] = {
    #             eye   brow   inner  pull  width corner  open  lips  uplift
    "surprise":  (1.45, 0.12,  0.0,   0.0,  0.72,  0.0,   0.26, 1.0,  0.0),
    "fear":      (1.35, 0.07,  0.06,  0.04, 1.1,  -0.04,  0.11, 0.9,  0.0),
    "disgust":   (0.7, -0.04, -0.02,  0.03, 0.95, -0.05,  0.0,  1.0,  0.05),
    "happiness": (0.72, 0.02,  0.0,   0.0,  1.2,   0.12,  0.09, 1.0,  0.0),
    "sadness":   (0.8,  0.0,   0.08,  0.01, 0.95, -0.09,  0.0,  1.05, 0.0),
    "anger":     (0.8, -0.05, -0.06,  0.05, 0.9,  -0.02,  0.0,  0.6,  0.0),
    "neutral":   (1.0,  0.0,   0.0,   0.0,  1.0,   0.0,   0.0,  1.0,  0.0),
}
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


def _neutral_mouth(ident: Identity) -> tuple[Array, Array]:
    """Upper-lip top and lower-lip bottom of the closed neutral mouth, dense (21 points each)."""
    u = _U_OUT[12:]
    prof, bow = _PROF_OUT[12:], _BOW_OUT[12:]
    x = ident.mouth_w * u
    top = np.stack([x, ident.mouth_y - ident.lip_up * prof + bow], 1)
    bottom = np.stack([x, ident.mouth_y + ident.lip_lo * prof], 1)
    return top, bottom


@lru_cache(maxsize=4096)
def static_geometry(ident: Identity) -> dict:
    """The parts of a face that depend on the identity only."""
    g: dict = {}
    jaw_lm = jaw_curve(ident, np.linspace(0, 1, 17))
    fh_ry = ident.jaw_top_y - ident.forehead_y
    forehead = ellipse(0, ident.jaw_top_y, ident.face_w, fh_ry, 25, 0.0, -np.pi)[1:-1]
    g["jaw"] = jaw_lm
    g["face"] = np.concatenate([jaw_curve(ident, np.linspace(0, 1, 33)), forehead])
    # how much each jaw point follows an opening mouth (1 at the chin, 0 at the jaw ends)
    g["jaw_drop"] = np.sin(np.pi * np.linspace(0, 1, 17)).clip(0) ** 1.5
    g["face_drop"] = np.concatenate([np.sin(np.pi * np.linspace(0, 1, 33)).clip(0) ** 1.5,
                                     0 * forehead[:, 0]])

    # nose 27-35: bridge top to tip, then the base from the image-left wing
    y27 = ident.eye_y - 0.03
    base_y = ident.nose_tip_y + 0.05
    nw = ident.nose_w
    nose_lm = np.zeros((9, 2))
    nose_lm[0:4, 1] = np.linspace(y27, ident.nose_tip_y, 4)
    nose_lm[4:9, 0] = (-nw, -nw * 0.5, 0.0, nw * 0.5, nw)
    nose_lm[4:9, 1] = base_y + np.array((0.0, 0.02, 0.03, 0.02, 0.0))
    p = np.linspace(0, 1, 8)
    left = pairs(-(ident.bridge_w + (nw * 0.95 - ident.bridge_w) * p**3), y27 + (base_y - 0.05 - y27) * p)
    g["nose_lm"] = nose_lm
    g["nose"] = np.concatenate([left, nose_lm[4:9], left[::-1] * np.array([-1.0, 1.0])])
    g["nostrils"] = tuple(ellipse(sx * nw * 0.55, base_y - 0.005, nw * 0.22, 0.022, 10) for sx in (-1, 1))

    # facial hair, shaped on the neutral mouth (the lips are painted over it)
    lip_top, lip_bottom = _neutral_mouth(ident)
    g["mustache"] = g["goatee"] = g["beard"] = None
    if ident.mustache:
        g["mustache"] = np.concatenate([lip_top * [1.12, 1.0] + [0, 0.015],
                                        (lip_top * [0.95, 1.0])[::-1] - [0, 0.075]])
    if ident.goatee:
        chin = jaw_curve(ident, np.linspace(0.36, 0.64, 9))
        g["goatee"] = np.concatenate([lip_bottom[2:-2:2] * [1.1, 1.0] - [0, 0.02], chin[::-1]])
    if ident.beard:
        jaw_part = jaw_curve(ident, np.linspace(0.12, 0.88, 21))
        mw = ident.mouth_w
        upper = np.array([(jaw_part[-1, 0] * 0.95, base_y - 0.08), (mw * 1.1, base_y + 0.03),
                          (-mw * 1.1, base_y + 0.03), (jaw_part[0, 0] * 0.95, base_y - 0.08)])
        g["beard"] = np.concatenate([jaw_part, upper])

    # hair, scalp and hat; the bangs and the hat stay above the highest brow of any expression
    rx, ry = ident.face_w * 1.1, fh_ry * 1.08 + 0.06
    temple_y = ident.eye_y - 0.22
    brow_top = ident.eye_y - ident.brow_gap - ident.brow_arch - ident.brow_thick / 2 - MAX_BROW_RAISE
    back_bottom = (ident.jaw_top_y + 0.12, 0.75, 1.7)[ident.hair_len]
    flare = (0.0, 0.08, 0.25)[ident.hair_len]
    top_arc = ellipse(0, ident.jaw_top_y, rx, ry, 25, 0.0, -np.pi)
    g["hair_back"] = np.concatenate([[(rx + flare, back_bottom)], top_arc, [(-rx - flare, back_bottom)]])
    g["scalp"] = g["hair_front"] = None
    if ident.bald:
        a = np.arcsin(np.clip((ident.jaw_top_y - temple_y + 0.12) / ry, 0, 1))
        g["scalp"] = ellipse(0, ident.jaw_top_y, rx * 0.985, ry * 0.985, 21, -a, -np.pi + a)
    else:
        a = np.arcsin(np.clip((ident.jaw_top_y - temple_y) / ry, 0, 1))
        outer = ellipse(0, ident.jaw_top_y, rx, ry, 25, -a, -np.pi + a)
        xs = np.linspace(-1, 1, 21) * ident.face_w * 0.99
        q = np.abs(xs) / ident.face_w
        if ident.bangs:
            line_y = brow_top - 0.05 + 0.025 * np.cos(np.arange(21) * np.pi) - 0.12 * q**4
        else:
            line_y = np.minimum(ident.hairline_y, brow_top - 0.12) + (temple_y - ident.hairline_y) * q**2.5
            if ident.receding:
                line_y = line_y - 0.22 * np.exp(-(((q - 0.5) / 0.22) ** 2)) - 0.06
        g["hair_front"] = np.concatenate([outer, np.stack([xs, line_y], 1)])
    g["hat"] = None
    if ident.hat:
        base = min(ident.hairline_y - 0.02, brow_top - 0.14)
        ha = np.arcsin(np.clip((ident.jaw_top_y - base) / (ry + 0.12), 0, 1))
        dome = ellipse(0, ident.jaw_top_y, rx + 0.06, ry + 0.12, 21, -ha, -np.pi + ha)
        if ident.hat_style == 1:  # cap: a brim in front
            brim = np.array([(-rx * 0.95, base), (-rx * 0.6, base + 0.1), (rx * 0.6, base + 0.1),
                             (rx * 0.95, base)])
            g["hat"] = np.concatenate([dome, brim])
        else:
            g["hat"] = np.concatenate([dome, [(-rx - 0.06, base + 0.03), (rx + 0.06, base + 0.03)]])
    g["glasses"] = None
    if ident.glasses:
        rx_g, ry_g = ident.eye_w * 1.45, ident.eye_w * 1.05
        g["glasses"] = tuple(ellipse(s * ident.eye_dx, ident.eye_y + 0.01, rx_g, ry_g, 20) for s in (-1, 1))
    neck_w = 0.5 * ident.face_w
    g["neck"] = np.array([(-neck_w, 0.3), (neck_w, 0.3), (neck_w * 1.05, 2.4), (-neck_w * 1.05, 2.4)])
    g["torso"] = np.array([(-2.6, 3.2), (-2.2, 1.95), (-1.2, 1.6), (-neck_w, 1.5), (0, 1.72), (neck_w, 1.5),
                           (1.2, 1.6), (2.2, 1.95), (2.6, 3.2)])
    g["cheeks"] = tuple(ellipse(s * (ident.eye_dx + 0.05), base_y - 0.02, 0.15, 0.1, 14) for s in (-1, 1))

    # age lines: forehead, crow's feet, under-eye bags (Bags_Under_Eyes from 50)
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
    g["wrinkles"] = tuple(wr)
    g["base_y"] = base_y
    return g


def face_geometry(ident: Identity, expression: str, intensity: float, gaze: Array | tuple[float, float],
                  open_scale: float = 1.0) -> FaceGeometry:
    """Canonical geometry of ``ident`` with an expression (``intensity`` 0..1) and gaze (pitch, yaw, radians).

    ``open_scale`` scales the expression's mouth opening (0 gives a closed mouth).
    """
    st = static_geometry(ident)
    e = EXPRESSION_PARAMS[expression]
    k = float(intensity)
    lm = np.empty((68, 2))
    lm[0:17] = st["jaw"]
    open_ = float(intensity) * e[6] * open_scale
    face = st["face"]
    if open_ > 0:  # an open mouth drops the chin
        lm[0:17, 1] += JAW_DROP * open_ * st["jaw_drop"]
        face = face.copy()
        face[:, 1] += JAW_DROP * open_ * st["face_drop"]
    lm[27:36] = st["nose_lm"]

    # eyes 36-47: upper lid from the image-left corner, then the lower lid back
    eye_open = 1 + k * (e[0] - 1)
    h_up, h_lo = ident.eye_h * eye_open * 1.1, ident.eye_h * eye_open * 0.8
    eyes = []
    for side, base in ((-1, 36), (1, 42)):
        cx = side * ident.eye_dx
        tilt = ident.eye_tilt * side * ident.eye_w
        up = pairs(cx + ident.eye_w * _U_EYE_UP, ident.eye_y - h_up * _P_EYE_UP - tilt * _U_EYE_UP)
        lo = pairs(cx + ident.eye_w * _U_EYE_LO, ident.eye_y + h_lo * _P_EYE_LO - tilt * _U_EYE_LO)
        lm[base:base + 4] = up[:4]
        lm[base + 4:base + 6] = lo[:2]
        eyes.append(np.concatenate([up[4:], lo[2:]]))
    gx, gy = np.sin(gaze[1]) * ident.eye_w * 0.8, -np.sin(gaze[0]) * ident.eye_h * 1.2
    iris = np.array([(-ident.eye_dx + gx, ident.eye_y + gy), (ident.eye_dx + gx, ident.eye_y + gy)])
    eye_top = ident.eye_y - h_up - abs(ident.eye_tilt) * ident.eye_w

    # brows 17-26: centre line through the landmarks, thickness tapering to the outer end
    brows = []
    for side, base in ((-1, 17), (1, 22)):
        inner_x = side * (ident.eye_dx - ident.eye_w * 0.95 - k * e[3])
        outer_x = side * (ident.eye_dx + ident.eye_w * 1.3)
        x0, x1 = (outer_x, inner_x) if side < 0 else (inner_x, outer_x)
        d_in = _V_BROW if side < 0 else 1 - _V_BROW  # 1 at the inner end
        arch = ident.brow_arch * np.sin(np.pi * (0.95 - 0.9 * d_in)) ** 0.8
        half = 0.5 * ident.brow_thick * (0.55 + 0.45 * d_in)
        y = ident.eye_y - ident.brow_gap - k * e[1] - arch - k * e[2] * d_in**2
        y = np.minimum(y, eye_top - half - 0.045)
        line = pairs(x0 + (x1 - x0) * _V_BROW, y)
        lm[base:base + 5] = line[:5]
        dense, hd = line[5:], half[5:]
        xd = dense[:, 0]
        yd = dense[:, 1]
        brows.append(pairs(np.concatenate([xd, xd[::-1]]), np.concatenate([yd - hd, (yd + hd)[::-1]])))

    # mouth 48-67: a centre line bent by the corners, opened by the expression, lips around it
    mw = ident.mouth_w * (1 + k * (e[4] - 1))
    corner, lips, uplift = k * e[5], 1 + k * (e[7] - 1), k * e[8]
    my = ident.mouth_y
    gap = open_ * _GAP_IN
    c_in = my - corner * _U_IN**2
    in_up = c_in - 0.25 * gap - 0.3 * uplift * _PROF_IN
    in_lo = c_in + 0.75 * gap
    gap_o = open_ * np.sqrt(np.clip(1 - (_U_OUT / _IC) ** 2, 0, 1))
    c_out = my - corner * _U_OUT**2
    out_up = c_out - 0.25 * gap_o - (0.3 * uplift + ident.lip_up * lips + uplift) * _PROF_OUT + _BOW_OUT
    out_lo = c_out + 0.75 * gap_o + ident.lip_lo * lips * _PROF_OUT
    drop = max(0.0, st["base_y"] + 0.07 - float(out_up[12:].min()))  # keep the upper lip below the nose
    if drop > 0:
        c_in, in_up, in_lo = c_in + drop, in_up + drop, in_lo + drop
        c_out, out_up, out_lo = c_out + drop, out_up + drop, out_lo + drop
    xo, xi = mw * _U_OUT, mw * _U_IN
    lm[48:55, 0], lm[48:55, 1] = xo[:7], out_up[:7]
    lm[48, 1], lm[54, 1] = c_out[0], c_out[6]
    lm[55:60, 0], lm[55:60, 1] = xo[7:12], out_lo[7:12]
    lm[60:65, 0], lm[60:65, 1] = xi[:5], in_up[:5]
    lm[65:68, 0], lm[65:68, 1] = xi[5:8], in_lo[5:8]
    lm[60, 1], lm[64, 1] = c_in[0], c_in[4]
    dense_up = pairs(xi[8:], in_up[8:])
    dense_lo = pairs(xi[8:], in_lo[8:])
    upper_lip = pairs(np.concatenate([xo[12:], xi[:7:-1]]), np.concatenate([out_up[12:], in_up[:7:-1]]))
    lower_lip = pairs(np.concatenate([xo[12:], xi[:7:-1]]), np.concatenate([out_lo[12:], in_lo[:7:-1]]))
    inner_mouth = teeth = None
    if open_ > 1e-3:
        inner_mouth = np.concatenate([dense_up, dense_lo[::-1]])
        if expression in ("happiness", "fear", "surprise"):
            depth_t = np.minimum(0.045, 0.5 * (in_lo[8:] - in_up[8:]))
            top = in_up[8:]
            teeth = pairs(np.concatenate([xi[8:], xi[:7:-1]]), np.concatenate([top, (top + depth_t)[::-1]]))
    lip_line = lm[[48, 60, 61, 62, 63, 64, 54]]

    wrinkles = st["wrinkles"]
    if ident.wrinkles > 0.25 or (expression == "happiness" and k > 0.5):  # nasolabial folds
        t = np.linspace(0, 1, 6)[:, None]
        base_y = st["base_y"]
        extra = tuple(np.array([(s * (ident.nose_w + 0.05), base_y - 0.04)]) * (1 - t)
                      + np.array([(s * (mw + 0.05), lm[54, 1] + 0.06)]) * t for s in (-1, 1))
        wrinkles = wrinkles + extra
    if expression == "disgust" and k > 0.3:  # nose wrinkles
        y = ident.eye_y
        wrinkles = wrinkles + tuple(np.array([(s * 0.08, y + 0.06), (s * 0.11, y + 0.11)]) for s in (-1, 1))

    return FaceGeometry(
        landmarks=lm, face=face, hair_back=st["hair_back"], scalp=st["scalp"], hair_front=st["hair_front"],
        neck=st["neck"], torso=st["torso"], brows=(brows[0], brows[1]), eyes=(eyes[0], eyes[1]),
        iris_centres=iris, nose=st["nose"], nostrils=st["nostrils"], upper_lip=upper_lip, lower_lip=lower_lip,
        inner_mouth=inner_mouth, teeth=teeth, lip_line=lip_line, mustache=st["mustache"], goatee=st["goatee"],
        beard=st["beard"], hat=st["hat"], glasses=st["glasses"], wrinkles=wrinkles, cheeks=st["cheeks"],
        iris_radius=ident.eye_w * 0.48, mouth_open=float(open_),
        eye_ratio=float(ident.eye_h * eye_open * 1.9 / (2 * ident.eye_w)),
    )


def depth(points: Array) -> Array:
    """A head-shaped depth profile used by the yaw-like squash: an ellipsoid plus a nose bump."""
    x, y = points[:, 0], points[:, 1]
    z = 0.55 * np.sqrt(np.maximum(1 - (x * (1 / 1.1)) ** 2, 0))
    return z + 0.22 * np.exp(-((x * (1 / 0.14)) ** 2) - ((y - 0.2) * (1 / 0.3)) ** 2)


def pose_transform(size: int, roll: float, scale: float, shift: tuple[float, float], yaw: float,
                   unit: float = 0.3, y_offset: float = 0.0, offset: float = 0.0):
    """The map canonical (N x 2) -> pixel coordinates (pixel centres at integers, plus ``offset``).

    Yaw-like squash: ``x' = x cos(yaw) + depth(x, y) sin(yaw)``; then scale, in-plane rotation by ``roll``
    about the image centre and a shift (pixels).
    """
    u = unit * size * scale
    c, s = np.cos(roll), np.sin(roll)
    cx, cy = (size - 1) / 2 + shift[0] + offset, (size - 1) / 2 + shift[1] + offset
    cyaw, syaw = np.cos(yaw), np.sin(yaw)

    def apply(points: Array) -> Array:
        p = np.asarray(points, np.float64)
        x = p[:, 0] * cyaw + depth(p) * syaw
        y = p[:, 1] - y_offset
        return pairs(cx + u * (c * x - s * y), cy + u * (s * x + c * y))

    return apply
