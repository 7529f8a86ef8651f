"""Sine 2-D position encoding of grid-cell centres (DETR style)."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(
    height: int,
    width: int,
    dim: int = 256,
    temperature: float = 10000.0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(height * width) x dim`` encoding of type ``dtype``: ``dim/2`` frequencies for y then ``dim/2`` for x.

    Cell centres are normalised to ``(i + 0.5) / n`` and scaled by ``2 pi``; each half interleaves sin/cos.
    Computed in float64 for a float64 result, else in float32.
    """
    if dim % 4:
        raise ValueError(f"position encoding dim must be a multiple of 4, got {dim}")
    feats = dim // 2
    work = torch.float64 if dtype == torch.float64 else torch.float32
    scale = 2 * math.pi
    y = (torch.arange(height, dtype=work, device=device) + 0.5) / height * scale
    x = (torch.arange(width, dtype=work, device=device) + 0.5) / width * scale
    idx = torch.arange(feats, dtype=work, device=device)
    dim_t = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / feats)
    py = y[:, None] / dim_t  # H x F
    px = x[:, None] / dim_t  # W x F
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((py[:, None, :].expand(height, width, feats), px[None, :, :].expand(height, width, feats)), dim=2)
    return pos.reshape(height * width, dim).to(dtype)
