"""The image-level pipeline shared by age, expression, attribute and recognition tasks (112 px).

Train (as the reference's timm pipeline): resize (bicubic), horizontal flip 0.5, RandAugment
``rand-m9-mstd0.5-inc1``, random erasing 0.25. Eval: resize (bilinear). The crop is the task's
:class:`~faceptor_core.crop.CropSpec` applied to what the raw item supplies: ``"align_points"`` (5 x 2),
a ``"box"``, or neither (the whole image, already aligned by the dataset; at evaluation it is resized with
Pillow's antialiased bilinear filter, exactly as the reference's ``transforms.Resize`` on a PIL image).
``meta["affine"]`` records crop and flip (RandAugment's own geometric ops are not recorded: image-level targets
do not move). A flipped item's target goes through the task's flip rule (:class:`~faceptor_core.flip.LabelFlip`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from faceptor_core.crop import CropSpec
from faceptor_core.flip import LabelFlip

from .augment import EVAL_RNG, RandAugment, is_train_split, random_erasing, run_pipeline, to_tensor_image, torch_rng
from .geometry import random_hflip, warp_image


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
        flip: horizontal flip (probability 0.5) in training: the task's resolved flip rule (applied to the target of
            a flipped item), ``True`` (labels unchanged by a flip) or ``False``/``None`` (no flip).
        randaugment, erasing: training augmentations (erasing is a probability).
        crop: the task's crop (default: :class:`~faceptor_core.crop.CropSpec`'s defaults).
    """

    def __init__(
        self,
        split: str,
        input_size: int,
        target: Callable[[Any], torch.Tensor],
        flip: bool | LabelFlip | None = True,
        randaugment: bool = True,
        erasing: float = 0.25,
        crop: CropSpec | None = None,
    ):
        self.train = is_train_split(split)
        self.size, self.target = input_size, target
        self.flip, self.crop = flip_of(flip), crop or CropSpec()
        self.randaugment = RandAugment(input_size) if self.train and randaugment else None
        self.erasing = random_erasing(erasing) if self.train and erasing > 0 else None

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image = item["image"]
        h, w = image.shape[:2]
        s = self.size
        m = item_crop_matrix(self.crop, item, s)
        rng = torch_rng() if self.train else EVAL_RNG
        m, flipped = random_hflip(m, s, rng, self.train and self.flip is not None)
        if not self.train and item.get("box") is None and item.get("align_points") is None:  # the whole image
            crop = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((s, s), Image.BILINEAR))
        else:
            crop = warp_image(image, m, s, cv2.INTER_CUBIC if self.train else cv2.INTER_LINEAR)
        if self.randaugment is not None:
            crop = self.randaugment(crop)
        if self.erasing is not None:
            crop = run_pipeline(self.erasing, rng, image=crop)["image"]
        target = self.target(item["target"])
        if flipped and self.flip is not None:
            target = self.flip.relabel(target)
        return {"image": to_tensor_image(crop), "target": target, "meta": base_meta(m, h, w, item)}


def flip_of(flip: bool | LabelFlip | None) -> LabelFlip | None:
    """A transform's ``flip`` argument as a rule: ``True`` -> labels unchanged by a flip, ``False``/``None`` -> no
    flip (None)."""
    if isinstance(flip, LabelFlip) or flip is None:
        return flip
    return LabelFlip("unchanged", None, (), 0) if flip else None


def item_crop_matrix(crop: CropSpec, item: dict[str, Any], size: int, box: Any = None) -> np.ndarray:
    """The crop of a raw item: ``crop`` applied to its ``align_points``, its ``box`` (or ``box`` given) or the
    whole image -- the same function photo inference uses on detected faces."""
    points = item.get("align_points")
    box = item.get("box") if box is None else box
    return crop.matrix(
        size,
        points=None if points is None else np.asarray(points, np.float64),
        box=None if box is None else np.asarray(box, np.float64),
        image_hw=item["image"].shape[:2],
    )


def long_target(value: Any) -> torch.Tensor:
    """Class index / identity -> int64 scalar tensor."""
    return torch.tensor(int(value), dtype=torch.int64)


def float_target(value: Any) -> torch.Tensor:
    """Scalar or vector -> float32 tensor."""
    return torch.as_tensor(np.asarray(value, np.float32))
