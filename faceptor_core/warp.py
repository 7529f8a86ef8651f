"""The non-affine face warp of FaRL and the Faceptor reference (LaPa): align, then tanh-compress the border.

Part of the core because a task's crop (:class:`faceptor_core.crop.CropSpec`, ``warp_factor``) may use it, and
photo inference must cut faces exactly as such a task's training transform does.

An item's geometry is a 2x3 affine ``A`` (original pixels -> aligned crop pixels, e.g. the similarity that puts
five face points on FaRL's template) followed, per axis, by a tanh compression of the crop's outer band
("RoI tanh-warping", Lin et al., CVPR 2019, in FaRL's rectilinear form). With ``u = x / S * 2 - 1`` the
normalised aligned coordinate (``S`` the crop side, normalised by ``S`` as the reference does) and ``f`` the
warp factor, the warped coordinate is

    u' = u                                        for |u| <= 1 - f
    u' = sign(u) * ((1 - f) + f * tanh((|u| - (1 - f)) / f))   otherwise,

so the central ``1 - f`` of the crop is the plain aligned face and everything outside, up to infinity, is
squeezed into the band of width ``f`` (the whole image stays visible). ``f = 0`` is the plain affine crop.
The inverse uses ``arctanh`` with its argument clipped to ``[-0.999, 0.999]`` (as the reference), so the
crop's outermost pixels map to at most ``arctanh(0.999) * f`` beyond the band in normalised units.

Maps are computed in float32 as the reference's (grid, normalisation and tanh in float32, the affine in float64)
and applied with ``cv2.remap`` (border value 0), so warped images and logits match the reference's pipeline.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from .geometry import to3x3

#: The reference's clip of the arctanh argument.
ARCTANH_CLIP = 0.999


@functools.lru_cache(maxsize=16)
def _grid(height: int, width: int) -> np.ndarray:
    """``(H * W) x 2`` float32 (x, y) pixel coordinates, row by row."""
    yy, xx = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    grid = np.stack([xx, yy], axis=-1).reshape(-1, 2)
    grid.flags.writeable = False
    return grid


def _affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``N x 2`` points through the affine 3x3 ``m`` (float64 product, float32 result)."""
    m = np.asarray(m, np.float64)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    out = np.empty(points.shape, np.float32)
    out[:, 0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    out[:, 1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    return out


def _map_band(u: np.ndarray, factor: float, f) -> np.ndarray:
    """Apply ``f`` to the border band ``|u| > 1 - factor`` of normalised coordinates, scaled to the band."""
    u = np.array(u, copy=True)
    if factor <= 0:
        return u
    inner = 1.0 - factor
    hi, lo = u > inner, u < -inner
    u[hi] = f((u[hi] - inner) / factor) * factor + inner
    u[lo] = f((u[lo] + inner) / factor) * factor - inner
    return u


def tanh_compress(u: np.ndarray, factor: float) -> np.ndarray:
    """Aligned normalised coordinates -> warped ones (the border band squeezed by tanh)."""
    return _map_band(u, factor, np.tanh)


def tanh_expand(u: np.ndarray, factor: float) -> np.ndarray:
    """Warped normalised coordinates -> aligned ones (inverse of :func:`tanh_compress`, argument clipped)."""
    return _map_band(u, factor, lambda t: np.arctanh(np.clip(t, -ARCTANH_CLIP, ARCTANH_CLIP)))


def warp_points(points: np.ndarray, affine: np.ndarray, factor: float, size: int) -> np.ndarray:
    """Original-image pixel coordinates -> warped crop pixel coordinates (``N x 2`` float32)."""
    aligned = _affine(np.asarray(points, np.float32).reshape(-1, 2), to3x3(affine))
    if factor <= 0:
        return aligned
    scale = np.float32(size)
    return (tanh_compress(aligned / scale * 2 - 1, factor) + 1) / 2 * scale


def unwarp_points(points: np.ndarray, affine: np.ndarray, factor: float, size: int) -> np.ndarray:
    """Warped crop pixel coordinates -> original-image pixel coordinates (``N x 2`` float32)."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    if factor > 0:
        scale = np.float32(size)
        pts = (tanh_expand(pts / scale * 2 - 1, factor) + 1) / 2 * scale
    return _affine(pts, np.linalg.inv(to3x3(affine)))


Maps = tuple[np.ndarray, np.ndarray]


def _maps(coords: np.ndarray, height: int, width: int) -> Maps:
    xy = coords.reshape(height, width, 2)
    return np.ascontiguousarray(xy[..., 0]), np.ascontiguousarray(xy[..., 1])


def crop_maps(affine: np.ndarray, factor: float, size: int) -> Maps:
    """``cv2.remap`` maps of the warped crop: for each crop pixel, where it samples the original image."""
    return _maps(unwarp_points(_grid(size, size), affine, factor, size), size, size)


def original_maps(affine: np.ndarray, factor: float, size: int, height: int, width: int) -> Maps:
    """``cv2.remap`` maps back to the original: for each original pixel, where it samples the warped crop."""
    return _maps(warp_points(_grid(height, width), affine, factor, size), height, width)


def remap(array: np.ndarray, maps: Maps, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``array`` (``H x W`` or ``H x W x C``) sampled at ``maps`` (border value 0)."""
    return cv2.remap(
        np.ascontiguousarray(array), maps[0], maps[1], interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def warp_to_crop(
    array: np.ndarray, affine: np.ndarray, factor: float, size: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """An original image (``H x W`` or ``H x W x C``) -> its ``size x size`` warped crop (zeros outside)."""
    return remap(array, crop_maps(affine, factor, size), interpolation)


def warp_to_original(
    array: np.ndarray,
    affine: np.ndarray,
    factor: float,
    size: int,
    height: int,
    width: int,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """A ``size x size`` warped crop (e.g. ``S x S x K`` logits) -> the ``height x width`` original geometry
    (zeros where the crop does not reach)."""
    return remap(array, original_maps(affine, factor, size, height, width), interpolation)
