"""Pooled heads: small training-only heads that supervise a from-scratch encoder directly (``train.pooled_heads``).

Each attribute-type task of a run gets a LayerNorm and a Linear on the mean of the last encoder layer's tokens (with
``train.pooled_head_hidden: N``, each token through LayerNorm, Linear to N and GELU before the mean, then a Linear;
with ``train.pooled_head_queries: Q``, Q learned queries attending over the normalised tokens, then a Linear, which
``train.pooled_head_mean`` also gives the normalised mean token),
trained on the task's own loss beside the decoder's output. They are not part of the model (its checkpoint, its
predictions): the trainer keeps them, in its checkpoints, to resume exactly. On 9,600 SynthFaces expression images the
demo's encoder learns expression under such a head as ResNet-18 does (0.40 / 0.39 against 0.40 / 0.46) and, read
through the decoder alone, to 0.25 / 0.18 (docs/results.md, "The decoder, not the encoder").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import TaskNotFoundError
from .config import ConfigError

if TYPE_CHECKING:
    from ..model.base import FaceptorBase
    from .config import TrainSection


def _head(dim: int, out: int, hidden: int, queries: int = 0, mean: bool = False) -> nn.Module:
    """``hidden`` and ``queries`` 0: LayerNorm + Linear on the mean token; ``hidden``: LayerNorm, Linear to ``hidden``
    and GELU on each token, whose mean a Linear reads; ``queries``: :class:`_AttentionPool` (``mean``: beside the mean
    token)."""
    if queries:
        return _AttentionPool(dim, out, queries, mean)
    if not hidden:
        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out))
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), _MeanToken(), nn.Linear(hidden, out))


class _MeanToken(nn.Module):
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=1)


class _AttentionPool(nn.Module):
    """``queries`` learned queries attend over the LayerNorm-ed tokens (multi-head attention, 4 heads where the width
    allows); a Linear reads their outputs side by side. Its gradient reaches the tokens that the queries attend to,
    where the mean's reaches every token alike: a local cue (a beard, a fringe) can be learned where it is. The queries
    start small, so the attention starts near uniform: near the mean token's readout. With ``mean``, the Linear also
    reads the mean token through a LayerNorm of its own: the mean head's readout and the attention's, summed."""

    def __init__(self, dim: int, out: int, queries: int, mean: bool = False):
        super().__init__()
        heads = next(h for h in (4, 2, 1) if dim % h == 0)
        self.norm = nn.LayerNorm(dim)
        self.queries = nn.Parameter(torch.randn(queries, dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mean_norm = nn.LayerNorm(dim) if mean else None
        self.out = nn.Linear((queries + mean) * dim, out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``B x N x C`` tokens -> ``B x out``."""
        x = self.norm(tokens)
        pooled, _ = self.attn(self.queries.expand(len(x), -1, -1), x, x, need_weights=False)
        pooled = pooled.flatten(1)
        if self.mean_norm is not None:
            pooled = torch.cat([pooled, self.mean_norm(tokens.mean(dim=1))], dim=1)
        return self.out(pooled)


class PooledHeads(nn.Module):
    """``{task: (encoder width, outputs, input size)}`` -> one pooled head per task on the last encoder layer of its
    input size; ``fractions[task]``: the share of the task's weight its pooled loss gets; ``hidden``: the width of a
    token-wise projection before the mean (0: none, LayerNorm + Linear on the mean token); ``queries``: learned
    queries that pool the tokens by attention instead of the mean, for every task or ``{task: queries}`` (0 or a task
    not named: the mean); ``mean``: an attention readout also reads the mean token."""

    def __init__(
        self,
        shapes: Mapping[str, tuple[int, int, int]],
        fractions: Mapping[str, float],
        hidden: int = 0,
        queries: int | Mapping[str, int] = 0,
        mean: bool = False,
    ):
        super().__init__()
        per_task = queries if isinstance(queries, Mapping) else dict.fromkeys(shapes, queries)
        per_task = {task: per_task.get(task, 0) for task in shapes}
        if hidden and any(per_task.values()):
            raise ValueError("a pooled head reads the tokens through a hidden projection or by attention, not both")
        if mean and not any(per_task.values()):
            raise ValueError("the mean token beside the attention's outputs needs an attention readout (queries)")
        self.heads = nn.ModuleDict(
            {task: _head(dim, out, hidden, per_task[task], mean) for task, (dim, out, _) in shapes.items()}
        )
        self.sizes = {task: size for task, (_, _, size) in shapes.items()}
        self.fractions = {task: fractions[task] for task in shapes}
        self.tokenwise = {task: bool(hidden or per_task[task]) for task in shapes}

    def forward(self, last: Mapping[int, torch.Tensor], rows: Mapping[str, slice]) -> dict[str, torch.Tensor]:
        """Each task's raw output (``B_t x outputs``) from its rows of its input size's last encoder layer."""
        out = {}
        for task, head in self.heads.items():
            tokens = last[self.sizes[task]][rows[task]].flatten(2).float()  # B x C x N
            out[task] = head(tokens.transpose(1, 2) if self.tokenwise[task] else tokens.mean(-1))
        return out


def pooled_heads_for(model: FaceptorBase, train: TrainSection, tasks: Sequence[str]) -> PooledHeads | None:
    """``train.pooled_heads`` for a run of ``tasks`` on ``model``: a pooled head for each attribute-type task it names
    (a number: all of them; a fraction of 0: none), None without. The trainer's heads, and what a saved run's pooled
    heads are rebuilt from."""
    chosen = train.pooled_heads
    if not train.wants_pooled_heads():
        return None
    attribute = [n for n in tasks if model.tasks[n].head_type == "attribute"]
    if not attribute:
        raise ConfigError(
            "train.pooled_heads: no task of this run has an attribute-type head (pooled heads supervise those)"
        )
    if not isinstance(chosen, dict):
        chosen = dict.fromkeys(attribute, chosen)
    for name in chosen:
        if name not in tasks:
            raise ConfigError(f"train.pooled_heads: {TaskNotFoundError(name, tasks, 'in this run')}")
        if name not in attribute:
            raise ConfigError(
                f"train.pooled_heads: task {name!r} has a {model.tasks[name].head_type}-type head; "
                f"pooled heads supervise attribute-type tasks ({', '.join(attribute)})"
            )
    fractions = {n: f for n, f in chosen.items() if f > 0}
    queries = train.pooled_head_queries
    for name in queries if isinstance(queries, dict) else ():
        if name not in fractions:
            raise ConfigError(
                f"train.pooled_head_queries names {name!r}, which has no pooled head (train.pooled_heads: "
                f"{', '.join(fractions)})"
            )
    dim = model.encoder.embed_dim
    shapes = {n: (dim, model.tasks[n].num_queries, model.tasks[n].input_size) for n in fractions}
    return PooledHeads(shapes, fractions, train.pooled_head_hidden, queries, train.pooled_head_mean)
