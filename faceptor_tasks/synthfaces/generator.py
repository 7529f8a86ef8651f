"""SynthFaces: a procedural face generator with exact labels, deterministic from ``(seed, index)``.

A sample is drawn in three steps: the identity's traits (:mod:`.identity`), the sample's variation
(:meth:`SynthFaces.describe`: expression, gaze, pose, scene and image effects) and the rendering
(:meth:`SynthFaces.render`). Every label is computed from the same canonical geometry that is painted
(:mod:`.geometry`); image effects (lighting, blur, noise, JPEG) touch the image only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from .geometry import MOUTH_OPEN, NARROW_EYES, FaceGeometry, face_geometry
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
from .painting import Occluder, Scene, paint_accessories, paint_irises, paint_person
from .pose import HeadPose, pose_transform
from .raster import PILLOW_OFFSET, Overlay, gaussian_blur, grid, jpeg_roundtrip, noise_bank

__all__ = ["EXPRESSIONS", "LAPA_CLASSES", "SYNTH_ATTRIBUTES", "SynthFaces", "SynthSample", "Variation"]

#: Blur radius (pixels at 112 px) from which Blurry is set.
BLURRY_RADIUS = 1.0
#: Canonical unit in image sides at pose scale 1 (the face is about 0.6 of the image wide).
UNIT = 0.3
#: Canonical y at the image centre (the face sits a little high, so that the chin keeps a margin).
Y_OFFSET = 0.06


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
    pose: HeadPose  # yaw and roll (radians), scale, shift (x, y) pixels; see .pose for the conventions

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

    def head_pose(self, size: int) -> HeadPose:
        """The pose in an image of ``size`` pixels (the shift in pixels)."""
        return HeadPose(self.yaw, self.roll, self.scale, (self.shift[0] * size, self.shift[1] * size))

    def mirrored(self) -> Variation:
        """The variation that renders the horizontal mirror image of this face: yaw, roll, the horizontal
        shift and the gaze yaw negated (SynthFaces' faces are left-right symmetric). The scene, lighting and
        occluder are not mirrored."""
        return replace(
            self,
            gaze=(self.gaze[0], -self.gaze[1]),
            roll=-self.roll,
            yaw=-self.yaw,
            shift=(-self.shift[0], self.shift[1]),
        )


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

    def __init__(
        self,
        seed: int = 0,
        size: int = 112,
        num_identities: int = 1000,
        identity_offset: int = 0,
        variation: float = 1.0,
        effects: bool = True,
        occlusion: float = 0.3,
    ):
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
        face = dict(
            expression=expr,
            intensity=1.0 if name == "neutral" else 0.55 + 0.45 * u[1],
            open_scale=0.0 if name == "happiness" and u[2] < 0.35 else 0.7 + 0.5 * u[3],  # 0: a closed smile
            gaze=(0.7 * u[4] - 0.35, u[5] - 0.5),
            roll=float(np.clip(0.15 * rng.standard_normal(), -0.4, 0.4)) * v,
            scale=1 + (0.25 * u[6] - 0.15) * v,
            shift=((0.1 * u[7] - 0.05) * v, (0.1 * u[8] - 0.05) * v),
            yaw=(0.9 * u[9] - 0.45) * v,
            scene_seed=int(u[10] * 2**31),
        )
        if not self.effects:
            return Variation(**face, occluder=False)
        return Variation(**face, **self._effect_draws(u))

    def _effect_draws(self, u: list[float]) -> dict:
        """Occluder, lighting, blur, noise and JPEG from the uniforms ``u[11:19]``."""
        return dict(
            occluder=u[11] < self.occlusion,
            brightness=0.75 + 0.4 * u[12],
            gradient=0.7 * u[13],
            gradient_angle=2 * np.pi * u[14],
            vignette=0.3 * u[15],
            blur=0.3 + 1.5 * u[16] / 0.25 if u[16] < 0.25 else 0.0,
            noise=2 + 8 * u[17] / 0.5 if u[17] < 0.5 else 0.0,
            jpeg=25 + int(65 * u[18] / 0.4) if u[18] < 0.4 else 0,
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
        geo = self._geometry(self.identity(self.identity_of(index)), var)
        return (self._transform(var)(geo.landmarks) - PILLOW_OFFSET).astype(np.float32)

    # -- rendering ----------------------------------------------------------------------------------------
    @staticmethod
    def _geometry(ident: Identity, var: Variation) -> FaceGeometry:
        return face_geometry(ident, EXPRESSIONS[var.expression], var.intensity, var.gaze, var.open_scale)

    def _transform(self, var: Variation):
        """Canonical -> Pillow coordinates under the variation's pose."""
        return pose_transform(self.size, var.head_pose(self.size), UNIT, Y_OFFSET, PILLOW_OFFSET)

    def render(self, ident: Identity, var: Variation) -> SynthSample:
        """Paint ``ident`` under ``var`` and derive every label from the painted geometry."""
        size = self.size
        rng = np.random.default_rng(var.scene_seed)
        scene = Scene.draw(rng, size)
        geo = self._geometry(ident, var)
        tf = self._transform(var)
        px = geo.transformed(tf)  # Pillow coordinates from here on
        unit_px = UNIT * size * var.scale
        lw = max(1, round(size / 112))

        canvas = scene.canvas(size)
        paint_person(canvas, ident, px, scene, lw)
        image, parsing = canvas.result()
        paint_irises(image, parsing, px, geo.iris_radius * unit_px * np.cos(var.yaw), ident)
        landmarks = (px.landmarks - PILLOW_OFFSET).astype(np.float32)
        mask = None
        if px.glasses is not None or px.hat is not None or var.occluder:
            over = Overlay(image, parsing)
            paint_accessories(over, ident, px, lw)
            if var.occluder:
                occluder = Occluder.draw(geo.landmarks, rng)
                over.occlude(tf(occluder.points), occluder.colour)
            image, parsing = np.asarray(over.img), np.array(over.par)
            mask = None if over.mask is None else np.asarray(over.mask)
        visible = self._visibility(landmarks, mask)
        image = self._effects(image, var, landmarks[30], unit_px)
        return SynthSample(
            image=image,
            landmarks=landmarks,
            visible=visible,
            parsing=parsing,
            age=ident.age,
            expression=var.expression,
            attributes=self._attributes(ident, geo, var),
            identity=ident.identity,
            gaze=np.asarray(var.gaze, np.float32),
            pose=var.head_pose(size),
        )

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
        out = image.reshape(size, 3 * size) * self._lighting(var, centre, unit_px)
        if var.blur > 0:
            out = gaussian_blur(out.reshape(size, size, 3), var.blur * size / 112).reshape(size, 3 * size)
        if var.noise > 0:
            ox, oy = var.scene_seed % 32, (var.scene_seed // 32) % 32
            out += noise_bank(size)[oy : oy + size, 3 * ox : 3 * (ox + size)] * np.float32(var.noise)
        out = np.clip(out, 0, 255, out=out).astype(np.uint8).reshape(size, size, 3)
        return jpeg_roundtrip(out, var.jpeg) if var.jpeg else out

    def _lighting(self, var: Variation, centre: np.ndarray, unit_px: float) -> np.ndarray:
        """The H x 3W gain: brightness, a linear gradient and a vignette around ``centre`` (the nose tip)."""
        size = self.size
        gx, gy = grid(size, channels=3)
        f32 = np.float32
        row = gx * f32(np.cos(var.gradient_angle) * var.gradient) + f32(var.brightness)
        col = gy * f32(np.sin(var.gradient_angle) * var.gradient)
        if var.vignette <= 0:
            return row + col
        # separable: a falloff in x times a falloff in y, around the face
        cx, cy = (centre[0] - (size - 1) / 2) / size, (centre[1] - (size - 1) / 2) / size
        k, cap = f32(var.vignette * (size / (1.8 * unit_px)) ** 2), f32(0.75 * var.vignette)
        vx = f32(1) - np.minimum((gx - f32(cx)) ** 2 * k, cap)
        vy = f32(1) - np.minimum((gy - f32(cy)) ** 2 * k, cap)
        return (row * vx) * vy + (col * vy) * vx

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
