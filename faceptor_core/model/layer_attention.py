"""Layer-Attention: decoder memory built from several encoder layers.

Each used layer has its own 1x1 projection to the decoder width and its own level embedding; keys carry
``MLP(sine position) + level embedding``. The decoder's cross-attention softmax runs over all layers'
tokens at once, so the attention mass per layer is a task's layer preference. Stage 1 uses the last layer
only; Stage 2 adds layers (:meth:`add_layers`) on a frozen Stage-1 model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .position import sine_position_encoding


class LayerAttention(nn.Module):
    def __init__(self, in_dim: int, dim: int, layers: Sequence[int]):
        super().__init__()
        self.in_dim, self.dim = in_dim, dim
        self.layers: list[int] = []
        self.proj = nn.ModuleDict()
        self.level_embed = nn.ParameterDict()
        self.pos_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        self._pos_cache: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}
        self.add_layers(layers)

    def add_layers(self, layers: Sequence[int]) -> list[str]:
        """Add projections and level embeddings for new layers; returns their parameter-name prefixes."""
        added = []
        for layer in layers:
            if layer in self.layers:
                continue
            self.layers.append(int(layer))
            self.proj[str(layer)] = nn.Conv2d(self.in_dim, self.dim, kernel_size=1)
            self.level_embed[str(layer)] = nn.Parameter(torch.randn(self.dim))
            added.extend((f"proj.{layer}.", f"level_embed.{layer}"))
        return added

    def project(self, feature: torch.Tensor, layer: int) -> torch.Tensor:
        """The ``B x dim x S x S`` projection of one encoder layer."""
        return self.proj[str(layer)](feature)

    def _sine(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (h, w, str(device), dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = sine_position_encoding(h, w, self.dim, device=device, dtype=dtype)
        return self._pos_cache[key]

    def forward(
        self, features: Sequence[torch.Tensor], projected_last: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int]]]:
        """Encoder outputs (all layers) -> memory ``B x L x dim``, key position ``1 x L x dim`` and
        the ``(layer, start, end)`` token span of every layer."""
        mems, poss, spans, start = [], [], [], 0
        for layer in self.layers:
            feat = features[layer]
            proj = projected_last if (projected_last is not None and layer == len(features) - 1) else None
            proj = self.project(feat, layer) if proj is None else proj
            b, _, h, w = proj.shape
            mems.append(proj.flatten(2).transpose(1, 2))
            poss.append(self.pos_mlp(self._sine(h, w, proj.device, proj.dtype)) + self.level_embed[str(layer)])
            spans.append((layer, start, start + h * w))
            start += h * w
        return torch.cat(mems, dim=1), torch.cat(poss, dim=0).unsqueeze(0), spans
