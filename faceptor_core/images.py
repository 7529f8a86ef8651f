"""Image input: decoding files and bytes, and turning arrays of any accepted dtype into model input.

Accepted inputs (documented in docs/predictions.md):

- files/bytes in any format Pillow reads (OpenCV as a fallback); 16-bit images are scaled to 8 bits
  (``value / 257``), grey and palette images become RGB, alpha is dropped;
- arrays ``H x W x 3`` / ``B x H x W x 3`` (numpy) or ``B x 3 x H x W`` (torch) of dtype
  ``uint8`` (0..255), ``uint16`` (0..65535), other integer types holding 0..255, or floats in ``[0, 1]``.

Anything else (bool masks, floats outside ``[0, 1]``, NaN, integers outside 0..255) is refused with an
error that says what was given, never silently rescaled.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import FaceptorError


class ImageDecodeError(FaceptorError, ValueError):
    """An image file or buffer that cannot be decoded; the message starts with its name."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = str(name), reason
        super().__init__(f"{self.name}: {reason}")


def _to_uint8_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageDecodeError(name, f"unexpected image shape {arr.shape}")
    if arr.shape[2] in (2, 4):  # grey + alpha, RGBA: drop alpha
        arr = arr[:, :, : arr.shape[2] - 1]
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif arr.dtype in (np.int32, np.int64):  # Pillow mode "I": 16-bit data widened to 32 bits
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageDecodeError(name, f"integer pixel values {arr.min()}..{arr.max()} are not 8- or 16-bit")
        arr = ((arr.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageDecodeError(name, "floating-point pixels must be finite and in [0, 1]")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise ImageDecodeError(name, f"unsupported pixel type {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> ``H x W x 3`` uint8 RGB; every failure is an :class:`ImageDecodeError`.

    Pillow decodes (so a corrupt file Pillow rejects is an error, not a partial decode); OpenCV is used only
    for formats Pillow does not know. Images over Pillow's pixel limit (decompression bombs) are refused.
    """
    if not data:
        raise ImageDecodeError(name, "empty file")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGBa", "La"):
                    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
                arr = np.asarray(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(name, f"image too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        arr = None
    except Exception as exc:  # truncated or corrupt data: Pillow's errors vary by format
        raise ImageDecodeError(name, f"cannot decode image ({exc})") from None
    if arr is None:
        return decode_with_opencv(data, name)
    return _to_uint8_rgb(arr, name)


def decode_with_opencv(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded bytes -> ``H x W x 3`` uint8 RGB through OpenCV (any bit depth, scaled as :func:`decode_image`)."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if arr is None or arr.size == 0:
        raise ImageDecodeError(name, "cannot decode image (unknown image format)")
    if arr.ndim == 3 and arr.shape[2] >= 3:  # BGR(A) -> RGB(A)
        arr = np.concatenate([arr[:, :, 2::-1], arr[:, :, 3:]], axis=2)
    return _to_uint8_rgb(arr, name)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB; errors name the file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(str(path), "no such file") from None
    except OSError as exc:
        raise ImageDecodeError(str(path), f"cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def _float_from_array(x: torch.Tensor, sixteen_bit: bool = False) -> torch.Tensor:
    """One batch tensor of any accepted dtype -> float32 in [0, 1]; refuses what it cannot interpret."""
    what = f"images ({'uint16' if sixteen_bit else str(x.dtype).removeprefix('torch.')})"
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if sixteen_bit or x.dtype == torch.uint16:
        return x.float() / 65535.0
    if x.dtype == torch.bool:
        raise TypeError(f"{what}: boolean arrays are masks, not images; give uint8 0..255 or float 0..1")
    if not x.is_floating_point():
        lo, hi = (int(x.min()), int(x.max())) if x.numel() else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"{what}: integer pixels must be 0..255 (got {lo}..{hi}); use uint16 for 16-bit")
        return x.float() / 255.0
    if x.numel():
        if not torch.isfinite(x).all():
            raise ValueError(f"{what}: images contain NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{what}: floating-point images must be in [0, 1] (got {lo:.4g}..{hi:.4g}); "
                "for 0..255 values divide by 255 or pass uint8"
            )
    return x


def _as_tensor(a: np.ndarray) -> tuple[torch.Tensor, bool]:
    a = np.ascontiguousarray(a)
    if a.dtype == np.uint16:  # torch's uint16 supports few ops: widen, remember the meaning
        return torch.from_numpy(a.astype(np.int32)), True
    if a.dtype.kind not in "biuf":
        raise TypeError(f"unsupported image array dtype {a.dtype}")
    if not a.flags.writeable:  # e.g. np.asarray(PIL image): torch wants writable memory
        a = a.copy()
    return torch.from_numpy(a), False


def to_float_images(images: torch.Tensor | np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """Images (``B x 3 x H x W`` tensor, ``(B x) H x W x 3`` array or a list of equal-sized arrays) of any
    accepted dtype -> a float ``B x 3 x H x W`` batch in ``[0, 1]``."""
    if isinstance(images, (list, tuple)):
        arrays = [np.asarray(a) for a in images]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"images in one batch must share a size, got {sorted({a.shape for a in arrays})}")
        images = np.stack(arrays)
    sixteen_bit = False
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"numpy images must be (B x) H x W x 3, got shape {images.shape}")
        tensor, sixteen_bit = _as_tensor(images)
        images = tensor.permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor, a numpy array or a list of arrays, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B x 3 x H x W, got shape {tuple(images.shape)}")
    return _float_from_array(images, sixteen_bit)
