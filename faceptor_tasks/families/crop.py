"""The image-level pipeline shared by age, expression, attribute and recognition tasks (112 px).

Train (as the reference's timm pipeline): resize (bicubic), horizontal flip 0.5, RandAugment
``rand-m9-mstd0.5-inc1``, random erasing 0.25. Eval: resize (bilinear); a whole image is resized with Pillow's
(antialiased) bilinear filter, exactly as the reference's ``transforms.Resize`` on a PIL image. When a raw item
has a ``"box"`` the crop is that box squared, else the whole image. ``meta["affine"]`` records resize and flip
(RandAugment's own geometric ops are not recorded: image-level targets do not move).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from .augment import EVAL_RNG, RandAugment, is_train_split, random_erasing, run_pipeline, to_tensor_image, torch_rng
from .geometry import box_to_crop, compose, hflip_matrix, resize_matrix, warp_image


def base_meta(affine: np.ndarray, height: int, width: int, item: dict[str, Any]) -> dict[str, Any]:
    """``meta`` of a transformed item: the affine, the original size and the raw item's own meta."""
    meta = {"affine": np.asarray(affine, np.float32), "orig_size": np.asarray([height, width], np.int64)}
    meta.update(item.get("meta") or {})
    return meta


class FaceCropTransform:
    """Raw item -> model-ready item for image-level tasks.

    Args:
        split: ``train*`` selects the training pipeline.
        input_size: crop side ``S``.
        target: maps the raw target to its tensor.
        flip, randaugment, erasing: training augmentations (erasing is a probability).
        box_scale: fraction of the crop the box fills when the item has a box.
    """

    def __init__(
        self,
        split: str,
        input_size: int,
        target: Callable[[Any], torch.Tensor],
        flip: bool = True,
        randaugment: bool = True,
        erasing: float = 0.25,
        box_scale: float = 1.0,
    ):
        self.train = is_train_split(split)
        self.size, self.target = input_size, target
        self.flip, self.box_scale = flip, box_scale
        self.randaugment = RandAugment(input_size) if self.train and randaugment else None
        self.erasing = random_erasing(erasing) if self.train and erasing > 0 else None

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image = item["image"]
        h, w = image.shape[:2]
        s = self.size
        m = box_to_crop(item["box"], s, self.box_scale) if item.get("box") is not None else resize_matrix(h, w, s)
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train and self.flip and rng.random() < 0.5:
            m = compose(hflip_matrix(s), m)
        if not self.train and item.get("box") is None:
            crop = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((s, s), Image.BILINEAR))
        else:
            crop = warp_image(image, m, s, cv2.INTER_CUBIC if self.train else cv2.INTER_LINEAR)
        if self.randaugment is not None:
            crop = self.randaugment(crop)
        if self.erasing is not None:
            crop = run_pipeline(self.erasing, rng, image=crop)["image"]
        return {"image": to_tensor_image(crop), "target": self.target(item["target"]), "meta": base_meta(m, h, w, item)}


def long_target(value: Any) -> torch.Tensor:
    """Class index / identity -> int64 scalar tensor."""
    return torch.tensor(int(value), dtype=torch.int64)


def float_target(value: Any) -> torch.Tensor:
    """Scalar or vector -> float32 tensor."""
    return torch.as_tensor(np.asarray(value, np.float32))
