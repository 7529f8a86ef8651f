"""Gaze crop: the task's :class:`~faceptor_core.crop.CropSpec` on the item's face box (MPIIFaceGaze), or the
whole image (SynthFaces, already a face crop); training adds a flip (yaw negated), a small random affine
and brightness/contrast jitter. Augmentation draws from torch's RNG, which Faceptor seeds per item."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from faceptor_core.crop import CropSpec
from faceptor_tasks.families.augment import EVAL_RNG, is_train_split, to_tensor_image, torch_rng
from faceptor_tasks.families.crop import base_meta, item_crop_matrix
from faceptor_tasks.families.geometry import compose, hflip_matrix, random_affine, warp_image


class GazeTransform:
    def __init__(self, split: str, input_size: int, crop: CropSpec | None = None, flip: bool = True):
        self.train = is_train_split(split)
        self.size, self.crop, self.flip = input_size, crop or CropSpec(method="box"), flip

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image = item["image"]
        h, w = image.shape[:2]
        s = self.size
        m = item_crop_matrix(self.crop, item, s)
        angles = np.asarray(item["target"], np.float32).copy()
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train:
            m = compose(random_affine(s, rng, 0.03, 0.0, 0.05), m)  # no rotation: it would move the gaze angles
            if self.flip and rng.random() < 0.5:
                m = compose(hflip_matrix(s), m)
                angles[1] = -angles[1]
        crop = warp_image(image, m, s)
        if self.train:
            gain, bias = rng.uniform(0.7, 1.3), rng.uniform(-25, 25)
            crop = np.clip(crop.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        return {"image": to_tensor_image(crop), "target": torch.from_numpy(angles), "meta": base_meta(m, h, w, item)}
