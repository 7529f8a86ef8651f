"""Output interpreters, shared by every task of a head type.

- value (attribute tasks): one ``Linear(dim, 1)`` per query output -> ``B x N`` logits.
- map (dense tasks): a 3-layer MLP turns each query into a mask embedding, dotted with the pixel
  decoder's per-pixel embeddings -> ``B x N x 4S x 4S`` logits.
- feature (identity tasks): LayerNorm -> token mean -> Linear -> BN -> Linear -> BN embedding.
"""

from __future__ import annotations

import torch
from torch import nn

#: BatchNorm eps of the reference's identity and Naive attribute heads.
BN_EPS = 2e-5


class ValueInterpreter(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        return self.fc(queries).squeeze(-1)


class MapInterpreter(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mask_mlp = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, dim),
        )

    def forward(self, queries: torch.Tensor, pixel_embeddings: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bqc,bchw->bqhw", self.mask_mlp(queries), pixel_embeddings)


class FeatureInterpreter(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = 512):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, in_dim, bias=False)
        self.bn1 = nn.BatchNorm1d(in_dim, eps=BN_EPS)
        self.fc2 = nn.Linear(in_dim, out_dim, bias=False)
        self.bn2 = nn.BatchNorm1d(out_dim, eps=BN_EPS)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """``B x C x S x S`` last encoder layer -> ``B x out_dim`` embedding (not normalised)."""
        tokens = self.norm(feature.flatten(2).transpose(1, 2)).mean(dim=1)
        return self.bn2(self.fc2(self.bn1(self.fc1(tokens))))
