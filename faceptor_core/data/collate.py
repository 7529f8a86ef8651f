"""Per-size collation (one concatenated image batch per input size, and each task's rows in it) and item
collation that keeps ragged arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate


def group_by_size(
    images: Mapping[str, torch.Tensor], sizes: Mapping[str, int]
) -> tuple[dict[int, torch.Tensor], dict[str, slice]]:
    """``{task: B_t x 3 x S x S}`` -> ``({S: concatenated batch}, {task: its rows})``."""
    parts: dict[int, list[torch.Tensor]] = {}
    rows: dict[str, slice] = {}
    offsets: dict[int, int] = {}
    for task, batch in images.items():
        size = sizes[task]
        if tuple(batch.shape[-2:]) != (size, size):
            raise ValueError(f"task {task!r}: batch has shape {tuple(batch.shape)}, expected images of {size} px")
        start = offsets.get(size, 0)
        rows[task] = slice(start, start + batch.shape[0])
        offsets[size] = start + batch.shape[0]
        parts.setdefault(size, []).append(batch)
    return {s: torch.cat(p) if len(p) > 1 else p[0] for s, p in parts.items()}, rows


def collate_items(items: Sequence[Any]) -> Any:
    """``default_collate`` that keeps ragged arrays: tensors/arrays of equal shapes are stacked, of differing
    shapes (e.g. original-size label maps in ``meta``) returned as a list of tensors."""
    first = items[0]
    if isinstance(first, Mapping):
        return {k: collate_items([it[k] for it in items]) for k in first}
    if isinstance(first, (torch.Tensor, np.ndarray)):
        tensors = [torch.as_tensor(np.require(x, requirements="W") if isinstance(x, np.ndarray) else x) for x in items]
        if all(t.shape == tensors[0].shape for t in tensors):
            return torch.stack(tensors)
        return tensors
    return default_collate(list(items))
