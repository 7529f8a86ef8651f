"""Rasterisation helpers of SynthFaces: one palette canvas for image and labels, image effects.

The face is painted once, into a Pillow ``P`` (palette) image: every painted element gets a palette index
that stands for a (colour, LaPa class) pair, so the RGB image and the parsing map are two look-ups of the
same pixels and cannot disagree. Pillow truncates float coordinates, so drawing takes pixel coordinates
(centres at integers) shifted by :data:`PILLOW_OFFSET`; lines are drawn through the floored points, so a
line through landmarks paints the pixel holding each landmark.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

#: Palette indices below this hold the background ramp (class background).
RAMP_LEVELS = 128
_RAMP = np.linspace(0, 1, RAMP_LEVELS, dtype=np.float32)[:, None]


#: Drawing takes Pillow coordinates: pixel coordinates (centres at integers) + this offset.
PILLOW_OFFSET = 0.5


def xy(points: np.ndarray) -> list[float]:
    """Pillow coordinates as a flat list (Pillow truncates, so pixel i spans [i, i + 1) there)."""
    return points.ravel().tolist()


def ixy(points: np.ndarray) -> list[int]:
    """Pillow coordinates floored: a line through them paints the pixel holding each point."""
    return np.floor(points).astype(np.int64).ravel().tolist()


@lru_cache(maxsize=8)
def grid(size: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel coordinates in image sides: a 1 x (W * channels) row (each x repeated per channel)
    and an H x 1 column."""
    c = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / size
    return np.repeat(c, channels)[None, :], c[:, None]


@lru_cache(maxsize=128)
def gradient_index(size: int, direction: int) -> bytes:
    """A linear ramp of palette indices 0..RAMP_LEVELS-1 in one of 16 directions (as raw bytes)."""
    gx, gy = grid(size)
    a = direction * np.pi / 8
    t = (gx * np.cos(a) + gy * np.sin(a)) * (1 / np.sqrt(2)) + 0.5
    return np.clip(t * (RAMP_LEVELS - 1), 0, RAMP_LEVELS - 1).astype(np.uint8).tobytes()


@lru_cache(maxsize=8)
def noise_bank(size: int) -> np.ndarray:
    """Fixed Gaussian noise, (size + 32) x 3 (size + 32) (channels interleaved), cropped per sample."""
    return np.random.default_rng(12345).standard_normal((size + 32, 3 * (size + 32))).astype(np.float32)


class PaletteCanvas:
    """A face painted once; :meth:`result` gives the RGB image and the LaPa class map."""

    def __init__(self, size: int, direction: int, c1: np.ndarray, c2: np.ndarray):
        self.img = Image.frombytes("P", (size, size), gradient_index(size, direction))
        self.draw = ImageDraw.Draw(self.img)
        self.palette = np.zeros((256, 3), np.uint8)
        self.palette[:RAMP_LEVELS] = (c1 + _RAMP * (c2 - c1)).astype(np.uint8)
        self.classes = np.zeros(256, np.uint8)
        self._inks: dict[tuple, int] = {}

    def ink(self, colour: tuple[int, int, int], cls: int) -> int:
        key = (colour, cls)
        i = self._inks.get(key)
        if i is None:
            i = RAMP_LEVELS + len(self._inks)
            if i > 255:
                raise RuntimeError("palette full")
            self._inks[key] = i
            self.palette[i] = colour
            self.classes[i] = cls
        return i

    def fill(self, pts: np.ndarray, colour: tuple[int, int, int], cls: int) -> None:
        self.draw.polygon(xy(pts), fill=self.ink(colour, cls))

    def line(
        self, pts: np.ndarray, colour: tuple[int, int, int], cls: int, width: int = 1, closed: bool = False
    ) -> None:
        if closed:
            pts = np.concatenate([pts, pts[:1]])
        self.draw.line(ixy(pts), fill=self.ink(colour, cls), width=width)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(self.img)
        return np.take(self.palette, idx, axis=0), np.take(self.classes, idx)


class Overlay:
    """Things painted over the finished face (glasses, hat, occluders) on the RGB image and the class map;
    ``mask`` marks what covers the face (for landmark visibility)."""

    def __init__(self, image: np.ndarray, parsing: np.ndarray):
        self.img = Image.fromarray(image)
        self.par = Image.fromarray(parsing)
        self.mask: Image.Image | None = None
        self.di = ImageDraw.Draw(self.img)

    def line(self, pts: np.ndarray, colour: tuple[int, int, int], width: int = 1, closed: bool = False) -> None:
        """Image only."""
        if closed:
            pts = np.concatenate([pts, pts[:1]])
        self.di.line(ixy(pts), fill=colour, width=width)

    def occlude(self, pts: np.ndarray, colour: tuple[int, int, int]) -> None:
        """An opaque object: its pixels become background in the class map."""
        p = xy(pts)
        self.di.polygon(p, fill=colour)
        ImageDraw.Draw(self.par).polygon(p, fill=0)
        if self.mask is None:
            self.mask = Image.new("L", self.img.size, 0)
        ImageDraw.Draw(self.mask).polygon(p, fill=255)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an H x W x C image (edges replicated), as float32.

    Runs on the H x (W * C) view, so each tap is one long contiguous array operation.
    """
    h, w, c = image.shape
    r = max(1, int(np.ceil(2 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    p = np.pad(np.asarray(image, np.float32), ((r, r), (r, r), (0, 0)), mode="edge").reshape(h + 2 * r, -1)
    wc = w * c
    rows = k[0] * p[:, 0:wc]
    for i in range(1, 2 * r + 1):
        rows += k[i] * p[:, i * c : i * c + wc]
    out = k[0] * rows[0:h]
    for i in range(1, 2 * r + 1):
        out += k[i] * rows[i : i + h]
    return out.reshape(h, w, c)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with Pillow's JPEG codec at ``quality`` (block and ringing artefacts)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    h, w = image.shape[:2]
    try:  # the JPEG decoder on the bytes, without the file-format parsing of Image.open
        return np.array(Image.frombytes("RGB", (w, h), data, "jpeg", "RGB", ""))
    except (OSError, ValueError):
        with Image.open(io.BytesIO(data)) as im:
            return np.array(im.convert("RGB"))
