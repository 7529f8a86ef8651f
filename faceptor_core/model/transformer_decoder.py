"""The transformer decoder of the dual decoder: task queries attend to encoder memory.

Post-norm layers, each cross-attention -> self-attention -> FFN with residual + LayerNorm, as in the
reference (no final LayerNorm unless ``final_norm``). Values carry no position encoding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiheadAttention
from .config import DecoderConfig


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.cross_attn = MultiheadAttention(dim, num_heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiheadAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_pos: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory_mask: torch.Tensor | None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn, weights = self.cross_attn(
            tgt + query_pos, memory + memory_pos, memory, mask=memory_mask, need_weights=need_weights
        )
        tgt = self.norm1(tgt + self.dropout(attn))
        q = tgt + query_pos
        attn, _ = self.self_attn(q, q, tgt, mask=self_mask)
        tgt = self.norm2(tgt + self.dropout(attn))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn)), weights


class TransformerDecoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(config.hidden_dim, config.num_heads, config.ffn_dim, config.dropout)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_dim) if config.final_norm else nn.Identity()

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_pos: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``tgt``/``query_pos``: B x Q x D; ``memory``/``memory_pos``: B x L x D (pos may broadcast).

        Returns the normalised query outputs and, with ``need_weights``, each layer's B x Q x L
        cross-attention probabilities.
        """
        weights: list[torch.Tensor] = []
        for layer in self.layers:
            tgt, w = layer(tgt, memory, memory_pos, query_pos, self_mask, memory_mask, need_weights)
            if w is not None:
                weights.append(w)
        return self.norm(tgt), weights
