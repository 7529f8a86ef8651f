"""Recognition family: CosFace training on identity labels, 10-fold verification accuracy on pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec
from faceptor_core.flip import FlipRule
from faceptor_core.spec import MetricMeta, TaskSpec

from .baselines import verification_baseline
from .common import DatasetFormatError, FaceDataset, Metric, as_tensor, higher
from .crop import FaceCropTransform, long_target
from .readers.recognition import RecordIODataset, VerificationDataset
from .templates import ARCFACE_CROP

VERIFICATION_SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")


class CosFaceLoss(nn.Module):
    """CosFace (large margin cosine) loss: ``CE(s * (cos(theta) - m * onehot))``.

    Owns the ``num_classes x dim`` classifier (training-only parameters, not part of the model).
    """

    def __init__(self, num_classes: int, dim: int = 512, scale: float = 64.0, margin: float = 0.4):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(raw_output.float(), dim=-1), F.normalize(self.weight.float(), dim=-1))
        onehot = F.one_hot(target.long().reshape(-1), cos.shape[-1]).to(cos)
        return F.cross_entropy(self.scale * (cos - self.margin * onehot), target.long().reshape(-1))


def cosface_loss(spec: TaskSpec, scale: float = 64.0, margin: float = 0.4) -> CosFaceLoss:
    """``TaskSpec.loss`` for identity tasks (classes from ``spec.num_identities``)."""
    if spec.num_identities < 1:
        raise ValueError(f"task {spec.name!r} declares no identities (num_identities=0)")
    return CosFaceLoss(spec.num_identities, spec.embedding_dim, scale, margin)


def kfold_slices(n: int, folds: int) -> list[slice]:
    """Unshuffled K-fold test slices (the first ``n % folds`` folds get one extra item, as scikit-learn)."""
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    starts = [sum(sizes[:i]) for i in range(folds)]
    return [slice(a, a + s) for a, s in zip(starts, sizes, strict=True)]


class VerificationMetric(Metric):
    """Face-verification accuracy with 10-fold cross-validated thresholds (InsightFace protocol).

    Pairs are scored by squared Euclidean distance of L2-normalised embeddings; a pair is "same" when the
    distance is below the threshold (0 to 4, step 0.01). For each fold the threshold with the best
    accuracy on the other folds is applied to it; ``verification_accuracy`` is the mean over folds.

    Feed it with :meth:`update_pairs` (``emb = normalize(embedding(image) + embedding(flip(image)))``, done by
    the caller), or with :meth:`update` on batches of a :class:`VerificationDataset` (``meta`` carries the pair
    index and side; without ``meta`` consecutive rows form pairs).
    """

    pairs = True

    def __init__(self, folds: int = 10, thresholds: torch.Tensor | None = None):
        self.folds = folds
        self.thresholds = thresholds if thresholds is not None else torch.arange(0, 4, 0.01, dtype=torch.float64)
        super().__init__()

    def reset(self) -> None:
        self._dist: list[torch.Tensor] = []
        self._same: list[torch.Tensor] = []
        self._emb: list[torch.Tensor] = []
        self._key: list[torch.Tensor] = []
        self._img_same: list[torch.Tensor] = []
        self._seen = 0

    def update_pairs(self, emb_a: Any, emb_b: Any, issame: Any) -> None:
        """Add pairs: ``B x D`` embeddings of each side and ``B`` booleans."""
        a = F.normalize(as_tensor(emb_a, torch.float64), dim=-1)
        b = F.normalize(as_tensor(emb_b, torch.float64), dim=-1)
        self._dist.append(((a - b) ** 2).sum(dim=-1))
        self._same.append(as_tensor(issame).reshape(-1).bool())

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        """Add images: ``B x D`` embeddings, ``B`` issame of their pairs, ``meta`` with ``pair``/``side``."""
        emb = as_tensor(prediction, torch.float64)
        if meta is not None and "pair" in meta and "side" in meta:
            pair, side = as_tensor(meta["pair"], torch.int64), as_tensor(meta["side"], torch.int64)
            key = pair.reshape(-1) * 2 + side.reshape(-1)
        else:
            key = torch.arange(self._seen, self._seen + len(emb), dtype=torch.int64)
        self._seen += len(emb)
        self._emb.append(emb)
        self._key.append(key)
        self._img_same.append(as_tensor(target).reshape(-1).bool())

    def _pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        dist, same = list(self._dist), list(self._same)
        if self._emb:
            key = torch.cat(self._key)
            order = torch.argsort(key)
            key, emb, img_same = key[order], torch.cat(self._emb)[order], torch.cat(self._img_same)[order]
            if len(key) % 2 or (key[0::2] % 2 != 0).any() or (key[1::2] != key[0::2] + 1).any():
                raise ValueError("verification images do not form complete (first, second) pairs")
            a, b = F.normalize(emb[0::2], dim=-1), F.normalize(emb[1::2], dim=-1)
            dist.append(((a - b) ** 2).sum(dim=-1))
            same.append(img_same[0::2])
        return torch.cat(dist), torch.cat(same)

    def compute(self) -> dict[str, float]:
        if not self._dist and not self._emb:
            return {"verification_accuracy": float("nan"), "verification_std": float("nan"), "threshold": float("nan")}
        dist, same = self._pairs()
        correct = (dist[None, :] < self.thresholds[:, None]) == same[None, :]  # T x P
        slices = kfold_slices(len(dist), self.folds)
        fold_hits = torch.stack([correct[:, s].sum(1) for s in slices], dim=1).double()  # T x K
        fold_n = torch.tensor([s.stop - s.start for s in slices], dtype=torch.float64)
        train_acc = (fold_hits.sum(1, keepdim=True) - fold_hits) / (len(dist) - fold_n).clamp_min(1)
        best = train_acc.argmax(dim=0)  # first best threshold per fold
        test_acc = fold_hits[best, torch.arange(len(slices))] / fold_n.clamp_min(1)
        return {
            "verification_accuracy": float(test_acc.mean()),
            "verification_std": float(test_acc.std(unbiased=False)),
            "threshold": float(self.thresholds[best].mean()),
        }

    @property
    def meta(self) -> dict[str, MetricMeta]:
        return {
            "verification_accuracy": higher(
                "fraction",
                f"pairs judged correctly, mean over {self.folds} folds with thresholds chosen on the other folds",
            ),
            "verification_std": MetricMeta(better=None, unit="fraction", description="spread of the folds' accuracy"),
            "threshold": MetricMeta(
                better=None,
                unit="squared distance",
                description="mean of the folds' chosen thresholds on the embeddings' distance",
            ),
        }


def verification_metrics(spec: TaskSpec) -> VerificationMetric:
    """``TaskSpec.metrics`` for identity tasks (one instance per verification set)."""
    return VerificationMetric()


def read_recognition(
    root: str, split: str, skip_invalid: bool = False, verification: Sequence[str] = VERIFICATION_SETS
) -> FaceDataset:
    """``train``: InsightFace ``root/train.rec`` + ``train.idx``; a verification set name (``lfw``, ...):
    ``root/<name>.bin``; ``test``/``val``: the first of ``verification`` whose ``.bin`` is in ``root``."""
    if split == "train":
        return RecordIODataset(root, skip_invalid=skip_invalid)
    if split in ("test", "val"):
        found = [v for v in verification if os.path.isfile(os.path.join(root, f"{v}.bin"))]
        if not found:
            raise DatasetFormatError(root, 0, f"no verification file ({', '.join(verification)}).bin found")
        split = found[0]
    path = os.path.join(root, split if split.endswith(".bin") else f"{split}.bin")
    if split not in verification and not os.path.isfile(path):
        raise DatasetFormatError(
            root, 0, f"unknown split {split!r}; expected train, test or one of {', '.join(verification)}"
        )
    return VerificationDataset(path, skip_invalid=skip_invalid)


def recognition_dataset(
    root: str,
    split: str,
    transform: Callable | None = None,
    skip_invalid: bool = False,
    reader: Callable[..., FaceDataset] = read_recognition,
) -> FaceDataset:
    """``TaskSpec.dataset`` for identity tasks."""
    ds = reader(os.fspath(root), split, skip_invalid=skip_invalid)
    ds.transform = transform
    return ds


def recognition_task(
    name: str,
    num_identities: int,
    *,
    reader: Callable[..., FaceDataset] = read_recognition,
    embedding_dim: int = 512,
    input_size: int = 112,
    loss_weight: float = 1.0,
    scale: float = 64.0,
    margin: float = 0.4,
    verification: Sequence[str] = VERIFICATION_SETS,
    crop: CropSpec | None = None,
    **spec_fields: Any,
) -> TaskSpec:
    """A face-recognition task: CosFace on ``num_identities`` classes, verification sets as eval splits
    (listed in ``extra["eval_splits"]``). Training augmentation: resize and horizontal flip. ``crop`` defaults to
    the ArcFace 112-px template, the alignment of InsightFace's RecordIO datasets."""
    extra = {"eval_splits": tuple(verification), **spec_fields.pop("extra", {})}
    crop = crop or ARCFACE_CROP
    return TaskSpec(
        name=name,
        family="recognition",
        head_type="identity",
        output="embedding",
        num_queries=0,
        input_size=input_size,
        embedding_dim=embedding_dim,
        num_identities=num_identities,
        loss_weight=loss_weight,
        primary_metric=spec_fields.pop("primary_metric", "verification_accuracy"),
        dataset=partial(recognition_dataset, reader=reader),
        transforms=partial(FaceCropTransform, target=long_target, randaugment=False, erasing=0.0, crop=crop),
        crop=crop,
        flip=FlipRule(),
        loss=partial(cosface_loss, scale=scale, margin=margin),
        metrics=verification_metrics,
        baseline=spec_fields.pop("baseline", verification_baseline),
        extra=extra,
        **spec_fields,
    )
