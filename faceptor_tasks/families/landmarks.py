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
from faceptor_core.flip import FlipRule, LabelFlip, resolve_flip
from faceptor_core.outputs import soft_argmax
from faceptor_core.spec import TaskSpec

from .augment import EVAL_RNG, dense_photometric, is_train_split, run_pipeline, to_tensor_image, torch_rng
from .baselines import landmark_baseline
from .checks import LandmarkItem, LandmarkSample
from .common import Metric, MetricMeta, as_tensor, build_dataset, higher, lower
from .crop import base_meta, item_crop_matrix
from .geometry import (
    apply_affine,
    apply_affine_batch,
    compose,
    invert_affine_batch,
    random_affine,
    random_hflip,
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
def landmark_crop(face_scale: float = 0.8, source: str = "", square: bool = True) -> CropSpec:
    """The landmark datasets' crop: their face box, squared (or stretched), filling ``face_scale`` of the crop."""
    how = "squared" if square else "stretched"
    return CropSpec(
        method="box",
        box_scale=face_scale,
        box_square=square,
        source=source or f"the dataset's face box, {how}, filling {face_scale:g} of the crop",
    )


class LandmarkTransform:
    """Raw landmark item -> model-ready item.

    The box (raw ``"box"``, else the landmarks' extent) is cropped by the task's box rule (``crop``, default:
    squared, unless ``square_box=False``: then its own width and height are stretched onto the crop, as the
    reference does for AFLW-19, filling ``face_scale`` of the ``S x S`` crop). Training adds a random affine
    (uniform shift, rotation in radians, scale), a horizontal flip that reorders the points by the task's flip rule
    (``flip``, or the older ``flip_permutation``; none when both are None) and photometric noise.
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
        square_box: bool = True,
        crop: CropSpec | None = None,
        flip: LabelFlip | None = None,
    ):
        self.train = is_train_split(split)
        self.size = input_size
        self.crop = crop or landmark_crop(face_scale, square=square_box)
        if flip is None and flip_permutation is not None:
            flip = resolve_flip(FlipRule(permutation=tuple(flip_permutation)), "landmarks", (), len(flip_permutation))
        self.flip = flip
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
            m, flipped = random_hflip(m, self.size, rng, self.flip is not None)
        crop = warp_image(image, m, self.size)
        target = apply_affine(pts, m)
        if flipped and self.flip is not None:
            target = self.flip.relabel(target)
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

    def __init__(
        self,
        input_size: int,
        radius: float = 5.0,
        radius_at: int = 128,
        coord_weight: float = 1.0,
        heatmap_weight: float = 1.0,
    ):
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
#: How AUC / failure rate are integrated: the reference's grid and Simpson rule, or the exact integral.
AucRule = Literal["reference", "exact"]


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
    ``nme`` (the first normaliser), ``nme_<name>`` for each and, for each ``(name, t)`` in ``auc``, the area
    under the cumulative error curve and the failure rate at ``t`` (see :func:`auc_failure_rate`):
    ``auc_<name>_<100 t>`` / ``fr_<name>_<100 t>`` by the reference's rule (grid of ``step``, Simpson) and, when
    ``"exact"`` is among ``auc_rules``, ``auc_<name>_<100 t>_exact`` / ``fr_<name>_<100 t>_exact`` by the exact
    integral. Values are fractions (x100 for the paper's percentages).
    """

    def __init__(
        self,
        norms: Mapping[str, Norm],
        auc: Sequence[tuple[str, float]] = (),
        step: float = 1e-4,
        auc_rules: Sequence[AucRule] = ("reference", "exact"),
    ):
        if not norms:
            raise ValueError("at least one normaliser is needed")
        unknown = set(auc_rules) - {"reference", "exact"}
        if unknown:
            raise ValueError(f"unknown AUC rule(s) {sorted(unknown)}; expected 'reference' and/or 'exact'")
        self.norms, self.auc, self.step, self.auc_rules = dict(norms), tuple(auc), step, tuple(auc_rules)
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
            tag = f"{name}_{round(thr * 100):d}"
            for rule in self.auc_rules:
                auc, fr = auc_failure_rate(self.per_image(name), thr, self.step, rule)
                suffix = "" if rule == "reference" else f"_{rule}"
                out[f"auc_{tag}{suffix}"], out[f"fr_{tag}{suffix}"] = auc, fr
        return out

    @property
    def meta(self) -> dict[str, MetricMeta]:
        unit = "normaliser distances"
        out: dict[str, MetricMeta] = {}
        for i, name in enumerate(self.norms):
            out[f"nme_{name}"] = lower(unit, f"mean point error over the {name} distance, per image, averaged")
            if i == 0:
                out["nme"] = lower(unit, f"mean point error over the {name} distance, per image, averaged")
        for name, thr in self.auc:
            tag = f"{name}_{round(thr * 100):d}"
            for rule in self.auc_rules:
                suffix = "" if rule == "reference" else f"_{rule}"
                out[f"auc_{tag}{suffix}"] = higher(
                    "fraction", f"area under the cumulative {name} NME curve up to {thr:g} ({rule} integration)"
                )
                out[f"fr_{tag}{suffix}"] = lower("fraction", f"images with {name} NME above {thr:g}")
        return out


def reference_grid(threshold: float, step: float = 1e-4) -> np.ndarray:
    """The reference's error grid ``np.arange(0, threshold + step, step)``: its floating-point length decides
    the end point (0.07 -> 702 points ending at 0.0701; 0.08 and 0.1 end at the threshold)."""
    return np.arange(0.0, threshold + step, step)


def simpson(y: np.ndarray, x: np.ndarray) -> float:
    """Composite Simpson's rule on samples ``y`` at (possibly uneven) ``x``, as SciPy's ``simpson`` (>= 1.11):
    pairs of intervals by the parabola through their three points; with an odd number of intervals the last one
    is integrated by Cartwright's correction (the parabola through the last three points)."""
    y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)
    n = len(y)
    if n < 3:
        return float((y[0] + y[-1]) * (x[-1] - x[0]) / 2.0) if n == 2 else 0.0
    m = n if n % 2 else n - 1  # points covered by the pairs
    h = np.diff(x[:m])
    h0, h1 = h[0::2], h[1::2]
    y0, y1, y2 = y[0 : m - 2 : 2], y[1 : m - 1 : 2], y[2:m:2]
    hsum, hprod, hdiv = h0 + h1, h0 * h1, h0 / h1
    total = float(np.sum(hsum / 6.0 * (y0 * (2.0 - 1.0 / hdiv) + y1 * hsum * hsum / hprod + y2 * (2.0 - hdiv))))
    if n % 2 == 0:
        a, b = x[-2] - x[-3], x[-1] - x[-2]
        alpha = (2 * b * b + 3 * a * b) / (6 * (a + b))
        beta = (b * b + 3 * a * b) / (6 * a)
        eta = b**3 / (6 * a * (a + b))
        total += float(alpha * y[-1] + beta * y[-2] - eta * y[-3])
    return total


def auc_failure_rate(
    nmes: torch.Tensor, threshold: float, step: float = 1e-4, rule: AucRule = "reference"
) -> tuple[float, float]:
    """Area under the cumulative error distribution (CED) up to ``threshold``, divided by ``threshold``, and
    the failure rate.

    ``rule="reference"`` (the Faceptor reference, after HRNet): the CED sampled on :func:`reference_grid`
    (``NME <= x``), integrated by :func:`simpson` over the whole grid and divided by ``threshold``; the failure
    rate is the fraction with NME above the grid's last point. At 0.07 the grid ends at 0.0701, so perfect
    predictions score 0.0701 / 0.07 = 1.0014 and the failure rate counts NME > 0.0701.
    ``rule="exact"``: the exact integral of the CED step function on ``[0, threshold]``
    (``mean(max(threshold - NME, 0)) / threshold``) and the fraction with NME > ``threshold``.
    """
    if len(nmes) == 0:
        return float("nan"), float("nan")
    v = as_tensor(nmes, torch.float64).reshape(-1)
    if rule == "exact":
        return float((threshold - v).clamp_min(0).mean() / threshold), float((v > threshold).double().mean())
    if rule != "reference":
        raise ValueError(f"unknown AUC rule {rule!r}; expected 'reference' or 'exact'")
    grid = reference_grid(threshold, step)
    ced = np.searchsorted(np.sort(v.numpy()), grid, side="right") / len(v)
    return simpson(ced, grid) / threshold, float(1.0 - ced[-1])


def landmark_metrics(
    spec: TaskSpec,
    norms: Mapping[str, Norm],
    auc: Sequence[tuple[str, float]] = (),
    auc_rules: Sequence[AucRule] = ("reference", "exact"),
) -> NMEMetric:
    """``TaskSpec.metrics`` for landmark tasks."""
    return NMEMetric(norms, auc, auc_rules=auc_rules)


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
    square_box: bool = True,
    auc_rules: Sequence[AucRule] = ("reference", "exact"),
    heatmap_radius: float = 5.0,
    label_names: tuple[str, ...] = (),
    crop: CropSpec | None = None,
    flip: FlipRule | None = None,
    **spec_fields: Any,
) -> TaskSpec:
    """A landmark task on the shared family.

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` of raw items.
        norms: NME normalisers by name (the first is ``nme``), e.g. ``{"inter_ocular": inter_points(36, 45)}``.
        auc: ``(norm name, threshold)`` pairs for AUC and failure rate.
        auc_rules: which integrations of the AUC are reported (``reference``: ``auc_<tag>``; ``exact``:
            ``auc_<tag>_exact``); see :func:`auc_failure_rate`.
        flip_permutation: mirrored point order; None (and no ``flip``) disables flip augmentation.
        flip: the flip rule instead of ``flip_permutation`` (e.g. ``FlipRule(swap=...)`` over ``label_names``).
        face_scale: fraction of the crop filled by the (squared) box.
        square_box: False maps a non-square box's width and height onto the square crop (the reference's
            AFLW-19 crop).
        crop: the task's crop (default: :func:`landmark_crop` with ``face_scale`` and ``square_box``).
        spec_fields: other :class:`TaskSpec` fields (description, license, citation, extra, ...).
    """
    crop = crop or landmark_crop(face_scale, square=square_box)
    if flip is None and flip_permutation is not None:
        flip = FlipRule(permutation=tuple(flip_permutation))
    return TaskSpec(
        name=name,
        family="landmarks",
        head_type="dense",
        output="landmarks",
        num_queries=num_points,
        input_size=input_size,
        label_names=label_names,
        crop=crop,
        flip=flip,
        loss_weight=loss_weight,
        primary_metric=spec_fields.pop("primary_metric", "nme"),
        higher_is_better=spec_fields.pop("higher_is_better", False),
        dataset=partial(build_dataset, reader, check_sample=LandmarkSample(num_points), check_item=LandmarkItem()),
        transforms=partial(LandmarkTransform, crop=crop, flip=resolve_flip(flip, "landmarks", label_names, num_points)),
        loss=partial(landmark_loss, radius=heatmap_radius),
        metrics=partial(landmark_metrics, norms=dict(norms), auc=tuple(auc), auc_rules=tuple(auc_rules)),
        baseline=spec_fields.pop("baseline", landmark_baseline),
        **spec_fields,
    )
