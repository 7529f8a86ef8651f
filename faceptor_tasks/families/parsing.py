"""Parsing family: aligned (optionally tanh-warped) crops, pixel-wise cross-entropy, F1 from one confusion matrix
over the whole set, scored in the original image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec, farl_template
from faceptor_core.flip import FlipRule, LabelFlip, resolve_flip
from faceptor_core.spec import TaskSpec
from faceptor_core.warp import crop_maps, remap, warp_to_original

from .augment import EVAL_RNG, is_train_split, run_pipeline, to_tensor_image, torch_rng
from .baselines import parsing_baseline
from .checks import LabelMapItem
from .common import Metric, MetricMeta, as_tensor, build_dataset, higher
from .crop import base_meta, item_crop_matrix
from .geometry import compose, random_affine, random_hflip, warp_image

IGNORE_INDEX = 255


def parsing_crop(face_scale: float = 1.0, source: str = "", warp_factor: float = 0.0) -> CropSpec:
    """FaRL's five-point template at 512 px, scaled by ``face_scale``, then FaRL's tanh warp of ``warp_factor``
    (the alignment of LaPa's crops: 1.0 and 0.8)."""
    warp = f", tanh warp {warp_factor:g}" if warp_factor else ""
    return CropSpec(
        template=farl_template(face_scale),
        frame=(512.0, 512.0),
        warp_factor=warp_factor,
        source=source or f"FaRL's 5-point template at 512 px, face scale {face_scale:g}{warp}",
    )


class ParsingTransform:
    """Raw parsing item -> model-ready item.

    The crop geometry is the task's :class:`~faceptor_core.crop.CropSpec` (default: :func:`parsing_crop` with
    ``face_scale`` and ``warp_factor``): an affine ``A``, the whole image resized to ``S x S``, or, when the item
    has ``"align_points"`` (5 x 2: eye centres, nose tip, mouth corners), the similarity putting them on the
    crop's template (FaRL's, scaled by ``face_scale``). With a ``warp_factor > 0`` the aligned crop is then
    tanh-warped (:mod:`faceptor_core.warp`; the reference's LaPa pipeline uses 0.8): the face fills the
    crop's centre and the rest of the image is squeezed into its border. Training composes a random affine
    (rotation and scale from normals, shift uniform, as the reference) into ``A``, an optional flip (the task's
    flip rule ``flip``, or the older class permutation ``label_flip``, e.g. left/right brows; None disables flips)
    and grey/gamma/blur.
    Labels use nearest sampling; pixels outside the image become background (0).

    Evaluation items keep what scoring in the original image needs: ``meta["label_orig"]`` (the original label
    map), ``meta["warp_affine"]`` (``A``, float64) and ``meta["warp_factor"]``; a warped evaluation crop is
    resampled from the float image (no rounding to 8 bits), as the reference's.
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
        warp_factor: float = 0.0,
        crop: CropSpec | None = None,
        flip: LabelFlip | None = None,
    ):
        if not 0.0 <= warp_factor < 1.0:
            raise ValueError(f"warp_factor must be in [0, 1), got {warp_factor}")
        self.train = is_train_split(split)
        self.size = input_size
        self.crop = crop or parsing_crop(face_scale, warp_factor=warp_factor)
        self.warp_factor = self.crop.warp_factor
        if flip is None and label_flip is not None:
            flip = resolve_flip(FlipRule(permutation=tuple(label_flip)), "segmentation", (), len(label_flip))
        self.flip = flip
        self.shift, self.rotation, self.scale = shift, rotation, scale
        self.photometric = (
            A.Compose([A.ToGray(p=0.1), A.RandomGamma(gamma_limit=(70, 150), p=0.5), A.Blur(blur_limit=(3, 5), p=0.2)])
            if self.train and photometric
            else None
        )

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image, label = item["image"], np.asarray(item["target"], np.uint8)
        h, w = image.shape[:2]
        s = self.size
        m = item_crop_matrix(self.crop, item, s)
        flipped = False
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train:
            m = compose(
                random_affine(s, rng, self.shift, self.rotation, self.scale, normal=True, shift_normal=False), m
            )
            m, flipped = random_hflip(m, s, rng, self.flip is not None)
        if self.warp_factor > 0:
            maps = crop_maps(m, self.warp_factor, s)
            crop = remap(image if self.train else image.astype(np.float32) / np.float32(255.0), maps)
            target = remap(label, maps, cv2.INTER_NEAREST)
        else:
            crop = warp_image(image, m, s)
            target = warp_image(label, m, s, cv2.INTER_NEAREST)
        if flipped and self.flip is not None:
            target = self.flip.relabel(target)
        if self.photometric is not None:
            crop = run_pipeline(self.photometric, rng, image=crop)["image"]
        meta = base_meta(m, h, w, item)
        if not self.train:
            meta.update(
                label_orig=label, warp_affine=np.asarray(m, np.float64), warp_factor=np.float64(self.warp_factor)
            )
        tensor = (
            torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
            if crop.dtype == np.float32
            else to_tensor_image(crop)
        )
        return {"image": tensor, "target": torch.from_numpy(target.astype(np.int64)), "meta": meta}


class ParsingLoss(nn.Module):
    """Pixel-wise cross-entropy on logits upsampled (bilinear, align_corners=False) to the target size (the
    reference's loss), plus ``dice_weight`` x the soft Dice loss (1 - mean over the classes present in the batch of
    ``2 |P.T| / (|P| + |T|)``), which weighs a class of a few pixels as much as the background."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, dice_weight: float = 0.0):
        super().__init__()
        self.ignore_index, self.dice_weight = ignore_index, dice_weight

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = raw_output.float()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        target = target.long()
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
        if not self.dice_weight:
            return ce
        return ce + self.dice_weight * soft_dice_loss(logits, target, self.ignore_index)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``1 - mean Dice`` of the softmax against one-hot labels over the batch's pixels (``ignore_index`` pixels
    left out), averaged over the classes present in the labels."""
    k = logits.shape[1]
    keep = (target != ignore_index).unsqueeze(1)
    prob = logits.softmax(dim=1) * keep
    onehot = F.one_hot(target.clamp(0, k - 1) * keep.squeeze(1), k).permute(0, 3, 1, 2).to(prob) * keep
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    total = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    if not present.any():
        return logits.sum() * 0.0
    dice = 2 * inter[present] / total[present].clamp_min(1e-6)
    return 1 - dice.mean()


def parsing_loss(spec: TaskSpec, **kw: Any) -> ParsingLoss:
    """``TaskSpec.loss`` for parsing tasks."""
    return ParsingLoss(**kw)


AbsentRule = Literal["nan", "skip"]
ScoreSpace = Literal["original", "crop"]


class ParsingF1(Metric):
    """F1 per class from one confusion matrix over the whole set: ``2 TP / (predicted + ground truth)``; ``f1``
    is the mean over classes except ``background``, ``f1_<name>`` each class's F1, plus ``pixel_accuracy``.
    Pixels labelled ``ignore_index`` are not counted.

    ``absent``: a class absent from both the predictions and the ground truth of the whole set has no F1.
    ``"nan"`` (the reference's rule) reports it as NaN, which makes ``f1`` NaN; ``"skip"`` leaves it out of
    ``f1`` and of the per-class values.

    ``space="original"`` (the reference's protocol): when the batch's ``meta`` carries ``label_orig``,
    ``warp_affine`` and ``warp_factor`` (evaluation items of :class:`ParsingTransform`), each prediction is
    scored in its original image: the logits, bilinearly upsampled to the crop, are warped back through the
    inverse of the crop's (tanh) warp with bilinear sampling, and their argmax is compared with the original label
    map; outside the crop the logits are 0 and the argmax is class 0. Label predictions are turned into one-hot
    logits first, so a model and a label map that agree score alike. Otherwise (``space="crop"``, or no
    ``label_orig``), predictions are compared with ``target`` in the crop.

    Evaluation feeds it the raw logits (``takes_raw_output``); ``update`` also takes ``B x H x W`` labels.
    """

    takes_raw_output = True

    def __init__(
        self,
        label_names: Sequence[str],
        background: int = 0,
        ignore_index: int = IGNORE_INDEX,
        absent: AbsentRule = "nan",
        space: ScoreSpace = "original",
    ):
        if absent not in ("nan", "skip"):
            raise ValueError(f"absent must be 'nan' or 'skip', got {absent!r}")
        if space not in ("original", "crop"):
            raise ValueError(f"space must be 'original' or 'crop', got {space!r}")
        self.label_names, self.background, self.ignore_index = tuple(label_names), background, ignore_index
        self.absent, self.space = absent, space
        self.k = len(self.label_names)
        super().__init__()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.k, self.k, dtype=torch.int64)

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        pred, gt = as_tensor(prediction), as_tensor(target, torch.int64)
        if self.space == "original" and meta is not None and "label_orig" in meta:
            for i in range(len(pred)):
                self._score_original(
                    pred[i],
                    gt.shape[-2:],
                    meta["label_orig"][i],
                    np.asarray(as_tensor(meta["warp_affine"][i], torch.float64)),
                    float(as_tensor(meta["warp_factor"][i])),
                )
            return
        if pred.is_floating_point():
            pred = torch.cat([_upsample(p, tuple(gt.shape[-2:])).argmax(dim=0, keepdim=True) for p in pred])
        self._accumulate(pred, gt)

    def _score_original(
        self, pred: torch.Tensor, crop_hw: tuple[int, ...], label: Any, affine: np.ndarray, factor: float
    ) -> None:
        label = as_tensor(label, torch.int64)
        height, width = label.shape
        size = int(crop_hw[-1])
        if pred.is_floating_point():
            logits = _upsample(pred, (size, size))
        else:
            logits = F.one_hot(pred.long(), self.k).permute(2, 0, 1).float()
        if factor == 0 and (height, width) == (size, size) and np.allclose(affine, np.eye(2, 3)):
            back = logits.argmax(dim=0)  # the identity warp: resampling at pixel centres changes nothing
        else:
            hwk = np.ascontiguousarray(logits.permute(1, 2, 0).numpy(), dtype=np.float32)
            warped = warp_to_original(hwk, affine, factor, size, height, width)
            back = torch.from_numpy(warped.reshape(height, width, -1).argmax(axis=-1))
        self._accumulate(back, label)

    def _accumulate(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        pred, gt = pred.reshape(-1).long(), gt.reshape(-1).long()
        if pred.shape != gt.shape:
            raise ValueError(f"prediction has {pred.numel()} pixels, target {gt.numel()}")
        keep = gt != self.ignore_index
        pred, gt = pred[keep], gt[keep]
        if len(gt) and (gt.min() < 0 or gt.max() >= self.k or pred.min() < 0 or pred.max() >= self.k):
            raise ValueError(f"labels outside 0..{self.k - 1}")
        self.confusion += torch.bincount(gt * self.k + pred, minlength=self.k * self.k).view(self.k, self.k)

    def compute(self) -> dict[str, float]:
        c = self.confusion.double()
        tp, pred_n, gt_n = c.diagonal(), c.sum(0), c.sum(1)
        denom = pred_n + gt_n
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.full_like(tp, float("nan")))
        keep = [i for i in range(self.k) if self.absent == "nan" or denom[i] > 0]
        fg = [i for i in keep if i != self.background]
        out = {"f1": float(f1[fg].mean()) if fg else float("nan")}
        out.update({f"f1_{self.label_names[i]}": float(f1[i]) for i in keep})
        out["pixel_accuracy"] = float(tp.sum() / c.sum()) if c.sum() > 0 else float("nan")
        return out

    @property
    def meta(self) -> dict[str, MetricMeta]:
        out = {"f1": higher("fraction", "mean F1 of the classes but the background, over the whole set")}
        out.update({f"f1_{n}": higher("fraction", f"F1 of class {n!r} over the whole set") for n in self.label_names})
        out["pixel_accuracy"] = higher("fraction", "pixels labelled correctly")
        return out


def _upsample(logits: torch.Tensor, hw: tuple[int, ...]) -> torch.Tensor:
    """``K x h x w`` logits -> ``K x H x W`` (bilinear, align_corners=False), float32."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) == tuple(hw):
        return logits
    return F.interpolate(logits[None], size=tuple(int(v) for v in hw), mode="bilinear", align_corners=False)[0]


def parsing_metrics(spec: TaskSpec, absent: AbsentRule = "nan", space: ScoreSpace = "original") -> ParsingF1:
    """``TaskSpec.metrics`` for parsing tasks (class names from the spec)."""
    names = spec.label_names or tuple(str(i) for i in range(spec.num_queries))
    return ParsingF1(names, absent=absent, space=space)


def parsing_task(
    name: str,
    label_names: Sequence[str],
    *,
    reader: Callable[..., Any],
    input_size: int = 512,
    loss_weight: float = 1.0,
    face_scale: float = 1.0,
    label_flip: Sequence[int] | None = None,
    warp_factor: float = 0.0,
    absent_classes: AbsentRule = "nan",
    score_space: ScoreSpace = "original",
    crop: CropSpec | None = None,
    flip: FlipRule | None = None,
    **spec_fields: Any,
) -> TaskSpec:
    """A face-parsing task on the shared family (``label_names[0]`` is the background).

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` of raw items.
        label_flip: class permutation under a horizontal flip; None (and no ``flip``) disables flip augmentation.
        flip: the flip rule instead of ``label_flip``, e.g. ``FlipRule(swap=(("left_eye", "right_eye"), ...))``.
        face_scale: template scale for items carrying ``align_points``.
        warp_factor: tanh warp of the aligned crop (0: none; the reference's LaPa: 0.8).
        absent_classes: F1 of a class absent from the whole evaluated set: ``"nan"`` (the reference) or
            ``"skip"`` (left out of the mean).
        score_space: ``"original"`` (the reference: logits warped back to the original image) or ``"crop"``.
        crop: the task's crop (default: :func:`parsing_crop` with ``face_scale`` and ``warp_factor``).
    """
    crop = crop or parsing_crop(face_scale, warp_factor=warp_factor)
    if flip is None and label_flip is not None:
        flip = FlipRule(permutation=tuple(label_flip))
    return TaskSpec(
        name=name,
        family="parsing",
        head_type="dense",
        output="segmentation",
        num_queries=len(label_names),
        input_size=input_size,
        label_names=tuple(label_names),
        loss_weight=loss_weight,
        crop=crop,
        flip=flip,
        primary_metric=spec_fields.pop("primary_metric", "f1"),
        dataset=partial(build_dataset, reader, check_item=LabelMapItem(len(label_names))),
        transforms=partial(
            ParsingTransform, crop=crop, flip=resolve_flip(flip, "segmentation", tuple(label_names), len(label_names))
        ),
        loss=parsing_loss,
        metrics=partial(parsing_metrics, absent=absent_classes, space=score_space),
        baseline=spec_fields.pop("baseline", parsing_baseline),
        **spec_fields,
    )
