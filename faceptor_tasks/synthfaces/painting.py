"""Painting one SynthFaces face: the identity's colours, the scene behind the person and the facial parts.

Everything takes Pillow coordinates (pixel coordinates + :data:`.raster.PILLOW_OFFSET`) and paints back to
front into a :class:`.raster.PaletteCanvas` (image and class map at once) or, for what lies over the face
(glasses, hat, occluders), an :class:`.raster.Overlay`. Image-only details (lines, facial hair, nostrils,
teeth) carry the class of the part they lie on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import labels as L
from .curves import ellipse
from .geometry import FaceGeometry
from .identity import Identity
from .raster import PILLOW_OFFSET, Overlay, PaletteCanvas

RGB = tuple[int, int, int]
#: Uniform draws per scene: backdrop (7), clutter count (1), clothes (3), 4 clutter shapes (13 each).
SCENE_VALUES = 11 + 13 * 4
_CIRCLE = np.linspace(0, 2 * np.pi, 12, endpoint=False)
_LOWER_OUTER = [54, 55, 56, 57, 58, 59, 48]
EYE_WHITE: RGB = (236, 232, 226)
INNER_MOUTH: RGB = (70, 18, 24)
TEETH: RGB = (238, 234, 220)
PUPIL: RGB = (15, 12, 12)


def rgb(c, f: float = 1.0) -> RGB:
    """An RGB triple of ints from floats, scaled by ``f`` and capped at 255."""
    return (int(min(255, c[0] * f)), int(min(255, c[1] * f)), int(min(255, c[2] * f)))


class Palette(NamedTuple):
    """The paint colours of one identity."""

    skin: RGB
    neck: RGB
    scalp: RGB
    line: RGB  # wrinkles
    cheek: RGB
    nose: RGB
    nose_line: RGB
    bridge: RGB
    nostril: RGB
    lid: RGB
    hair: RGB
    hair_back: RGB
    beard: RGB
    brow: RGB
    lip_lo: RGB
    lip_up: RGB
    seam: RGB  # the line between closed lips


@lru_cache(maxsize=4096)
def palette(ident: Identity) -> Palette:
    """The identity's paint colours (cached)."""
    skin, hair, lip = np.asarray(ident.skin_rgb), np.asarray(ident.hair_rgb), np.asarray(ident.lip_rgb)
    brow = hair * 0.6 + skin * 0.1 if ident.hair_kind == 2 and ident.grey < 0.5 else hair
    return Palette(
        skin=rgb(skin),
        neck=rgb(skin, 0.82),
        scalp=rgb(skin, 1.03),
        line=rgb(skin, 0.72),
        cheek=rgb(skin * 0.7 + np.array((235.0, 110.0, 120.0)) * 0.3),
        nose=rgb(skin, 0.94),
        nose_line=rgb(skin, 0.78),
        bridge=rgb(skin, 1.07),
        nostril=rgb(skin, 0.45),
        lid=rgb(skin, 0.35),
        hair=rgb(hair),
        hair_back=rgb(hair, 0.85),
        beard=rgb(hair, 0.8),
        brow=rgb(brow, 0.7),
        lip_lo=rgb(lip),
        lip_up=rgb(lip, 0.88),
        seam=rgb(lip, 0.55),
    )


class Blob(NamedTuple):
    """One piece of background clutter (pixels) and its colour."""

    points: np.ndarray
    colour: RGB


@dataclass(frozen=True)
class Scene:
    """What lies behind the person: a two-colour gradient backdrop, clutter, and the clothes' colour."""

    direction: int  # one of 16 gradient directions
    colours: tuple[np.ndarray, np.ndarray]  # gradient end colours (float RGB)
    clothes: RGB
    clutter: tuple[Blob, ...]

    @staticmethod
    def draw(rng: np.random.Generator, size: int) -> Scene:
        """A random scene for a ``size`` pixel image (one draw of :data:`SCENE_VALUES` uniforms)."""
        u = rng.random(SCENE_VALUES)
        clutter = tuple(_blob(u[11 + 13 * k : 24 + 13 * k], size) for k in range(int(u[7] * 5)))
        return Scene(int(u[0] * 16), (u[1:4] * 255, u[4:7] * 255), rgb(u[8:11] * 255), clutter)

    def canvas(self, size: int) -> PaletteCanvas:
        """A canvas holding the backdrop."""
        return PaletteCanvas(size, self.direction, self.colours[0], self.colours[1])


def _blob(u: np.ndarray, size: int) -> Blob:
    """An ellipse or a random polygon from 13 uniforms: centre (2), radii (2), kind, colour (3), angles (5)."""
    centre, radii, kind, colour = u[0:2] * size, u[2:4], u[4], u[5:8] * 255
    ang = np.sort(u[8:13]) * (2 * np.pi) if kind < 0.5 else _CIRCLE
    r = (0.05 + 0.25 * radii) * size
    return Blob(np.stack([centre[0] + r[0] * np.cos(ang), centre[1] + r[1] * np.sin(ang)], 1), rgb(colour))


class Occluder(NamedTuple):
    """An object in front of the face, canonical coordinates, and its colour."""

    points: np.ndarray
    colour: RGB

    @staticmethod
    def draw(landmarks: np.ndarray, rng: np.random.Generator) -> Occluder:
        """A random ellipse, bar or polygon near a random landmark (canonical ``landmarks``)."""
        centre = landmarks[int(rng.integers(68))] + rng.normal(0, 0.12, 2)
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
        return Occluder(pts, (r, g, b))


# -- the person, back to front ---------------------------------------------------------------------------
def paint_clutter(cv: PaletteCanvas, scene: Scene) -> None:
    for blob in scene.clutter:
        cv.fill(blob.points, blob.colour, L.BACKGROUND)


def paint_head(cv: PaletteCanvas, ident: Identity, pal: Palette, px: FaceGeometry, clothes: RGB, lw: int) -> None:
    """Back hair, neck and clothes, scalp, skin with cheeks, wrinkles and facial hair, then the front hair."""
    cv.fill(px.hair_back, pal.hair_back, L.HAIR)
    cv.fill(px.neck, pal.neck, L.BACKGROUND)
    cv.fill(px.torso, clothes, L.BACKGROUND)
    if px.scalp is not None:
        cv.fill(px.scalp, pal.scalp, L.SKIN)
    cv.fill(px.face, pal.skin, L.SKIN)
    if ident.rosy:
        for ch in px.cheeks:
            cv.fill(ch, pal.cheek, L.SKIN)
    for w in px.wrinkles:
        cv.line(w, pal.line, L.SKIN, width=lw)
    for part in (px.beard, px.goatee, px.mustache):
        if part is not None:
            cv.fill(part, pal.beard, L.SKIN)
    if px.hair_front is not None:
        cv.fill(px.hair_front, pal.hair, L.HAIR)


def paint_nose(cv: PaletteCanvas, pal: Palette, px: FaceGeometry) -> None:
    """The nose with its base line through landmarks 31-35, the bridge line and the nostrils."""
    lm = px.landmarks
    cv.fill(px.nose, pal.nose, L.NOSE)
    cv.line(lm[31:36], pal.nose_line, L.NOSE)
    cv.line(lm[27:31], pal.bridge, L.NOSE)
    for n in px.nostrils:
        cv.fill(n, pal.nostril, L.NOSE)


def paint_brows(cv: PaletteCanvas, pal: Palette, px: FaceGeometry) -> None:
    """Each brow: the polygon plus its spine through the landmarks."""
    lm = px.landmarks
    cv.fill(px.brows[0], pal.brow, L.LEFT_BROW)
    cv.line(lm[17:22], pal.brow, L.LEFT_BROW)
    cv.fill(px.brows[1], pal.brow, L.RIGHT_BROW)
    cv.line(lm[22:27], pal.brow, L.RIGHT_BROW)


def paint_eyes(cv: PaletteCanvas, pal: Palette, px: FaceGeometry) -> None:
    """The eye whites, outlined by the lid line (same class); irises come later (:func:`paint_irises`)."""
    for e, cls in ((px.eyes[0], L.LEFT_EYE), (px.eyes[1], L.RIGHT_EYE)):
        cv.fill(e, EYE_WHITE, cls)
        cv.line(e, pal.lid, cls, closed=True)


def paint_mouth(cv: PaletteCanvas, pal: Palette, px: FaceGeometry) -> None:
    """Lower lip, upper lip, inner mouth and teeth (or the seam of a closed mouth), outer contours last."""
    lm = px.landmarks
    cv.fill(px.lower_lip, pal.lip_lo, L.LOWER_LIP)
    cv.fill(px.upper_lip, pal.lip_up, L.UPPER_LIP)
    if px.inner_mouth is not None:
        cv.fill(px.inner_mouth, INNER_MOUTH, L.INNER_MOUTH)
        if px.teeth is not None:
            cv.fill(px.teeth, TEETH, L.INNER_MOUTH)
    else:
        cv.line(px.lip_line, pal.seam, L.UPPER_LIP)
    cv.line(lm[_LOWER_OUTER], pal.lip_lo, L.LOWER_LIP)
    cv.line(lm[48:55], pal.lip_up, L.UPPER_LIP)


def paint_person(cv: PaletteCanvas, ident: Identity, px: FaceGeometry, scene: Scene, lw: int) -> None:
    """Scene clutter, then the person back to front, in Pillow coordinates."""
    pal = palette(ident)
    paint_clutter(cv, scene)
    paint_head(cv, ident, pal, px, scene.clothes, lw)
    paint_nose(cv, pal, px)
    paint_brows(cv, pal, px)
    paint_eyes(cv, pal, px)
    paint_mouth(cv, pal, px)


def paint_irises(image: np.ndarray, parsing: np.ndarray, px: FaceGeometry, radius: float, ident: Identity) -> None:
    """Iris and pupil discs, clipped to the eye classes (they never change the parsing map)."""
    size = image.shape[0]
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
    block[d2 < 0.2] = PUPIL


def paint_accessories(cv: Overlay, ident: Identity, px: FaceGeometry, lw: int) -> None:
    """Glasses (image only) and the hat (background class, an occluder)."""
    size = cv.img.size[0]
    if px.glasses is not None:
        frame = rgb(ident.glasses_rgb)
        g0, g1 = px.glasses
        for g in (g0, g1):
            cv.line(g, frame, width=lw + (size >= 160), closed=True)
        lm = px.landmarks
        # ring point 0 is the rightmost (angle 0), point 10 the leftmost: bridge, then the two temples
        cv.line(np.stack([g0[0], g1[10]]), frame, width=lw)
        cv.line(np.stack([g0[10], lm[0] * 0.85 + lm[36] * 0.15]), frame, width=lw)
        cv.line(np.stack([g1[0], lm[16] * 0.85 + lm[45] * 0.15]), frame, width=lw)
    if px.hat is not None:
        cv.occlude(px.hat, rgb(ident.hat_rgb))
