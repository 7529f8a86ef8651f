"""How far a model beats its task's trivial answer, and whether that is more than the test set's noise.

The evaluated items are dealt into groups (item ``i`` to group ``i % k``), each group scored by its own copy of the
task's metric, for the model and for the trivial answer. The spread of the paired per-group margins gives the
standard error of the whole set's margin (the method of batch means: exact for metrics that average over items,
an approximation for ratios such as F1 and for cross-validated verification accuracy). A margin counts as a win only
beyond two standard errors, and as a clear one only when it also covers a twentieth of the way to a perfect score:
a model that has barely left the trivial answer can beat it consistently by a margin too small to matter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

#: Groups the evaluated items are dealt into, at most (fewer for small sets: at least 2 items a group).
MAX_GROUPS = 10
#: Fewer groups than this give no error bars (their spread says too little).
MIN_GROUPS = 5
#: A margin beyond this many standard errors counts as a win (or a loss).
Z = 2.0
#: ... and as a clear win when it also covers this share of the way from the trivial answer to a perfect score.
MIN_SHARE = 0.05


def group_count(items: int) -> int:
    """How many groups ``items`` evaluated items are dealt into; 0 when too few for error bars."""
    k = min(MAX_GROUPS, items // 2)
    return k if k >= MIN_GROUPS else 0


def take_items(batch: Any, index: torch.Tensor) -> Any:
    """The rows ``index`` of a collated batch: tensors and arrays indexed, lists and tuples picked, mappings
    taken key by key; anything else (a value shared by the batch) kept."""
    if batch is None:
        return None
    if isinstance(batch, torch.Tensor):
        return batch[index.to(batch.device)] if batch.ndim else batch
    if isinstance(batch, np.ndarray):
        return batch[index.numpy()] if batch.ndim else batch
    if isinstance(batch, Mapping):
        return {k: take_items(v, index) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [batch[i] for i in index.tolist()]
    return batch


class GroupedScores:
    """One metric per group of the evaluated items (``make_metric`` builds each); ``feed`` deals a batch's rows
    to their groups by the items' running index. A metric that cannot score a group (it needs whole batches, or
    raises on few items) leaves the task without error bars: ``error`` says why, and the evaluation goes on."""

    def __init__(self, make_metric: Callable[[], Any], items: int, enabled: bool = True):
        self.k = group_count(items) if enabled else 0
        self.metrics = [make_metric() for _ in range(self.k)]
        self.seen = 0
        self.error = "" if self.k else f"{items} items are too few for error bars" if enabled else "not asked for"

    def feed(self, method: str, *batch: Any) -> None:
        """Deal the next batch's rows to their groups: each group's metric gets ``method(*its rows of batch)``
        (``update`` with prediction, target and meta; ``update_pairs`` with both embeddings and issame)."""
        rows = len(batch[0])
        first, self.seen = self.seen, self.seen + rows
        if self.error:
            return
        group = (torch.arange(rows) + first) % self.k
        try:
            for g in range(self.k):
                index = torch.nonzero(group == g).flatten()
                if len(index):
                    getattr(self.metrics[g], method)(*(take_items(part, index) for part in batch))
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as exc:
            self.error = f"a group of items could not be scored ({exc})"

    def compute(self) -> list[dict[str, float]]:
        """Each group's metrics (empty when there are no error bars)."""
        if self.error:
            return []
        try:
            return [{str(k): float(v) for k, v in m.compute().items()} for m in self.metrics]
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as exc:
            self.error = f"a group of items could not be scored ({exc})"
            return []


def margin_se(
    groups: Sequence[Mapping[str, float]], baseline_groups: Sequence[Mapping[str, float]]
) -> dict[str, float]:
    """The standard error of (metric - baseline) over the whole set, per metric, from the paired groups' margins;
    a metric that is not finite in every group of both gets none."""
    if not groups or len(groups) != len(baseline_groups):
        return {}
    out = {}
    for key in groups[0]:
        margins = [g.get(key, math.nan) - b.get(key, math.nan) for g, b in zip(groups, baseline_groups, strict=True)]
        if all(math.isfinite(m) for m in margins):
            out[key] = float(np.std(margins, ddof=1) / math.sqrt(len(margins)))
    return out


def practical_margin(baseline: float, higher: bool, fraction: bool = False) -> float:
    """The smallest margin worth calling a win: :data:`MIN_SHARE` of the way from the trivial ``baseline`` to a
    perfect score (1 for a fraction, 0 for an error; without a known perfect score, of the baseline itself)."""
    if not higher:
        return MIN_SHARE * abs(baseline)
    return MIN_SHARE * ((1.0 - baseline) if fraction else abs(baseline))


def verdict(value: float, baseline: float | None, se: float | None, higher: bool | None, fraction: bool = False) -> str:
    """Does ``value`` beat the trivial ``baseline``? ``yes`` beyond :data:`Z` standard errors and by at least
    :func:`practical_margin`; ``barely`` beyond the standard errors but by less; ``within noise`` inside them;
    ``**no**`` below them. The margin and its two-SE half-width follow. ``-`` for a value that is no score or has
    no baseline; without a standard error, the bare comparison, marked as such. ``fraction``: the value lies in
    [0, 1] (its metric's unit)."""
    if baseline is None or higher is None or not (math.isfinite(value) and math.isfinite(baseline)):
        return "-"
    margin = value - baseline if higher else baseline - value
    enough = margin >= practical_margin(baseline, higher, fraction)
    if se is None or not math.isfinite(se):
        return ("yes" if enough else "barely" if margin > 0 else "**no**") + " (no error bar)"
    bar = f"{margin:+.4f} ± {Z * se:.4f}"
    if margin > Z * se:
        return f"{'yes' if enough else 'barely'} ({bar})"
    if margin < -Z * se:
        return f"**no** ({bar})"
    return f"within noise ({bar})"
