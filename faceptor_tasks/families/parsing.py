"""Parsing family: aligned crops, pixel-wise cross-entropy, F1 from one confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec, farl_template
from faceptor_core.spec import TaskSpec

from .augment import EVAL_RNG, is_train_split, run_pipeline, to_tensor_image, torch_rng
from .common import Metric, as_tensor, build_dataset
from .crop import base_meta, item_crop_matrix
from .geometry import compose, hflip_matrix, random_affine, unwarp_labels, warp_image

IGNORE_INDEX = 255


def parsing_crop(face_scale: float = 1.0, source: str = "") -> CropSpec:
    """FaRL's five-point template at 512 px, scaled by ``face_scale`` (the alignment of LaPa's crops)."""
    return CropSpec(template=farl_template(face_scale), frame=(512.0, 512.0),
                    source=source or f"FaRL's 5-point template at 512 px, face scale {face_scale:g}")


class ParsingTransform:
    """Raw parsing item -> model-ready item.

    The crop is the task's :class:`~faceptor_core.crop.CropSpec` (default: FaRL's face template scaled by
    ``face_scale``) applied to the item's ``"align_points"`` (5 x 2) when it has them, else the whole image
    resized to ``S x S``. Training adds a
    random affine (normal rotation/scale, as the reference), an optional flip (``label_flip`` permutes the
    classes, e.g. left/right brows; None disables flips) and grey/gamma/blur. Labels use nearest warping;
    pixels outside the image become background (0).
    """

    def __init__(
        self,
        split: str,
        input_size: int,
        face_scale: float = 1.0,
        label_flip: Sequence[int] | None = None,
        shift: float = 0.01,
        rotation: float = 0.314,
        scale: float = 0.1,
        photometric: bool = True,
        crop: CropSpec | None = None,
    ):
        self.train = is_train_split(split)
        self.size = input_size
        self.crop = crop or parsing_crop(face_scale)
        self.label_flip = np.asarray(label_flip, np.uint8) if label_flip is not None else None
        self.shift, self.rotation, self.scale = shift, rotation, scale
        self.photometric = (
            A.Compose([A.ToGray(p=0.1), A.RandomGamma(gamma_limit=(70, 150), p=0.5), A.Blur(blur_limit=(3, 5), p=0.2)])
            if self.train and photometric else None
        )

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image, label = item["image"], np.asarray(item["target"], np.uint8)
        h, w = image.shape[:2]
        s = self.size
        m = item_crop_matrix(self.crop, item, s)
        flipped = False
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train:
            m = compose(random_affine(s, rng, self.shift, self.rotation, self.scale, normal=True), m)
            if self.label_flip is not None and rng.random() < 0.5:
                m, flipped = compose(hflip_matrix(s), m), True
        crop = warp_image(image, m, s)
        target = warp_image(label, m, s, cv2.INTER_NEAREST)
        if flipped:
            target = self.label_flip[target]
        if self.photometric is not None:
            crop = run_pipeline(self.photometric, rng, image=crop)["image"]
        return {"image": to_tensor_image(crop), "target": torch.from_numpy(target.astype(np.int64)),
                "meta": base_meta(m, h, w, item)}


class ParsingLoss(nn.Module):
    """Pixel-wise cross-entropy on logits upsampled (bilinear, align_corners=False) to the target size."""

    def __init__(self, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = raw_output.float()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, target.long(), ignore_index=self.ignore_index)


def parsing_loss(spec: TaskSpec, **kw: Any) -> ParsingLoss:
    """``TaskSpec.loss`` for parsing tasks."""
    return ParsingLoss(**kw)


class ParsingF1(Metric):
    """F1 per class from one confusion matrix over the whole set: ``2 TP / (predicted + ground truth)``;
    ``f1`` is the mean over classes except ``background`` (classes absent from both predictions and ground
    truth are left out of the mean and of the per-class ``f1_<name>`` values, where the reference would give
    NaN). Pixels labelled ``ignore_index`` are not counted.

    ``update(prediction, target)`` compares label maps of the same shape (the crop, for model batches);
    :meth:`update_original` maps one crop prediction back to the original image first.
    """

    def __init__(self, label_names: Sequence[str], background: int = 0, ignore_index: int = IGNORE_INDEX):
        self.label_names, self.background, self.ignore_index = tuple(label_names), background, ignore_index
        self.k = len(self.label_names)
        super().__init__()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.k, self.k, dtype=torch.int64)

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        pred, gt = as_tensor(prediction, torch.int64).reshape(-1), as_tensor(target, torch.int64).reshape(-1)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction has {pred.numel()} pixels, target {gt.numel()}")
        keep = gt != self.ignore_index
        pred, gt = pred[keep], gt[keep]
        if len(gt) and (gt.min() < 0 or gt.max() >= self.k or pred.min() < 0 or pred.max() >= self.k):
            raise ValueError(f"labels outside 0..{self.k - 1}")
        self.confusion += torch.bincount(gt * self.k + pred, minlength=self.k * self.k).view(self.k, self.k)

    def update_original(self, prediction: Any, affine: np.ndarray, target_original: np.ndarray) -> None:
        """Score one ``S x S`` crop prediction against the original-size label map (inverse warp, nearest)."""
        h, w = np.asarray(target_original).shape[:2]
        back = unwarp_labels(np.asarray(as_tensor(prediction)), np.asarray(affine), h, w, self.background)
        self.update(back, target_original)

    def compute(self) -> dict[str, float]:
        c = self.confusion.double()
        tp, pred_n, gt_n = c.diagonal(), c.sum(0), c.sum(1)
        denom = pred_n + gt_n
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.full_like(tp, float("nan")))
        fg = [i for i in range(self.k) if i != self.background and denom[i] > 0]
        out = {"f1": float(f1[fg].mean()) if fg else float("nan")}
        out.update({f"f1_{n}": float(f1[i]) for i, n in enumerate(self.label_names) if denom[i] > 0})
        out["pixel_accuracy"] = float(tp.sum() / c.sum()) if c.sum() > 0 else float("nan")
        return out


def parsing_metrics(spec: TaskSpec) -> ParsingF1:
    """``TaskSpec.metrics`` for parsing tasks (class names from the spec)."""
    names = spec.label_names or tuple(str(i) for i in range(spec.num_queries))
    return ParsingF1(names)


def parsing_task(
    name: str,
    label_names: Sequence[str],
    *,
    reader: Callable[..., Any],
    input_size: int = 512,
    loss_weight: float = 1.0,
    face_scale: float = 1.0,
    label_flip: Sequence[int] | None = None,
    crop: CropSpec | None = None,
    **spec_fields: Any,
) -> TaskSpec:
    """A face-parsing task on the shared family (``label_names[0]`` is the background).

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` of raw items.
        label_flip: class permutation under a horizontal flip; None disables flip augmentation.
        face_scale: template scale for items carrying ``align_points``.
        crop: the task's crop (default: :func:`parsing_crop` with ``face_scale``).
    """
    crop = crop or parsing_crop(face_scale)
    return TaskSpec(
        name=name, family="parsing", head="dense", output="segmentation", num_queries=len(label_names),
        input_size=input_size, label_names=tuple(label_names), loss_weight=loss_weight, crop=crop,
        primary_metric=spec_fields.pop("primary_metric", "f1"),
        dataset=partial(build_dataset, reader),
        transforms=partial(ParsingTransform, crop=crop,
                           label_flip=tuple(label_flip) if label_flip is not None else None),
        loss=parsing_loss, metrics=parsing_metrics,
        **spec_fields,
    )
