"""Multi-head attention with ``nn.MultiheadAttention``'s parameter layout, on scaled_dot_product_attention.

Batch first. ``mask`` is boolean, ``True`` where a query may attend a key, broadcastable to
``B x heads x Lq x Lk``. ``need_weights`` returns the head-averaged attention probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiheadAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.dim, self.num_heads, self.dropout = dim, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._split(F.linear(query, w_q, b_q))
        k = self._split(F.linear(key, w_k, b_k))
        v = self._split(F.linear(value, w_v, b_v))
        weights = None
        if need_weights:
            logits = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            probs = logits.softmax(dim=-1)
            weights = probs.mean(dim=1)
            out = F.dropout(probs, self.dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.dim)
        return self.out_proj(out), weights
