"""Output decoding: a task's raw head output -> its :class:`~faceptor_core.predictions.Prediction`.

:data:`OUTPUTS` is the one table from output kind to (decode function, prediction class); the model decodes
through it (:meth:`FaceptorBase.decode`), the contract kit checks predictions against it. A task's own
``TaskSpec.decode`` takes the place of the table's function for that task.

Conventions shared by models, losses and metrics:

- landmark heatmaps: ``B x N x h x w`` logits; coordinates are normalised as ``u = (x + 0.5) / w``, so a
  normalised point ``u`` is pixel ``u * W - 0.5`` of a ``W``-wide image (pixel centres at integers).
- segmentation: ``B x K x h x w`` logits, bilinearly upsampled (``align_corners=False``) to the image.
- age: ``B x 101`` logits; ``p = sigmoid / sum(sigmoid)``, age = ``sum_k k p_k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import predictions as P
from .spec import TaskHead


def soft_argmax(heatmap_logits: torch.Tensor) -> torch.Tensor:
    """``B x N x h x w`` logits -> ``B x N x 2`` normalised (x, y) by sigmoid-weighted mean of cell centres."""
    b, n, h, w = heatmap_logits.shape
    act = heatmap_logits.float().sigmoid()
    xs = (torch.arange(w, device=act.device, dtype=act.dtype) + 0.5) / w
    ys = (torch.arange(h, device=act.device, dtype=act.dtype) + 0.5) / h
    total = act.sum(dim=(2, 3)).clamp_min(1e-6)
    x = (act.sum(dim=2) * xs).sum(dim=2) / total
    y = (act.sum(dim=3) * ys).sum(dim=2) / total
    return torch.stack([x, y], dim=-1)


def normalised_to_pixels(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised (x, y) in [0, 1] -> pixel coordinates of an image of ``height x width``."""
    scale = points.new_tensor([width, height])
    return points * scale - 0.5


def pixels_to_normalised(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`normalised_to_pixels`."""
    scale = points.new_tensor([width, height])
    return (points + 0.5) / scale


def upsample_logits(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of ``B x K x h x w`` logits to ``height x width``."""
    if logits.shape[-2:] == (height, width):
        return logits
    return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)


def age_distribution(logits: torch.Tensor) -> torch.Tensor:
    """``B x K`` logits -> L1-normalised sigmoid distribution over ages ``0..K-1``."""
    act = logits.float().sigmoid()
    return act / act.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def expected_age(logits: torch.Tensor) -> torch.Tensor:
    """``B x K`` logits -> ``B`` expected age in years."""
    p = age_distribution(logits)
    ages = torch.arange(p.shape[-1], device=p.device, dtype=p.dtype)
    return (p * ages).sum(dim=-1)


# -- one decode function per output kind ---------------------------------------------------------------
def decode_landmarks(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.LandmarkPrediction:
    return P.LandmarkPrediction(head.name, normalised_to_pixels(soft_argmax(raw), *image_hw))


def decode_segmentation(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.ParsingPrediction:
    return P.ParsingPrediction(head.name, upsample_logits(raw, *image_hw).argmax(dim=1), head.label_names)


def decode_age(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.AgePrediction:
    return P.AgePrediction(head.name, expected_age(raw), age_distribution(raw))


def decode_classification(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.ClassificationPrediction:
    return P.ClassificationPrediction(head.name, raw.float().softmax(dim=-1), head.label_names)


def decode_multilabel(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.MultilabelPrediction:
    return P.MultilabelPrediction(head.name, raw.float().sigmoid(), head.label_names)


def decode_regression(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.RegressionPrediction:
    return P.RegressionPrediction(head.name, raw.float(), head.label_names)


def decode_embedding(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.EmbeddingPrediction:
    return P.EmbeddingPrediction(head.name, F.normalize(raw.float(), dim=-1))


#: A built-in output decoding: ``(task head, raw output, (height, width) of the images) -> prediction``.
OutputDecode = Callable[[TaskHead, torch.Tensor, tuple[int, int]], P.Prediction]


@dataclass(frozen=True)
class Output:
    """An output kind: how its raw output is decoded and the prediction class that results."""

    kind: str
    decode: OutputDecode
    prediction: type[P.Prediction]


#: Output kind -> (decode, prediction class): the core's only table over output kinds.
OUTPUTS: dict[str, Output] = {
    o.kind: o
    for o in (
        Output("landmarks", decode_landmarks, P.LandmarkPrediction),
        Output("segmentation", decode_segmentation, P.ParsingPrediction),
        Output("age_distribution", decode_age, P.AgePrediction),
        Output("classification", decode_classification, P.ClassificationPrediction),
        Output("multilabel", decode_multilabel, P.MultilabelPrediction),
        Output("regression", decode_regression, P.RegressionPrediction),
        Output("embedding", decode_embedding, P.EmbeddingPrediction),
    )
}


def decode_output(head: TaskHead, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.Prediction:
    """The core's decoding of ``head``'s raw output for images of size ``image_hw``."""
    output = OUTPUTS.get(head.output)
    if output is None:
        raise ValueError(f"task {head.name!r}: no output decoding for output kind {head.output!r}")
    return output.decode(head, raw, image_hw)
