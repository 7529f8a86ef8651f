"""Photos in any accepted form -> ``H x W x 3`` uint8 RGB arrays with a name.

Accepted (docs/predictions.md): file paths (any format :func:`faceptor_core.images.read_image` decodes),
PIL images, numpy arrays ``H x W``, ``H x W x 3`` (or ``x 4``) and torch tensors ``3 x H x W`` of the dtypes
:func:`faceptor_core.images.to_float_images` accepts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..images import _to_uint8_rgb, read_image, to_float_images

PhotoLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor


def _is_single(x: Any) -> bool:
    if isinstance(x, (str, os.PathLike)):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim in (2, 3)
    if isinstance(x, torch.Tensor):
        return x.ndim == 3
    return type(x).__module__.startswith("PIL.")


def as_photo_list(photos: PhotoLike | Sequence[PhotoLike]) -> list[PhotoLike]:
    """One photo or a sequence (or a ``B x H x W x 3`` array / ``B x 3 x H x W`` tensor) -> a list."""
    if _is_single(photos):
        return [photos]
    if isinstance(photos, (np.ndarray, torch.Tensor)):
        if photos.ndim != 4:
            raise ValueError(f"a batch of photos must be 4-D, got shape {tuple(photos.shape)}")
        return list(photos)
    if isinstance(photos, Sequence):
        return list(photos)
    raise TypeError(f"photos must be paths, PIL images, arrays or tensors, got {type(photos).__name__}")


def load_photo(photo: PhotoLike, index: int = 0) -> tuple[np.ndarray, str]:
    """One photo -> (``H x W x 3`` uint8 RGB, its name: the path, else ``photo<index>``)."""
    if isinstance(photo, (str, os.PathLike)):
        return read_image(photo), os.fspath(photo)
    name = f"photo{index}"
    if type(photo).__module__.startswith("PIL."):  # as decoded files are: 16-bit scaled, palettes expanded
        if photo.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGBa", "La"):
            photo = photo.convert("RGBA" if "A" in photo.mode or "transparency" in photo.info else "RGB")
        return _to_uint8_rgb(np.asarray(photo), name), name
    if isinstance(photo, np.ndarray):
        arr = photo
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"{name}: a photo array must be H x W (x 1|3|4), got shape {photo.shape}")
        arr = arr[:, :, :3] if arr.shape[2] != 1 else np.repeat(arr, 3, axis=2)
        if arr.dtype == np.uint8:
            return np.ascontiguousarray(arr), name
        tensor = to_float_images(arr)
    elif isinstance(photo, torch.Tensor):
        tensor = to_float_images(photo.detach().cpu())
        if tensor.shape[0] != 1:
            raise ValueError(f"{name}: a photo tensor must be 3 x H x W, got shape {tuple(photo.shape)}")
    else:
        raise TypeError(f"{name}: unsupported photo type {type(photo).__name__}")
    out = tensor[0].permute(1, 2, 0).mul(255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    return np.ascontiguousarray(out), name
