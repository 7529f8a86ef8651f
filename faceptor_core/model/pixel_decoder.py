"""The pixel decoder of the dual decoder: last-layer features upsampled x4 to per-pixel embeddings (x8 with
:class:`PixelFine`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a ``B x C x H x W`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class PixelDecoder(nn.Module):
    """ConvT(k2, s2) -> channel LayerNorm -> GELU -> ConvT(k2, s2): ``S x S`` -> ``4S x 4S``. ``mid``, a
    ``B x C x 2S x 2S`` map (``DecoderConfig.pixel_fpn``: the stem's stride-8 map, projected), is added after the
    first upsampling."""

    def __init__(self, dim: int):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.norm = LayerNorm2d(dim, eps=1e-6)  # the reference's channel LayerNorm eps
        self.up2 = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor, mid: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up1(x)
        if mid is not None:
            x = x + mid
        return self.up2(F.gelu(self.norm(x)))


class PixelRefine(nn.Module):
    """A residual 3 x 3 convolution on the pixel embeddings (``DecoderConfig.pixel_fpn``): ``x + Conv3x3(GELU(
    LayerNorm(x)))``, the convolution started at zero so that the block starts as the identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.gelu(self.norm(x)))


class PixelFine(nn.Module):
    """The pixel embeddings at twice the resolution (``DecoderConfig.pixel_stride`` 2): upsampled x2 (bilinear), the
    ResNet stem's stride-2 map added (1x1-projected), then a residual bottleneck ``x + Conv1x1(GELU(Conv3x3(GELU(
    LayerNorm(x)))))`` through a quarter of the channels, its last convolution started at zero (a full-width 3 x 3
    convolution at this resolution would cost more than the encoder)."""

    def __init__(self, dim: int, stem_channels: int):
        super().__init__()
        hidden = max(dim // 4, 8)
        self.lateral = nn.Conv2d(stem_channels, dim, 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.reduce = nn.Conv2d(dim, hidden, 3, padding=1)
        self.expand = nn.Conv2d(hidden, dim, 1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False) + self.lateral(fine)
        return x + self.expand(F.gelu(self.reduce(F.gelu(self.norm(x)))))
