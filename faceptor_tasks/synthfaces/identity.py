"""Per-identity traits of SynthFaces: a persistent shape and colour vector drawn from ``(seed, identity)``.

Everything that makes a person recognisable is fixed here: age, sex, face proportions, colours, hair style,
facial hair, glasses and hat. Images of one identity differ only in pose, expression, gaze, lighting,
background, clothing, occlusion and image noise (see :mod:`.generator`).

Shapes live in the canonical face frame: x to the image right, y down, the face about 2 units wide
(jaw points 0 and 16 at x = -face_w and +face_w), the origin between the eyes and the nose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Skin tones from light to dark (RGB), interpolated by the identity's tone in [0, 1].
SKIN_TONES = np.array(
    [(250, 220, 200), (240, 196, 168), (226, 172, 136), (198, 136, 98), (158, 104, 70), (104, 68, 46)], np.float32
)
#: Base hair colours: black, brown, blond, red (red is none of CelebA's hair-colour attributes).
HAIR_COLOURS = np.array([(28, 24, 24), (96, 62, 38), (214, 178, 112), (150, 64, 32)], np.float32)
HAIR_NAMES = ("black", "brown", "blond", "red")
IRIS_COLOURS = np.array([(70, 44, 26), (110, 74, 40), (60, 100, 150), (70, 110, 70), (110, 110, 120)], np.float32)
GREY = np.array((200, 200, 200), np.float32)

#: Attribute thresholds on the identity's traits (documented in docs/synthfaces.md).
PALE_TONE = 0.12
BUSHY_BROW = 0.085
ARCHED_BROW = 0.06
BIG_NOSE = 0.2
BIG_LIPS = 0.17
YOUNG_AGE = 35.0
GREY_HAIR = 0.5
BAGS_AGE = 50.0


@dataclass(frozen=True)
class Identity:
    """One synthetic person. Lengths in canonical units; colours RGB floats 0..255."""

    identity: int
    age: float
    male: bool
    # face outline
    face_w: float
    jaw_top_y: float
    chin_y: float
    jaw_n: float
    forehead_y: float
    # eyes and brows
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    eye_tilt: float
    brow_gap: float
    brow_thick: float
    brow_arch: float
    # nose and mouth
    nose_tip_y: float
    nose_w: float
    bridge_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    # hair
    hairline_y: float
    hair_len: int  # 0 short, 1 medium, 2 long
    hair_kind: int  # index into HAIR_COLOURS
    grey: float  # 0 none .. 1 white
    bald: bool
    receding: bool
    bangs: bool
    # facial hair, accessories, colouring
    mustache: bool
    goatee: bool
    beard: bool
    glasses: bool
    hat: bool
    hat_style: int  # 0 beanie, 1 cap with a brim
    lipstick: bool
    rosy: bool
    wrinkles: float  # 0..1
    tone: float  # 0 light .. 1 dark
    skin_rgb: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    lip_rgb: tuple[float, float, float]
    glasses_rgb: tuple[float, float, float]
    hat_rgb: tuple[float, float, float]

    @property
    def gray_hair(self) -> bool:
        return self.grey >= GREY_HAIR and not self.bald

    @property
    def hair_colour_name(self) -> str:
        """``black``, ``brown``, ``blond``, ``red``, ``gray`` or ``none`` (bald)."""
        if self.bald:
            return "none"
        return "gray" if self.gray_hair else HAIR_NAMES[self.hair_kind]

    def vector(self) -> np.ndarray:
        """The identity's traits as one float32 vector (shape, style and colour; the id excluded)."""
        out: list[float] = []
        for f in fields(self):
            if f.name == "identity":
                continue
            v = getattr(self, f.name)
            out.extend(v if isinstance(v, tuple) else (float(v),))
        return np.asarray(out, np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def make_identity(seed: int, identity: int) -> Identity:
    """The traits of ``identity`` under ``seed`` (deterministic; identities are independent of each other)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, identity & 0xFFFFFFFF, identity >> 32, 0x1D])
    u = rng.random
    age = float(np.round(u() * 100.0, 1))
    male = bool(u() < 0.5)
    child = float(np.clip((18.0 - age) / 18.0, 0.0, 1.0))
    old = float(np.clip((age - 40.0) / 50.0, 0.0, 1.0))

    # proportions: identity variation, then sex, then age (children: big eyes low on a round face, small nose)
    face_w = float(np.clip(1.0 + 0.06 * rng.standard_normal() + (0.03 if male else -0.02), 0.88, 1.12))
    jaw_n = 2.15 + 0.25 * rng.standard_normal() + (0.25 if male else 0.0) - 0.3 * child
    jaw_n = float(np.clip(jaw_n, 1.8, 2.8))
    jaw_top_y = -0.12 + 0.03 * rng.standard_normal()
    chin_y = 1.12 + 0.06 * rng.standard_normal() + (0.04 if male else 0.0) - 0.16 * child + 0.04 * old
    chin_y = float(np.clip(chin_y, 0.85, 1.25))
    eye_y = -0.1 + 0.03 * rng.standard_normal() + 0.12 * child
    eye_dx = 0.42 + 0.03 * rng.standard_normal()
    eye_w = (0.18 + 0.015 * rng.standard_normal()) * (1 + 0.12 * child)
    eye_h = (0.075 + 0.012 * rng.standard_normal()) * (1 + 0.3 * child) * (1 - 0.15 * old)
    eye_tilt = 0.05 * rng.standard_normal()
    brow_gap = 0.2 + 0.025 * rng.standard_normal()
    brow_thick = float(
        np.clip(0.07 + 0.018 * rng.standard_normal() + (0.015 if male else -0.01) - 0.02 * child, 0.045, 0.12)
    )
    brow_arch = float(np.clip(0.04 + 0.025 * rng.standard_normal(), 0.0, 0.1))
    nose_len = (0.38 + 0.05 * rng.standard_normal()) * (1 - 0.3 * child) + 0.04 * old
    nose_tip_y = eye_y + nose_len
    nose_w = (0.17 + 0.025 * rng.standard_normal() + (0.015 if male else 0.0)) * (1 - 0.2 * child)
    nose_w = float(np.clip(nose_w, 0.11, 0.26))
    bridge_w = 0.055 + 0.008 * rng.standard_normal()
    lip_up = float(np.clip((0.065 + 0.014 * rng.standard_normal()) * (1 - 0.3 * old), 0.035, 0.11))
    lip_lo = float(np.clip((0.085 + 0.016 * rng.standard_normal()) * (1 - 0.3 * old), 0.045, 0.13))
    mouth_w = (0.33 + 0.03 * rng.standard_normal()) * (1 - 0.15 * child)
    # keep the features apart: mouth below the nose with room for the upper lip, above the chin
    mouth_y = max(nose_tip_y + 0.06 + 0.1 * rng.random() + lip_up + 0.1, nose_tip_y + 0.24)
    mouth_y = min(mouth_y, chin_y - lip_lo - 0.22)
    nose_tip_y = min(nose_tip_y, mouth_y - lip_up - 0.2)

    # hair: sex-specific style, greying and loss with age
    forehead_y = -1.28 + 0.05 * rng.standard_normal()
    hairline_y = -0.72 + 0.05 * rng.standard_normal() - 0.08 * child
    hair_len = int(rng.choice(3, p=(0.75, 0.2, 0.05) if male else (0.1, 0.35, 0.55)))
    hair_kind = int(rng.choice(4, p=(0.4, 0.33, 0.2, 0.07)))
    grey_onset = 48.0 + 8.0 * rng.standard_normal()
    grey = float(np.clip((age - grey_onset) / 22.0, 0.0, 1.0))
    bald = bool(male and u() < np.clip((age - 35.0) / 70.0, 0.0, 0.5))
    receding = bool(male and not bald and u() < np.clip((age - 25.0) / 60.0, 0.0, 0.6))
    bangs = bool(not bald and not receding and u() < 0.28)

    adult_male = male and age >= 17
    beard = bool(adult_male and u() < 0.2)
    mustache = bool(adult_male and (beard or u() < 0.2))
    goatee = bool(adult_male and (beard or u() < 0.15))
    glasses = bool(age >= 6 and u() < 0.2 + 0.2 * old)
    hat = bool(u() < 0.13)
    hat_style = int(u() < 0.5)
    lipstick = bool(not male and age >= 16 and u() < 0.4)
    rosy = bool(u() < 0.2)
    wrinkles = float(np.clip((age - 35.0) / 45.0, 0.0, 1.0))

    tone = float(u() ** 1.3)
    skin = np.asarray([np.interp(tone * 5, np.arange(6), SKIN_TONES[:, c]) for c in range(3)], np.float32)
    skin = skin * (1 + 0.04 * rng.standard_normal(3)).astype(np.float32)
    skin = _mix(skin, skin.mean() * np.ones(3, np.float32), 0.2 * old)  # older skin: less saturated
    shade = float(np.exp(0.18 * rng.standard_normal()))
    hair = np.clip(HAIR_COLOURS[hair_kind] * shade, 0, 255)
    hair = _mix(hair, GREY + 30.0 * (grey - 0.5), grey)
    iris = IRIS_COLOURS[int(rng.choice(5, p=(0.45, 0.2, 0.15, 0.1, 0.1)))]
    lip = (
        np.array((200, 30, 50), np.float32) * (0.85 + 0.2 * u())
        if lipstick
        else _mix(skin, np.array((175, 80, 80), np.float32), 0.55)
    )

    def rgb(v: np.ndarray) -> tuple[float, float, float]:
        c = np.clip(v, 0, 255)
        return float(c[0]), float(c[1]), float(c[2])

    return Identity(
        identity=identity,
        age=age,
        male=male,
        face_w=float(face_w),
        jaw_top_y=float(jaw_top_y),
        chin_y=float(chin_y),
        jaw_n=jaw_n,
        forehead_y=float(forehead_y),
        eye_dx=float(eye_dx),
        eye_y=float(eye_y),
        eye_w=float(eye_w),
        eye_h=float(eye_h),
        eye_tilt=float(eye_tilt),
        brow_gap=float(brow_gap),
        brow_thick=brow_thick,
        brow_arch=brow_arch,
        nose_tip_y=float(nose_tip_y),
        nose_w=nose_w,
        bridge_w=float(bridge_w),
        mouth_y=float(mouth_y),
        mouth_w=float(mouth_w),
        lip_up=lip_up,
        lip_lo=lip_lo,
        hairline_y=float(hairline_y),
        hair_len=hair_len,
        hair_kind=hair_kind,
        grey=grey,
        bald=bald,
        receding=receding,
        bangs=bangs,
        mustache=mustache,
        goatee=goatee,
        beard=beard,
        glasses=glasses,
        hat=hat,
        hat_style=hat_style,
        lipstick=lipstick,
        rosy=rosy,
        wrinkles=wrinkles,
        tone=tone,
        skin_rgb=rgb(skin),
        hair_rgb=rgb(hair),
        iris_rgb=rgb(iris),
        lip_rgb=rgb(lip),
        glasses_rgb=rgb(rng.integers(0, 140, 3).astype(np.float32)),
        hat_rgb=rgb(rng.integers(0, 256, 3).astype(np.float32)),
    )
