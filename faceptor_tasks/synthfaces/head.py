"""The parts of a SynthFaces face that depend on the identity only (computed once per person and cached):
face outline, nose, facial hair, hair, hat, glasses, neck and clothes, cheeks and age lines."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .curves import BOW_OUT, PROF_OUT, U_OUT, Array, ellipse, jaw_curve, pairs
from .identity import Identity

#: Largest brow raise of any expression (the bangs and the hat stay above it; see ``features``).
MAX_BROW_RAISE = 0.12


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
    u = U_OUT[12:]
    prof, bow = PROF_OUT[12:], BOW_OUT[12:]
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
        upper = np.array(
            [
                (jaw_part[-1, 0] * 0.95, base_y - 0.08),
                (mw * 1.1, base_y + 0.03),
                (-mw * 1.1, base_y + 0.03),
                (jaw_part[0, 0] * 0.95, base_y - 0.08),
            ]
        )
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
    return (
        ellipse(-ident.eye_dx, ident.eye_y + 0.01, rx_g, ry_g, 20),
        ellipse(ident.eye_dx, ident.eye_y + 0.01, rx_g, ry_g, 20),
    )


def neck_and_torso(ident: Identity) -> tuple[Array, Array]:
    neck_w = 0.5 * ident.face_w
    neck = np.array([(-neck_w, 0.3), (neck_w, 0.3), (neck_w * 1.05, 2.4), (-neck_w * 1.05, 2.4)])
    torso = np.array(
        [
            (-2.6, 3.2),
            (-2.2, 1.95),
            (-1.2, 1.6),
            (-neck_w, 1.5),
            (0, 1.72),
            (neck_w, 1.5),
            (1.2, 1.6),
            (2.2, 1.95),
            (2.6, 3.2),
        ]
    )
    return neck, torso


def cheeks(ident: Identity, base_y: float) -> tuple[Array, Array]:
    return (
        ellipse(-(ident.eye_dx + 0.05), base_y - 0.02, 0.15, 0.1, 14),
        ellipse(ident.eye_dx + 0.05, base_y - 0.02, 0.15, 0.1, 14),
    )


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
            wr.append(
                ellipse(s * ident.eye_dx, ident.eye_y + ident.eye_h * 0.9, ident.eye_w * 0.8, 0.06, 7, 0.2, np.pi - 0.2)
            )
    return tuple(wr)


@lru_cache(maxsize=4096)
def static_geometry(ident: Identity) -> StaticParts:
    """The parts of a face that depend on the identity only."""
    nose = nose_shape(ident)
    top = crown(ident)
    neck, torso = neck_and_torso(ident)
    return StaticParts(
        outline=face_outline(ident),
        nose=nose,
        facial_hair=facial_hair(ident, nose.base_y),
        hair=hair(ident, top),
        hat=hat(ident, top),
        glasses=glasses(ident),
        neck=neck,
        torso=torso,
        cheeks=cheeks(ident, nose.base_y),
        wrinkles=age_lines(ident, top.brow_top),
    )
