"""Naive Faceptor's standardized heads on the shared encoder (reference layout).

- :class:`AttributeHead`: one per attribute family, a final Linear per dataset.
- :class:`DenseHead`: one per dense family (feature pyramid + UPerHead), a final 1x1 conv per dataset.
The identity head is :class:`~faceptor_core.model.interpreters.FeatureInterpreter`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .interpreters import BN_EPS


def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ChannelGate(nn.Module):
    """CBAM channel attention: (avg pool + max pool) -> shared MLP -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * gate.sigmoid()[:, :, None, None]


class AttributeHead(nn.Module):
    def __init__(self, in_dim: int, layers: Sequence[int], channels: int, outputs: dict[str, int]):
        super().__init__()
        self.layers = tuple(layers)
        width = channels * len(self.layers)
        self.convs = nn.ModuleList(nn.Conv2d(in_dim, channels, 3, padding=1) for _ in self.layers)
        self.gate = ChannelGate(width)
        self.bn = nn.BatchNorm1d(width, eps=BN_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        self.classifiers = nn.ModuleDict({name: nn.Linear(width, n) for name, n in outputs.items()})

    def forward(self, features: Sequence[torch.Tensor], tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        x = torch.cat([conv(features[i]) for conv, i in zip(self.convs, self.layers, strict=True)], dim=1)
        x = F.relu(self.gate(x)).amax(dim=(2, 3))
        x = self.mlp(self.bn(x))
        return {t: self.classifiers[t](x) for t in tasks}


class FeaturePyramid(nn.Module):
    """Four single-scale ViT features -> scales x4, x2, x1, x0.5."""

    def __init__(self, dim: int):
        super().__init__()
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 2, 2), nn.BatchNorm2d(dim), nn.GELU(), nn.ConvTranspose2d(dim, dim, 2, 2)
        )
        self.up2 = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.down2 = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [self.up4(feats[0]), self.up2(feats[1]), feats[2], self.down2(feats[3])]


class UPerHead(nn.Module):
    """Pyramid pooling on the coarsest level + FPN fusion of all levels (UPerNet)."""

    def __init__(self, in_dim: int, channels: int, pool_scales: Sequence[int] = (1, 2, 3, 6)):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm = nn.ModuleList(conv_bn_relu(in_dim, channels, 1) for _ in self.pool_scales)
        self.bottleneck = conv_bn_relu(in_dim + len(self.pool_scales) * channels, channels, 3)
        self.lateral = nn.ModuleList(conv_bn_relu(in_dim, channels, 1) for _ in range(3))
        self.fpn = nn.ModuleList(conv_bn_relu(channels, channels, 3) for _ in range(3))
        self.fuse = conv_bn_relu(4 * channels, channels, 3)
        self.dropout = nn.Dropout2d(0.1)

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        top = levels[3]
        pooled = [top]
        for scale, conv in zip(self.pool_scales, self.ppm, strict=True):
            p = conv(F.adaptive_avg_pool2d(top, scale))
            pooled.append(F.interpolate(p, size=top.shape[-2:], mode="bilinear", align_corners=False))
        lat = [conv(x) for conv, x in zip(self.lateral, levels[:3], strict=True)] + [
            self.bottleneck(torch.cat(pooled, 1))
        ]
        for i in range(3, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(
                lat[i], size=lat[i - 1].shape[-2:], mode="bilinear", align_corners=False
            )
        outs = [conv(x) for conv, x in zip(self.fpn, lat[:3], strict=True)] + [lat[3]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
        return self.dropout(self.fuse(torch.cat(outs, 1)))


class DenseHead(nn.Module):
    def __init__(self, in_dim: int, layers: Sequence[int], channels: int, outputs: dict[str, int]):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"the dense head takes 4 encoder layers, got {list(layers)}")
        self.layers = tuple(layers)
        self.pyramid = FeaturePyramid(in_dim)
        self.uper = UPerHead(in_dim, channels)
        self.classifiers = nn.ModuleDict({name: nn.Conv2d(channels, n, 1) for name, n in outputs.items()})

    def forward(self, features: Sequence[torch.Tensor], tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        x = self.uper(self.pyramid([features[i] for i in self.layers]))
        return {t: self.classifiers[t](x) for t in tasks}
