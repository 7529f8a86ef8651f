"""Decoding of raw task outputs into predictions, one function per output kind.

Conventions shared by models, losses and metrics:

- landmark heatmaps: ``B x N x h x w`` logits; coordinates are normalised as ``u = (x + 0.5) / w``, so a
  normalised point ``u`` is pixel ``u * W - 0.5`` of a ``W``-wide image (pixel centres at integers).
- segmentation: ``B x K x h x w`` logits, bilinearly upsampled (``align_corners=False``) to the image.
- age: ``B x 101`` logits; ``p = sigmoid / sum(sigmoid)``, age = ``sum_k k p_k``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
