"""SynthFaces: a procedural face generator with exact labels, deterministic from ``(seed, index)``.

A sample is drawn in three steps: the identity's traits (:mod:`.identity`), the sample's variation
(:meth:`SynthFaces.describe`: expression, gaze, pose, scene and image effects) and the rendering
(:meth:`SynthFaces.render`). Every label is computed from the same canonical geometry that is painted
(:mod:`.geometry`); image effects (lighting, blur, noise, JPEG) touch the image only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import labels as L
from .geometry import MOUTH_OPEN, NARROW_EYES, FaceGeometry, ellipse, face_geometry, pose_transform
from .identity import (
    ARCHED_BROW,
    BAGS_AGE,
    BIG_LIPS,
    BIG_NOSE,
    BUSHY_BROW,
    PALE_TONE,
    YOUNG_AGE,
    Identity,
    make_identity,
)
from .labels import EXPRESSIONS, LAPA_CLASSES, SYNTH_ATTRIBUTES
from .raster import PILLOW_OFFSET, Overlay, PaletteCanvas, gaussian_blur, grid, jpeg_roundtrip, noise_bank

__all__ = ["EXPRESSIONS", "LAPA_CLASSES", "SYNTH_ATTRIBUTES", "SynthFaces", "SynthSample", "Variation"]

#: Blur radius (pixels at 112 px) from which Blurry is set.
BLURRY_RADIUS = 1.0
#: Canonical unit in image sides at pose scale 1 (the face is about 0.6 of the image wide).
UNIT = 0.3
#: Canonical y at the image centre (the face sits a little high, so that the chin keeps a margin).
Y_OFFSET = 0.06
_CIRCLE = np.linspace(0, 2 * np.pi, 12, endpoint=False)
_SCENE_VALUES = 11 + 13 * 4  # background (7), clothes (3), clutter count (1), 4 clutter shapes (13 each)
_LOWER_OUTER = [54, 55, 56, 57, 58, 59, 48]


def _rgb(c, f: float = 1.0) -> tuple[int, int, int]:
    return (int(min(255, c[0] * f)), int(min(255, c[1] * f)), int(min(255, c[2] * f)))


@lru_cache(maxsize=4096)
def _palette(ident: Identity) -> dict[str, tuple[int, int, int]]:
    """The identity's paint colours."""
    skin, hair, lip = np.asarray(ident.skin_rgb), np.asarray(ident.hair_rgb), np.asarray(ident.lip_rgb)
    brow = hair * 0.6 + skin * 0.1 if ident.hair_kind == 2 and ident.grey < 0.5 else hair
    return {
        "skin": _rgb(skin), "neck": _rgb(skin, 0.82), "scalp": _rgb(skin, 1.03), "line": _rgb(skin, 0.72),
        "cheek": _rgb(skin * 0.7 + np.array((235.0, 110.0, 120.0)) * 0.3), "nose": _rgb(skin, 0.94),
        "nose_line": _rgb(skin, 0.78), "bridge": _rgb(skin, 1.07), "nostril": _rgb(skin, 0.45),
        "lid": _rgb(skin, 0.35), "hair": _rgb(hair), "hair_back": _rgb(hair, 0.85), "beard": _rgb(hair, 0.8),
        "brow": _rgb(brow, 0.7), "lip_lo": _rgb(lip), "lip_up": _rgb(lip, 0.88), "seam": _rgb(lip, 0.55),
    }


@dataclass(frozen=True)
class SynthSample:
    """One face with its labels; coordinates in pixels, pixel centres at integers."""

    image: np.ndarray  # H x W x 3 uint8
    landmarks: np.ndarray  # 68 x 2 float32
    visible: np.ndarray  # 68 bool: False when an occluder (or hat) covers the point or it is off the image
    parsing: np.ndarray  # H x W uint8, LaPa classes 0..10
    age: float
    expression: int
    attributes: np.ndarray  # int64 0/1 in SYNTH_ATTRIBUTES order
    identity: int
    gaze: np.ndarray  # (pitch, yaw) float32 radians; pitch > 0 looks up, yaw > 0 looks to the image right
    pose: dict = field(default_factory=dict)  # roll (rad), scale, shift (x, y) px, yaw_squash (rad)

    def attribute(self, name: str) -> int:
        return int(self.attributes[SYNTH_ATTRIBUTES.index(name)])


@dataclass(frozen=True)
class Variation:
    """Everything that differs between two images of one identity."""

    expression: int
    intensity: float
    open_scale: float
    gaze: tuple[float, float]
    roll: float
    scale: float
    shift: tuple[float, float]  # in image sides
    yaw: float
    occluder: bool
    brightness: float = 1.0
    gradient: float = 0.0
    gradient_angle: float = 0.0
    vignette: float = 0.0
    blur: float = 0.0  # Gaussian radius in pixels at 112 px
    noise: float = 0.0  # standard deviation in grey levels
    jpeg: int = 0  # JPEG quality, 0 for none
    scene_seed: int = 0  # background, clothing and occluder details


class SynthFaces:
    """An endless, deterministic stream of synthetic faces: ``sample(index)`` is bit-identical for a given
    ``(seed, index)`` and constructor arguments.

    Args:
        seed: the stream's seed (identities and variations).
        size: image side in pixels (any size; 112 and 224 are the usual ones).
        num_identities: identities in the stream; sample ``i`` shows identity
            ``identity_offset + perm[i % num_identities]`` for a seeded permutation ``perm``.
        identity_offset: first identity id (disjoint offsets give disjoint people, e.g. for test sets).
        variation: scale of the pose ranges (0: frontal, centred, scale 1).
        effects: lighting, blur, noise, JPEG artefacts and occluders (off: clean renders).
        occlusion: probability of a partial occluder when effects are on.
    """

    def __init__(self, seed: int = 0, size: int = 112, num_identities: int = 1000, identity_offset: int = 0,
                 variation: float = 1.0, effects: bool = True, occlusion: float = 0.3):
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if num_identities < 1:
            raise ValueError("num_identities must be positive")
        self.seed, self.size, self.num_identities = int(seed), int(size), int(num_identities)
        self.identity_offset, self.variation = int(identity_offset), float(variation)
        self.effects, self.occlusion = bool(effects), float(occlusion)
        self._perm = np.random.default_rng([self.seed, 0xA11CE]).permutation(self.num_identities)
        self._identities: OrderedDict[int, Identity] = OrderedDict()

    # -- identities and variations ------------------------------------------------------------------------
    def identity_of(self, index: int) -> int:
        """The identity id shown by sample ``index``."""
        return self.identity_offset + int(self._perm[index % self.num_identities])

    def identity(self, identity: int) -> Identity:
        """The traits of an identity id (cached)."""
        ident = self._identities.get(identity)
        if ident is None:
            ident = make_identity(self.seed, identity)
            self._identities[identity] = ident
            if len(self._identities) > 4096:
                self._identities.popitem(last=False)
        return ident

    def describe(self, index: int) -> Variation:
        """The random variation of sample ``index`` (expression, gaze, pose, scene, image effects)."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, index & 0xFFFFFFFF, index >> 32, 0x5A])
        u = rng.random(20).tolist()
        v = self.variation
        expr = int(u[0] * 7)
        name = EXPRESSIONS[expr]
        intensity = 1.0 if name == "neutral" else 0.55 + 0.45 * u[1]
        open_scale = 0.0 if name == "happiness" and u[2] < 0.35 else 0.7 + 0.5 * u[3]  # 0: a closed smile
        gaze = (0.7 * u[4] - 0.35, u[5] - 0.5)
        roll = float(np.clip(0.15 * rng.standard_normal(), -0.4, 0.4)) * v
        scale = 1 + (0.25 * u[6] - 0.15) * v
        shift = ((0.1 * u[7] - 0.05) * v, (0.1 * u[8] - 0.05) * v)
        yaw = (0.9 * u[9] - 0.45) * v
        scene = int(u[10] * 2**31)
        if not self.effects:
            return Variation(expr, intensity, open_scale, gaze, roll, scale, shift, yaw, occluder=False,
                             scene_seed=scene)
        return Variation(
            expr, intensity, open_scale, gaze, roll, scale, shift, yaw,
            occluder=u[11] < self.occlusion,
            brightness=0.75 + 0.4 * u[12],
            gradient=0.7 * u[13],
            gradient_angle=2 * np.pi * u[14],
            vignette=0.3 * u[15],
            blur=0.3 + 1.5 * u[16] / 0.25 if u[16] < 0.25 else 0.0,
            noise=2 + 8 * u[17] / 0.5 if u[17] < 0.5 else 0.0,
            jpeg=25 + int(65 * u[18] / 0.4) if u[18] < 0.4 else 0,
            scene_seed=scene,
        )

    def sample(self, index: int) -> SynthSample:
        """Sample ``index`` (any non-negative integer)."""
        if index < 0:
            raise IndexError(f"SynthFaces index must be non-negative, got {index}")
        return self.render(self.identity(self.identity_of(index)), self.describe(index))

    __getitem__ = sample

    def landmarks(self, index: int) -> np.ndarray:
        """The 68 landmarks of sample ``index`` (as :meth:`sample` gives them) without painting the image."""
        var = self.describe(index)
        geo = face_geometry(self.identity(self.identity_of(index)), EXPRESSIONS[var.expression], var.intensity,
                            var.gaze, var.open_scale)
        shift_px = (var.shift[0] * self.size, var.shift[1] * self.size)
        tf = pose_transform(self.size, var.roll, var.scale, shift_px, var.yaw, UNIT, Y_OFFSET, PILLOW_OFFSET)
        return (tf(geo.landmarks) - PILLOW_OFFSET).astype(np.float32)

    # -- rendering ----------------------------------------------------------------------------------------
    def render(self, ident: Identity, var: Variation) -> SynthSample:
        """Paint ``ident`` under ``var`` and derive every label from the painted geometry."""
        size = self.size
        rng = np.random.default_rng(var.scene_seed)
        scene = rng.random(_SCENE_VALUES)
        geo = face_geometry(ident, EXPRESSIONS[var.expression], var.intensity, var.gaze, var.open_scale)
        shift_px = (var.shift[0] * size, var.shift[1] * size)
        tf = pose_transform(size, var.roll, var.scale, shift_px, var.yaw, UNIT, Y_OFFSET, PILLOW_OFFSET)
        px = geo.transformed(tf)  # Pillow coordinates from here on
        unit_px = UNIT * size * var.scale
        lw = max(1, round(size / 112))

        canvas = PaletteCanvas(size, int(scene[0] * 16), scene[1:4] * 255, scene[4:7] * 255)
        self._paint_face(canvas, ident, px, scene, lw)
        image, parsing = canvas.result()
        self._paint_irises(image, parsing, px, geo.iris_radius * unit_px * np.cos(var.yaw), ident)
        landmarks = (px.landmarks - PILLOW_OFFSET).astype(np.float32)
        mask = None
        if px.glasses is not None or px.hat is not None or var.occluder:
            over = Overlay(image, parsing)
            self._paint_accessories(over, ident, px, lw)
            if var.occluder:
                pts, colour = self._occluder(geo, rng)
                over.occlude(tf(pts), colour)
            image, parsing = np.asarray(over.img), np.array(over.par)
            mask = None if over.mask is None else np.asarray(over.mask)
        visible = self._visibility(landmarks, mask)
        image = self._effects(image, var, landmarks[30], unit_px)
        pose = {"roll": var.roll, "scale": var.scale, "shift": shift_px, "yaw_squash": var.yaw}
        return SynthSample(image=image, landmarks=landmarks, visible=visible, parsing=parsing, age=ident.age,
                           expression=var.expression, attributes=self._attributes(ident, geo, var),
                           identity=ident.identity, gaze=np.asarray(var.gaze, np.float32), pose=pose)

    def _paint_face(self, cv: PaletteCanvas, ident: Identity, px: FaceGeometry, scene: np.ndarray,
                    lw: int) -> None:
        """The person, back to front, in Pillow coordinates. Image-only details (lines, facial hair,
        nostrils, teeth) carry the class of the part they lie on; ``scene`` holds uniform draws for the
        clutter and the clothes."""
        size = self.size
        pal = _palette(ident)
        for k in range(int(scene[7] * 5)):  # scene clutter behind the person
            c, r, t, colour = scene[11 + 13 * k:13 + 13 * k] * size, scene[13 + 13 * k:15 + 13 * k], \
                scene[15 + 13 * k], scene[16 + 13 * k:19 + 13 * k] * 255
            ang = np.sort(scene[19 + 13 * k:24 + 13 * k]) * (2 * np.pi) if t < 0.5 else _CIRCLE
            r = (0.05 + 0.25 * r) * size
            blob = np.stack([c[0] + r[0] * np.cos(ang), c[1] + r[1] * np.sin(ang)], 1)
            cv.fill(blob, _rgb(colour), L.BACKGROUND)
        cv.fill(px.hair_back, pal["hair_back"], L.HAIR)
        cv.fill(px.neck, pal["neck"], L.BACKGROUND)
        cv.fill(px.torso, _rgb(scene[8:11] * 255), L.BACKGROUND)
        if px.scalp is not None:
            cv.fill(px.scalp, pal["scalp"], L.SKIN)
        cv.fill(px.face, pal["skin"], L.SKIN)
        if ident.rosy:
            for ch in px.cheeks:
                cv.fill(ch, pal["cheek"], L.SKIN)
        line_c = pal["line"]
        for w in px.wrinkles:
            cv.line(w, line_c, L.SKIN, width=lw)
        beard_c = pal["beard"]
        for part in (px.beard, px.goatee, px.mustache):
            if part is not None:
                cv.fill(part, beard_c, L.SKIN)
        if px.hair_front is not None:
            cv.fill(px.hair_front, pal["hair"], L.HAIR)
        # nose, with its base line through landmarks 31-35
        lm = px.landmarks
        cv.fill(px.nose, pal["nose"], L.NOSE)
        cv.line(lm[31:36], pal["nose_line"], L.NOSE)
        cv.line(lm[27:31], pal["bridge"], L.NOSE)
        for n in px.nostrils:
            cv.fill(n, pal["nostril"], L.NOSE)
        # brows: the polygon plus its spine through the landmarks
        brow_c = pal["brow"]
        cv.fill(px.brows[0], brow_c, L.LEFT_BROW)
        cv.line(lm[17:22], brow_c, L.LEFT_BROW)
        cv.fill(px.brows[1], brow_c, L.RIGHT_BROW)
        cv.line(lm[22:27], brow_c, L.RIGHT_BROW)
        # eyes: the white, outlined by the lid line (same class); irises come later
        lid_c = pal["lid"]
        for e, cls in ((px.eyes[0], L.LEFT_EYE), (px.eyes[1], L.RIGHT_EYE)):
            cv.fill(e, (236, 232, 226), cls)
            cv.line(e, lid_c, cls, closed=True)
        # mouth: lower lip, upper lip (outer contours through the landmarks), inner mouth and teeth
        cv.fill(px.lower_lip, pal["lip_lo"], L.LOWER_LIP)
        cv.fill(px.upper_lip, pal["lip_up"], L.UPPER_LIP)
        if px.inner_mouth is not None:
            cv.fill(px.inner_mouth, (70, 18, 24), L.INNER_MOUTH)
            if px.teeth is not None:
                cv.fill(px.teeth, (238, 234, 220), L.INNER_MOUTH)
        else:
            cv.line(px.lip_line, pal["seam"], L.UPPER_LIP)  # the seam of a closed mouth
        cv.line(lm[_LOWER_OUTER], pal["lip_lo"], L.LOWER_LIP)
        cv.line(lm[48:55], pal["lip_up"], L.UPPER_LIP)

    def _paint_irises(self, image: np.ndarray, parsing: np.ndarray, px: FaceGeometry, radius: float,
                      ident: Identity) -> None:
        """Iris and pupil discs, clipped to the eye classes (they never change the parsing map)."""
        size = self.size
        rp = max(radius, 1.0)
        (ax, ay), (bx, by) = px.iris_centres - PILLOW_OFFSET
        x0, x1 = max(0, int(min(ax, bx) - rp - 1)), min(size, int(max(ax, bx) + rp + 2))
        y0, y1 = max(0, int(min(ay, by) - rp - 1)), min(size, int(max(ay, by) + rp + 2))
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        inv = np.float32(1 / (rp * rp))
        da = ((xs - np.float32(ax)) ** 2 + (ys - np.float32(ay)) ** 2) * inv
        db = ((xs - np.float32(bx)) ** 2 + (ys - np.float32(by)) ** 2) * inv
        cls = parsing[y0:y1, x0:x1]
        d2 = np.where(cls == L.LEFT_EYE, da, np.where(cls == L.RIGHT_EYE, db, np.float32(9)))
        block = image[y0:y1, x0:x1]
        m = d2 < 1
        block[m] = (np.asarray(ident.iris_rgb, np.float32) * (1 - 0.4 * d2[m])[:, None]).astype(np.uint8)
        block[d2 < 0.2] = (15, 12, 12)

    def _paint_accessories(self, cv: Overlay, ident: Identity, px: FaceGeometry, lw: int) -> None:
        """Glasses (image only) and the hat (background class, an occluder)."""
        if px.glasses is not None:
            frame = _rgb(ident.glasses_rgb)
            g0, g1 = px.glasses
            for g in (g0, g1):
                cv.line(g, frame, width=lw + (self.size >= 160), closed=True)
            lm = px.landmarks
            # ring point 0 is the rightmost (angle 0), point 10 the leftmost: bridge, then the two temples
            cv.line(np.stack([g0[0], g1[10]]), frame, width=lw)
            cv.line(np.stack([g0[10], lm[0] * 0.85 + lm[36] * 0.15]), frame, width=lw)
            cv.line(np.stack([g1[0], lm[16] * 0.85 + lm[45] * 0.15]), frame, width=lw)
        if px.hat is not None:
            cv.occlude(px.hat, _rgb(ident.hat_rgb))

    @staticmethod
    def _occluder(geo: FaceGeometry, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int]]:
        """A random object over part of the face (a blob, a bar or a polygon), canonical, with its colour."""
        centre = geo.landmarks[int(rng.integers(68))] + rng.normal(0, 0.12, 2)
        kind = int(rng.integers(3))
        if kind == 0:
            pts = ellipse(centre[0], centre[1], rng.uniform(0.15, 0.4), rng.uniform(0.15, 0.4), 16)
        elif kind == 1:
            a, ln, w = rng.uniform(0, np.pi), rng.uniform(0.5, 1.4), rng.uniform(0.1, 0.25)
            d, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
            pts = centre + np.array([d * ln + n * w, d * ln - n * w, -d * ln - n * w, -d * ln + n * w]) / 2
        else:
            ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
            rad = rng.uniform(0.15, 0.45, 6)
            pts = centre + np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
        r, g, b = (int(x) for x in rng.integers(0, 256, 3))
        return pts, (r, g, b)

    def _visibility(self, landmarks: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """On the image and not under an occluder or the hat (``mask`` > 0)."""
        ij = np.floor(landmarks + 0.5).astype(np.int64)
        inside = ((ij >= 0) & (ij < self.size)).all(1)
        if mask is None:
            return inside
        ij = np.clip(ij, 0, self.size - 1)
        return inside & (mask[ij[:, 1], ij[:, 0]] == 0)

    def _effects(self, image: np.ndarray, var: Variation, centre: np.ndarray, unit_px: float) -> np.ndarray:
        """Lighting gradient and vignette, blur, sensor noise, JPEG artefacts: the image only.

        Works on H x 3W views (channels interleaved) so that every array operation runs over long rows.
        """
        if not self.effects:
            return np.array(image)
        size = self.size
        gx, gy = grid(size, channels=3)
        f32 = np.float32
        row = gx * f32(np.cos(var.gradient_angle) * var.gradient) + f32(var.brightness)
        col = gy * f32(np.sin(var.gradient_angle) * var.gradient)
        if var.vignette > 0:  # separable: a falloff in x times a falloff in y, around the face
            cx, cy = (centre[0] - (size - 1) / 2) / size, (centre[1] - (size - 1) / 2) / size
            k, cap = f32(var.vignette * (size / (1.8 * unit_px)) ** 2), f32(0.75 * var.vignette)
            vx = f32(1) - np.minimum((gx - f32(cx)) ** 2 * k, cap)
            vy = f32(1) - np.minimum((gy - f32(cy)) ** 2 * k, cap)
            gain = (row * vx) * vy + (col * vy) * vx
        else:
            gain = row + col
        out = image.reshape(size, 3 * size) * gain
        if var.blur > 0:
            out = gaussian_blur(out.reshape(size, size, 3), var.blur * size / 112).reshape(size, 3 * size)
        if var.noise > 0:
            ox, oy = var.scene_seed % 32, (var.scene_seed // 32) % 32
            out += noise_bank(size)[oy:oy + size, 3 * ox:3 * (ox + size)] * f32(var.noise)
        out = np.clip(out, 0, 255, out=out).astype(np.uint8).reshape(size, size, 3)
        return jpeg_roundtrip(out, var.jpeg) if var.jpeg else out

    def _attributes(self, ident: Identity, geo: FaceGeometry, var: Variation) -> np.ndarray:
        colour = ident.hair_colour_name
        values = {
            "Arched_Eyebrows": ident.brow_arch > ARCHED_BROW,
            "Bags_Under_Eyes": ident.age >= BAGS_AGE,
            "Bald": ident.bald,
            "Bangs": ident.bangs,
            "Big_Lips": ident.lip_up + ident.lip_lo > BIG_LIPS,
            "Big_Nose": ident.nose_w > BIG_NOSE,
            "Black_Hair": colour == "black",
            "Blond_Hair": colour == "blond",
            "Blurry": self.effects and var.blur >= BLURRY_RADIUS,
            "Brown_Hair": colour == "brown",
            "Bushy_Eyebrows": ident.brow_thick > BUSHY_BROW,
            "Eyeglasses": ident.glasses,
            "Goatee": ident.goatee,
            "Gray_Hair": colour == "gray",
            "Male": ident.male,
            "Mouth_Slightly_Open": geo.mouth_open > MOUTH_OPEN,
            "Mustache": ident.mustache,
            "Narrow_Eyes": geo.eye_ratio < NARROW_EYES,
            "No_Beard": not (ident.mustache or ident.goatee or ident.beard),
            "Pale_Skin": ident.tone < PALE_TONE,
            "Receding_Hairline": ident.receding,
            "Rosy_Cheeks": ident.rosy,
            "Smiling": EXPRESSIONS[var.expression] == "happiness",
            "Wearing_Hat": ident.hat,
            "Wearing_Lipstick": ident.lipstick,
            "Young": ident.age < YOUNG_AGE,
        }
        return np.fromiter((values[a] for a in SYNTH_ATTRIBUTES), np.int64, len(SYNTH_ATTRIBUTES))
