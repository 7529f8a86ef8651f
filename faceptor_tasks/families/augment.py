"""Photometric pipelines (albumentations) and the tensor conversion shared by the family transforms.

Geometry (crop from box, random affine, flips) is done by the families with explicit matrices so that
``meta["affine"]`` is exact; the pipelines here change pixel values only and are keypoint-aware
(landmarks pass through them unchanged).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image

TRAIN_SPLIT_PREFIXES = ("train",)


def is_train_split(split: str) -> bool:
    """``train``, ``train_val``, ``trainval`` -> training pipeline; anything else -> evaluation."""
    return split.startswith(TRAIN_SPLIT_PREFIXES)


def torch_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's RNG (seeded per DataLoader worker and by ``manual_seed``)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))


#: Stand-in generator of evaluation pipelines, which draw nothing (and leave torch's RNG untouched).
EVAL_RNG = np.random.default_rng(0)


def to_tensor_image(image: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 -> ``3 x H x W`` float32 in [0, 1] (no mean/std: the model normalises)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def dense_photometric(occlusion: bool = True, noise: bool = True) -> A.Compose:
    """Random occlusion, noise, grey, gamma and blur, after FaRL's dense-task augmenters."""
    ops: list[Any] = []
    if occlusion:
        ops.append(
            A.CoarseDropout(
                num_holes_range=(1, 1), hole_height_range=(0.1, 0.4), hole_width_range=(0.1, 0.4), fill="random", p=0.5
            )
        )
    if noise:
        ops.append(A.GaussNoise(std_range=(0.02, 0.1), p=0.5))
    ops += [A.ToGray(p=0.1), A.RandomGamma(gamma_limit=(70, 150), p=0.5), A.Blur(blur_limit=(3, 5), p=0.2)]
    return A.Compose(ops, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))


def random_erasing(p: float = 0.25) -> A.Compose:
    """Random erasing with random pixel values (timm's ``re_mode='pixel'``)."""
    return A.Compose([A.Erasing(scale=(0.02, 1 / 3), ratio=(0.3, 3.3), fill="random", p=p)])


class RandAugment:
    """timm's RandAugment (``rand-m9-mstd0.5-inc1`` as in the reference) on a uint8 array.

    The sampled magnitude is capped just below 10: at exactly 10 the increasing posterize keeps 0 bits,
    which Pillow >= 13 rejects (older Pillow returned a black image).
    """

    def __init__(self, size: int, config: str = "rand-m9-mstd0.5-inc1"):
        from timm.data.auto_augment import rand_augment_transform

        hparams = {"translate_const": int(size * 0.45), "img_mean": (128,) * 3, "magnitude_max": 9.99}
        self.op = rand_augment_transform(config, hparams)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.op(Image.fromarray(image)), dtype=np.uint8)


def run_pipeline(pipe: A.Compose, rng: np.random.Generator, **data: Any) -> dict[str, Any]:
    """Run an albumentations pipeline with a seed drawn from ``rng`` (so workers do not repeat draws)."""
    pipe.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    return pipe(**data)
