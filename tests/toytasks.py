"""Small learnable tasks for engine tests: the brightest colour channel (classification) and the mean
brightness (regression) of flat-colour images with noise."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from faceptor_core import CropSpec, TaskSpec, hookimpl
from faceptor_core.geometry import warp_image
from faceptor_core.spec import MetricMeta


class ColourDataset(Dataset):
    def __init__(self, root, split, transform=None, length: int = 64, size: int = 32):
        rng = np.random.default_rng(0 if split == "train" else 1)
        self.colours = rng.random((length, 3)).astype(np.float32)
        self.size, self.transform = size, transform

    def __len__(self):
        return len(self.colours)

    def __getitem__(self, i):
        c = self.colours[i]
        img = np.broadcast_to((c * 255).astype(np.uint8), (self.size, self.size, 3)).copy()
        item = {"image": img, "target": {"channel": int(np.argmax(c)), "brightness": float(c.mean())}}
        return self.transform(item) if self.transform else item


class ToTensor:
    """Crop (the spec's default crop: the whole image here, as the items have no points or box), then tensor."""

    def __init__(self, key: str, size: int = 32):
        self.key, self.size, self.crop = key, size, CropSpec()

    def __call__(self, item):
        m = self.crop.matrix(
            self.size, points=item.get("align_points"), box=item.get("box"), image_hw=item["image"].shape[:2]
        )
        img = torch.from_numpy(warp_image(item["image"], m, self.size)).permute(2, 0, 1).float() / 255
        img = (img + 0.02 * torch.randn_like(img)).clamp(0, 1)  # seeded per item by the engine
        target = item["target"][self.key]
        return {
            "image": img,
            "target": torch.tensor(target, dtype=torch.float32 if self.key == "brightness" else torch.int64),
            "meta": {"affine": m.astype(np.float32)},
        }


class CELoss(nn.Module):
    def forward(self, raw, target):
        return nn.functional.cross_entropy(raw, target)


class MSELoss(nn.Module):
    def forward(self, raw, target):
        return nn.functional.mse_loss(raw[:, 0], target)


class Accuracy:
    meta = {"accuracy": MetricMeta(better="higher", unit="fraction", description="top-1 accuracy")}

    def __init__(self, spec=None):
        self.reset()

    def reset(self):
        self.hit = self.n = 0

    def update(self, pred, target, meta=None):
        self.hit += int((pred.argmax(-1) == target).sum())
        self.n += len(target)

    def compute(self):
        return {"accuracy": self.hit / max(self.n, 1)}


class MAE:
    meta = {"mae": MetricMeta(better="lower", unit="", description="mean absolute error")}

    def __init__(self, spec=None):
        self.reset()

    def reset(self):
        self.err, self.n = 0.0, 0

    def update(self, pred, target, meta=None):
        self.err += float((pred[:, 0] - target).abs().sum())
        self.n += len(target)

    def compute(self):
        return {"mae": self.err / max(self.n, 1)}


def toy_specs():
    return [
        TaskSpec(
            name="toy_channel",
            family="toy_channel",
            head_type="attribute",
            output="classification",
            num_queries=3,
            input_size=32,
            label_names=("red", "green", "blue"),
            primary_metric="accuracy",
            dataset=ColourDataset,
            transforms=lambda split, size: ToTensor("channel", size),
            loss=lambda spec: CELoss(),
            metrics=Accuracy,
        ),
        TaskSpec(
            name="toy_brightness",
            family="toy_brightness",
            head_type="attribute",
            output="regression",
            num_queries=1,
            input_size=32,
            primary_metric="mae",
            higher_is_better=False,
            dataset=ColourDataset,
            transforms=lambda split, size: ToTensor("brightness", size),
            loss=lambda spec: MSELoss(),
            metrics=MAE,
        ),
    ]


class ToyPlugin:
    @hookimpl
    def register_tasks(self, register):
        for s in toy_specs():
            register(s)
