"""Label-aware horizontal flips: how a task's labels change when its image is mirrored left-right.

A task declares a :class:`FlipRule` (``TaskSpec.flip``); the shared transforms mirror the image through the crop's
affine and apply the rule to the labels, and the contract kit checks that they do. The rule speaks of the task's
*queries* (points, classes, attribute labels or regression values), by label name or by index:

- ``permutation``: query ``i`` of the mirrored image is query ``permutation[i]`` of the original (landmarks: the
  mirrored point order; parsing: the class swap as a permutation);
- ``swap``: pairs of label names exchanged (``("left_eye", "right_eye")``), another way to write a permutation;
- ``negate``: regression values whose sign flips (a head pose's yaw and roll; a gaze's yaw).

The geometry is implied by the output kind: point targets (``landmarks``) mirror their x coordinates
(``x -> W - 1 - x``, pixel centres at integers) and label maps (``segmentation``) reverse their columns; image-level
targets have no geometry. :meth:`LabelFlip.relabel` is the part a transform applies after mirroring the geometry;
:meth:`LabelFlip.mirror` is the whole label of the mirrored image. Flipping twice is the identity: the rule must be
an involution (checked when it is declared).

``FlipRule()`` says "the image may be mirrored and the labels stay as they are" (an age, an identity). A task with
no rule (``TaskSpec.flip = None``) must not mirror its training images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

__all__ = ["UNCHANGED", "FlipRule", "LabelFlip", "resolve_flip"]

#: Outputs whose queries are one per label, so that a permutation or swap reorders them.
_PERMUTABLE = ("landmarks", "segmentation", "classification", "multilabel", "regression")


class FlipRule(BaseModel):
    """How a task's labels change under a horizontal flip of its image (see the module docstring).

    Example: a head pose ``("yaw", "pitch", "roll")`` flips as ``FlipRule(negate=("yaw", "roll"))``; LaPa's
    parsing classes as ``FlipRule(swap=(("left_eyebrow", "right_eyebrow"), ("left_eye", "right_eye")))``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    permutation: tuple[int, ...] | None = None
    swap: tuple[tuple[str, str], ...] = ()
    negate: tuple[str | int, ...] = ()

    def describe(self) -> str:
        """One line: what the rule changes (``"labels unchanged"`` for ``FlipRule()``)."""
        parts = []
        if self.permutation is not None:
            moved = sum(i != p for i, p in enumerate(self.permutation))
            parts.append(f"reorders {moved} of {len(self.permutation)} queries")
        if self.swap:
            parts.append("swaps " + ", ".join(f"{a}<->{b}" for a, b in self.swap))
        if self.negate:
            parts.append("negates " + ", ".join(map(str, self.negate)))
        return "; ".join(parts) or "labels unchanged"


#: ``FlipRule()``: the image may be mirrored, the labels stay as they are.
UNCHANGED = FlipRule()


def _index(name: str | int, label_names: Sequence[str], num_queries: int, what: str) -> int:
    if isinstance(name, int):
        if not 0 <= name < num_queries:
            raise ValueError(f"flip rule {what} index {name} outside 0..{num_queries - 1}")
        return name
    if name not in label_names:
        known = ", ".join(label_names) if label_names else "none (declare label_names or use indices)"
        raise ValueError(f"flip rule {what} names unknown label {name!r}; labels: {known}")
    return list(label_names).index(name)


def resolve_flip(
    rule: FlipRule | None, output: str, label_names: Sequence[str] = (), num_queries: int = 0
) -> LabelFlip | None:
    """The rule in the task's terms (indices, a permutation and signs); ``ValueError`` when it does not fit the task
    (an unknown label, a permutation of the wrong length or not an involution, a negation outside a regression)."""
    if rule is None:
        return None
    if rule.permutation is not None and rule.swap:
        raise ValueError("flip rule: give either permutation or swap, not both")
    if (rule.permutation is not None or rule.swap) and output not in _PERMUTABLE:
        raise ValueError(f"flip rule: {output!r} outputs have no per-label queries to reorder")
    if rule.negate and output != "regression":
        raise ValueError(f"flip rule: negate applies to regression values, not to {output!r} outputs")
    perm: tuple[int, ...] | None = None
    if rule.permutation is not None:
        perm = tuple(int(p) for p in rule.permutation)
        if sorted(perm) != list(range(num_queries)):
            raise ValueError(
                f"flip rule permutation must be a permutation of range({num_queries}), got {len(perm)} entries"
            )
    elif rule.swap:
        order = list(range(num_queries))
        seen: set[int] = set()
        for a, b in rule.swap:
            i, j = _index(a, label_names, num_queries, "swap"), _index(b, label_names, num_queries, "swap")
            if i == j or i in seen or j in seen:
                raise ValueError(f"flip rule swap ({a!r}, {b!r}): each label may be swapped once, with another label")
            seen |= {i, j}
            order[i], order[j] = j, i
        perm = tuple(order)
    if perm is not None and any(perm[perm[i]] != i for i in range(len(perm))):
        raise ValueError("flip rule permutation must be an involution (flipping twice is the identity)")
    negated = sorted({_index(n, label_names, num_queries, "negate") for n in rule.negate})
    signs = np.ones(num_queries, np.float64)
    signs[negated] = -1.0
    if perm is not None and any(signs[i] != signs[perm[i]] for i in range(num_queries)):
        raise ValueError(
            "flip rule: a negated value must be swapped with another negated value (flipping twice "
            "must be the identity)"
        )
    if perm is not None and perm == tuple(range(num_queries)):
        perm = None
    return LabelFlip(output, perm, tuple(negated), num_queries)


@dataclass(frozen=True)
class LabelFlip:
    """A :class:`FlipRule` resolved for one task: apply it to targets (numpy arrays or torch tensors, batched or
    not) in the layout of the task's output kind.

    Layouts: ``landmarks`` ``... x N x 2`` crop pixels; ``segmentation`` ``... x H x W`` class indices (values
    outside the classes, such as an ignore index, are kept); ``classification`` class indices; ``multilabel`` and
    ``regression`` ``... x N``; other outputs are unchanged by a flip.
    """

    output: str
    permutation: tuple[int, ...] | None
    negated: tuple[int, ...]
    num_queries: int

    @property
    def changes_labels(self) -> bool:
        """Whether :meth:`relabel` changes anything (False: the labels of a mirrored image are the same)."""
        return self.permutation is not None or bool(self.negated)

    def relabel(self, target: Any) -> Any:
        """The label change a transform applies after mirroring the image geometry (reorder, swap, negate)."""
        if not self.changes_labels:
            return target
        out = self.output
        if out == "landmarks":
            return _take(target, self.permutation, axis=-2)
        if out in ("segmentation", "classification"):
            lut = np.arange(max(256, self.num_queries), dtype=np.int64)
            lut[: self.num_queries] = self.permutation
            return _lookup(target, lut)
        if out in ("multilabel", "regression"):
            self._check_width(target)
            target = _take(target, self.permutation, axis=-1)
            if self.negated:
                target = _negate(target, self.negated)
            return target
        return target

    def mirror(self, target: Any, width: int | None = None) -> Any:
        """The label of the mirrored image: the geometry (points ``x -> width - 1 - x``, label-map columns
        reversed) and then :meth:`relabel`. ``width`` is needed for point targets."""
        if self.output == "landmarks":
            if width is None:
                raise ValueError("mirroring point targets needs the image width")
            target = _mirror_x(target, width)
        elif self.output == "segmentation":
            target = target.flip(-1) if isinstance(target, torch.Tensor) else np.ascontiguousarray(target[..., ::-1])
        return self.relabel(target)

    def _check_width(self, target: Any) -> None:
        shape = tuple(target.shape)
        if not shape or shape[-1] != self.num_queries:
            raise ValueError(
                f"targets of shape {shape} do not hold the rule's {self.num_queries} values in their last dimension"
            )


def _take(x: Any, perm: Sequence[int] | None, axis: int) -> Any:
    if perm is None:
        return x
    if isinstance(x, torch.Tensor):
        return x.index_select(axis, torch.as_tensor(perm, device=x.device))
    return np.take(np.asarray(x), perm, axis=axis)


def _lookup(x: Any, lut: np.ndarray) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(lut, device=x.device)[x.long()].to(x.dtype)
    arr = np.asarray(x)
    return lut[arr.astype(np.int64)].astype(arr.dtype)


def _negate(x: Any, idx: Sequence[int]) -> Any:
    if isinstance(x, torch.Tensor):
        sign = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
    else:
        x = np.asarray(x)
        sign = np.ones(x.shape[-1], x.dtype)
    sign[list(idx)] = -1
    return x * sign


def _mirror_x(points: Any, width: int) -> Any:
    out = points.clone() if isinstance(points, torch.Tensor) else np.array(points, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out
