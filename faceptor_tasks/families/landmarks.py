"""Landmark family: crop-from-box transforms, heatmap + coordinate loss, NME / AUC / failure-rate metric.

Declare a dataset with :func:`landmark_task`::

    spec = landmark_task("landmarks_mine", 68, FLIP_68, reader=my_reader, norms={"inter_ocular": inter_ocular(36, 45)})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec
from faceptor_core.model.decode import soft_argmax
from faceptor_core.spec import TaskSpec

from .augment import EVAL_RNG, dense_photometric, is_train_split, run_pipeline, to_tensor_image, torch_rng
from .common import Metric, as_tensor, build_dataset
from .crop import base_meta, item_crop_matrix
from .geometry import (
    apply_affine,
    apply_affine_batch,
    compose,
    hflip_matrix,
    invert_affine_batch,
    random_affine,
    warp_image,
)
from .readers.landmarks import points_box


def permutation_from_pairs(
    num_points: int, pairs: Sequence[tuple[int, int]], one_based: bool = False
) -> tuple[int, ...]:
    """Flip permutation from mirrored pairs (unpaired points map to themselves)."""
    perm = list(range(num_points))
    for a, b in pairs:
        a, b = (a - 1, b - 1) if one_based else (a, b)
        perm[a], perm[b] = b, a
    return tuple(perm)


# -- transforms ------------------------------------------------------------------------------------------
def landmark_crop(face_scale: float = 0.8, source: str = "") -> CropSpec:
    """The landmark datasets' crop: their face box, squared, filling ``face_scale`` of the crop."""
    return CropSpec(method="box", box_scale=face_scale,
                    source=source or f"the dataset's face box, squared, filling {face_scale:g} of the crop")


class LandmarkTransform:
    """Raw landmark item -> model-ready item.

    The box (raw ``"box"``, else the landmarks' extent) is cropped by the task's box rule (``crop``, default:
    squared, filling ``face_scale`` of the ``S x S`` crop). Training adds a random affine (uniform shift,
    rotation in radians, scale), a horizontal flip with ``flip_permutation`` (none when it is None) and
    photometric noise.
    ``meta`` holds ``affine``, ``orig_size``, ``landmarks_orig`` (N x 2) and ``box`` (x1, y1, x2, y2).
    """

    def __init__(
        self,
        split: str,
        input_size: int,
        flip_permutation: Sequence[int] | None = None,
        face_scale: float = 0.8,
        shift: float = 0.05,
        rotation: float = 0.174,
        scale: float = 0.1,
        photometric: bool = True,
        crop: CropSpec | None = None,
    ):
        self.train = is_train_split(split)
        self.size = input_size
        self.crop = crop or landmark_crop(face_scale)
        self.perm = list(flip_permutation) if flip_permutation is not None else None
        self.shift, self.rotation, self.scale = shift, rotation, scale
        self.photometric = dense_photometric() if self.train and photometric else None

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image, pts = item["image"], np.asarray(item["target"], np.float64)
        h, w = image.shape[:2]
        box = np.asarray(item["box"] if item.get("box") is not None else points_box(pts), np.float64)
        m = item_crop_matrix(self.crop, item, self.size, box=box)
        flipped = False
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train:
            m = compose(random_affine(self.size, rng, self.shift, self.rotation, self.scale), m)
            if self.perm is not None and rng.random() < 0.5:
                m, flipped = compose(hflip_matrix(self.size), m), True
        crop = warp_image(image, m, self.size)
        target = apply_affine(pts, m)
        if flipped:
            target = target[self.perm]
        if self.photometric is not None:
            crop = run_pipeline(self.photometric, rng, image=crop, keypoints=target.astype(np.float32))["image"]
        meta = base_meta(m, h, w, item)
        meta.update(landmarks_orig=pts.astype(np.float32), box=box.astype(np.float32))
        return {"image": to_tensor_image(crop), "target": torch.from_numpy(target.astype(np.float32)), "meta": meta}


# -- loss ------------------------------------------------------------------------------------------------
def heatmap_targets(points: torch.Tensor, height: int, width: int, radius: float) -> torch.Tensor:
    """``B x N x 2`` normalised points -> ``B x N x h x w`` targets ``exp(-16 r^2 / (2 R^2))`` for ``r <= R``."""
    px = points[..., 0] * width - 0.5
    py = points[..., 1] * height - 0.5
    xs = torch.arange(width, device=points.device, dtype=points.dtype)
    ys = torch.arange(height, device=points.device, dtype=points.dtype)
    d2 = (xs.view(1, 1, 1, -1) - px[..., None, None]) ** 2 + (ys.view(1, 1, -1, 1) - py[..., None, None]) ** 2
    return torch.exp(-16.0 * d2 / (2.0 * radius**2)) * (d2 <= radius**2)


class LandmarkLoss(nn.Module):
    """Mean point distance (normalised coordinates) of the soft-argmax + heatmap BCE-with-logits, 1:1.

    ``radius`` is in heatmap pixels at a ``radius_at``-wide heatmap (5 px at 128 as the reference) and
    scales with the actual heatmap width.
    """

    def __init__(self, input_size: int, radius: float = 5.0, radius_at: int = 128,
                 coord_weight: float = 1.0, heatmap_weight: float = 1.0):
        super().__init__()
        self.input_size, self.radius, self.radius_at = input_size, radius, radius_at
        self.coord_weight, self.heatmap_weight = coord_weight, heatmap_weight

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = raw_output.float()
        _, _, h, w = logits.shape
        norm_target = (target.to(logits) + 0.5) / self.input_size
        coord = (soft_argmax(logits) - norm_target).norm(dim=-1).mean()
        heat = heatmap_targets(norm_target, h, w, self.radius * w / self.radius_at)
        bce = F.binary_cross_entropy_with_logits(logits, heat)
        return self.coord_weight * coord + self.heatmap_weight * bce


def landmark_loss(spec: TaskSpec, **kw: Any) -> LandmarkLoss:
    """``TaskSpec.loss`` for landmark tasks."""
    return LandmarkLoss(spec.input_size, **kw)


# -- metric ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Norm:
    """An NME normaliser: distance between the means of two point groups, or the box's sqrt(w*h) / diagonal."""

    kind: Literal["points", "box", "diag"]
    left: tuple[int, ...] = ()
    right: tuple[int, ...] = ()

    def distance(self, gt: torch.Tensor, box: torch.Tensor | None) -> torch.Tensor:
        """``B`` normalising distances from ``B x N x 2`` ground truth (and ``B x 4`` x1 y1 x2 y2 boxes)."""
        if self.kind == "points":
            return (gt[:, list(self.left)].mean(1) - gt[:, list(self.right)].mean(1)).norm(dim=-1)
        if box is None:
            raise ValueError(f"NME normalised by {self.kind} needs meta['box']")
        w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        return (w * h).sqrt() if self.kind == "box" else (w * w + h * h).sqrt()


def inter_points(left: int | Sequence[int], right: int | Sequence[int]) -> Norm:
    """Normalise by the distance between two points (or the centres of two point groups)."""
    return Norm("points", _indices(left), _indices(right))


def _indices(v: int | Sequence[int]) -> tuple[int, ...]:
    return (v,) if isinstance(v, int) else tuple(v)


BOX_NORM = Norm("box")
DIAG_NORM = Norm("diag")


class NMEMetric(Metric):
    """Per-image NME (mean point error / normaliser), averaged over images, in original image coordinates.

    ``update(prediction, target, meta)``: ``prediction`` is ``B x N x 2`` crop pixels; with ``meta``
    (``affine``, ``landmarks_orig``, optional ``box``) predictions are mapped back with the inverse affine and
    compared with the original landmarks, else compared with ``target`` in crop space. ``compute()`` gives
    ``nme`` (the first normaliser), ``nme_<name>`` for each and ``auc_<name>_<100 t>`` / ``fr_<name>_<100 t>``
    (cumulative error curve up to ``t``, Simpson rule on a grid of ``step``) for each ``(name, t)`` in ``auc``.
    Values are fractions (x100 for the paper's percentages).
    """

    def __init__(self, norms: Mapping[str, Norm], auc: Sequence[tuple[str, float]] = (), step: float = 1e-4):
        if not norms:
            raise ValueError("at least one normaliser is needed")
        self.norms, self.auc, self.step = dict(norms), tuple(auc), step
        super().__init__()

    def reset(self) -> None:
        self._nmes: dict[str, list[torch.Tensor]] = {n: [] for n in self.norms}

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        pred = as_tensor(prediction, torch.float64)
        box = None
        if meta is not None and "affine" in meta and "landmarks_orig" in meta:
            pred = apply_affine_batch(pred, invert_affine_batch(as_tensor(meta["affine"], torch.float64)))
            gt = as_tensor(meta["landmarks_orig"], torch.float64)
            box = as_tensor(meta["box"], torch.float64) if "box" in meta else None
        else:
            gt = as_tensor(target, torch.float64)
            if meta is not None and "box" in meta:
                box = as_tensor(meta["box"], torch.float64)
        err = (pred - gt).norm(dim=-1)
        for name, norm in self.norms.items():
            self._nmes[name].append((err / norm.distance(gt, box)[:, None]).mean(dim=1))

    def per_image(self, name: str | None = None) -> torch.Tensor:
        """All per-image NMEs so far for normaliser ``name`` (default: the first)."""
        parts = self._nmes[name or next(iter(self.norms))]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, name in enumerate(self.norms):
            v = self.per_image(name)
            mean = float(v.mean()) if len(v) else float("nan")
            out[f"nme_{name}"] = mean
            if i == 0:
                out["nme"] = mean
        for name, thr in self.auc:
            auc, fr = auc_failure_rate(self.per_image(name), thr, self.step)
            tag = f"{name}_{round(thr * 100):d}"
            out[f"auc_{tag}"], out[f"fr_{tag}"] = auc, fr
        return out


def auc_failure_rate(nmes: torch.Tensor, threshold: float, step: float = 1e-4) -> tuple[float, float]:
    """Area under the cumulative error distribution on ``[0, threshold]`` (normalised to 1) and the failure
    rate (fraction of images with NME > threshold)."""
    if len(nmes) == 0:
        return float("nan"), float("nan")
    n_int = max(2, round(threshold / step))
    xs = torch.linspace(0.0, threshold, n_int + 1, dtype=torch.float64)
    ced = torch.searchsorted(nmes.sort().values.contiguous(), xs, right=True).double() / len(nmes)
    h = threshold / n_int
    if n_int % 2 == 0:
        weights = torch.ones(n_int + 1, dtype=torch.float64)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        area = float((weights * ced).sum() * h / 3.0)
    else:  # Simpson on all but the last interval, trapezoid on it
        weights = torch.ones(n_int, dtype=torch.float64)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        area = float((weights * ced[:-1]).sum() * h / 3.0 + (ced[-2] + ced[-1]) * h / 2.0)
    return area / threshold, float((nmes > threshold).double().mean())


def landmark_metrics(spec: TaskSpec, norms: Mapping[str, Norm], auc: Sequence[tuple[str, float]] = ()) -> NMEMetric:
    """``TaskSpec.metrics`` for landmark tasks."""
    return NMEMetric(norms, auc)


# -- factory ---------------------------------------------------------------------------------------------
def landmark_task(
    name: str,
    num_points: int,
    flip_permutation: Sequence[int] | None = None,
    *,
    reader: Callable[..., Any],
    norms: Mapping[str, Norm],
    auc: Sequence[tuple[str, float]] = (),
    input_size: int = 512,
    loss_weight: float = 1.0,
    face_scale: float = 0.8,
    heatmap_radius: float = 5.0,
    label_names: tuple[str, ...] = (),
    crop: CropSpec | None = None,
    **spec_fields: Any,
) -> TaskSpec:
    """A landmark task on the shared family.

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` of raw items.
        norms: NME normalisers by name (the first is ``nme``), e.g. ``{"inter_ocular": inter_points(36, 45)}``.
        auc: ``(norm name, threshold)`` pairs for AUC and failure rate.
        flip_permutation: mirrored point order; None disables flip augmentation.
        face_scale: fraction of the crop filled by the (squared) box.
        crop: the task's crop (default: :func:`landmark_crop` with ``face_scale``).
        spec_fields: other :class:`TaskSpec` fields (description, license, citation, extra, ...).
    """
    crop = crop or landmark_crop(face_scale)
    return TaskSpec(
        name=name, family="landmarks", head="dense", output="landmarks", num_queries=num_points,
        input_size=input_size, label_names=label_names, crop=crop,
        flip_permutation=tuple(flip_permutation) if flip_permutation is not None else None,
        loss_weight=loss_weight, primary_metric=spec_fields.pop("primary_metric", "nme"),
        higher_is_better=spec_fields.pop("higher_is_better", False),
        dataset=partial(build_dataset, reader),
        transforms=partial(LandmarkTransform, flip_permutation=flip_permutation, crop=crop),
        loss=partial(landmark_loss, radius=heatmap_radius),
        metrics=partial(landmark_metrics, norms=dict(norms), auc=tuple(auc)),
        **spec_fields,
    )
