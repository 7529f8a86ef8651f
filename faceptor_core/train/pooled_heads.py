"""Pooled heads: small training-only heads that supervise a from-scratch encoder directly (``train.pooled_heads``).

Each attribute-type task of a run gets a LayerNorm and a Linear on the mean of the last encoder layer's tokens (with
``train.pooled_head_hidden: N``, each token through LayerNorm, Linear to N and GELU before the mean, then a Linear),
trained on the task's own loss beside the decoder's output. They are not part of the model (its checkpoint, its
predictions): the trainer keeps them, in its checkpoints, to resume exactly. On 9,600 SynthFaces expression images the
demo's encoder learns expression under such a head as ResNet-18 does (0.40 / 0.39 against 0.40 / 0.46) and, read
through the decoder alone, to 0.25 / 0.18 (docs/results.md, "The decoder, not the encoder").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def _head(dim: int, out: int, hidden: int) -> nn.Sequential:
    """``hidden`` 0: LayerNorm + Linear on the mean token; else LayerNorm, Linear to ``hidden`` and GELU on each token,
    whose mean a Linear reads."""
    if not hidden:
        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out))
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), _MeanToken(), nn.Linear(hidden, out))


class _MeanToken(nn.Module):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=1)


class PooledHeads(nn.Module):
    """``{task: (encoder width, outputs, input size)}`` -> one pooled head per task on the last encoder layer of its
    input size; ``fractions[task]``: the share of the task's weight its pooled loss gets; ``hidden``: the width of a
    token-wise projection before the mean (0: none, LayerNorm + Linear on the mean token)."""

    def __init__(self, shapes: Mapping[str, tuple[int, int, int]], fractions: Mapping[str, float], hidden: int = 0):
        super().__init__()
        self.heads = nn.ModuleDict({task: _head(dim, out, hidden) for task, (dim, out, _) in shapes.items()})
        self.sizes = {task: size for task, (_, _, size) in shapes.items()}
        self.fractions = {task: fractions[task] for task in shapes}
        self.hidden = hidden

    def forward(self, last: Mapping[int, torch.Tensor], rows: Mapping[str, slice]) -> dict[str, torch.Tensor]:
        """Each task's raw output (``B_t x outputs``) from its rows of its input size's last encoder layer."""
        out = {}
        for task, head in self.heads.items():
            tokens = last[self.sizes[task]][rows[task]].flatten(2).float()  # B x C x N
            out[task] = head(tokens.transpose(1, 2) if self.hidden else tokens.mean(-1))
        return out
