"""The contract kit's flip check: a task's horizontal flips change its labels as its :class:`FlipRule` says.

- the rule fits the task (labels it names exist, its permutation is an involution of the queries);
- flipping twice is the identity on the task's real (transformed) targets;
- the training transform applies the rule: every training item whose ``meta["affine"]`` mirrors the image carries
  the rule's labels (image-level targets: the rule applied to the unflipped target; points and label maps: the
  raw labels through the recorded affine, then the rule), and a transform that mirrors images without a declared
  rule is refused;
- mirror-symmetric faces keep symmetric labels: mirroring the faces' own labels with the rule must land on them.
  Points: when the mean face of a few evaluation crops is clearly mirror-symmetric (each mirrored point within
  3.5% of the face size of a point, mostly mutual pairs), the rule's point order must put the mirrored points on
  their partners (a missing or wrong left/right pairing is caught; faces that are not symmetric enough to tell,
  such as random test points, are not judged). Label maps: two classes the rule swaps must land on each other more
  than on themselves, and two classes it keeps must not land mostly on each other. Image-level values carry no
  geometry: for them the kit checks that the transform applies the declared rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import torch

from .flip import LabelFlip
from .geometry import apply_affine, warp_image
from .spec import TaskSpec
from .warp import crop_maps, remap

#: Training transforms run per raw item to see both flipped and unflipped items.
SEEDS = 16
ITEMS = 4
#: Faces whose labels are mirrored for the symmetry check, and the largest crop it uses.
SYMMETRY_ITEMS = 8
SYMMETRY_MAX_SIZE = 128


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _mirrored(out: Mapping[str, Any]) -> bool | None:
    affine = (out.get("meta") or {}).get("affine") if isinstance(out, Mapping) else None
    if affine is None:
        return None
    a = np.asarray(_np(affine), np.float64)
    return bool(np.linalg.det(a[:2, :2]) < 0)


def _train_outputs(spec: TaskSpec, items: list[dict], size: int) -> list[tuple[dict, dict]]:
    transform = spec.transforms("train", size)
    outs = []
    with torch.random.fork_rng(devices=[]):
        for seed in range(SEEDS):
            torch.manual_seed(seed)
            item = items[seed % len(items)]
            outs.append((item, transform(dict(item))))
    return outs


def _expected(
    spec: TaskSpec, flip: LabelFlip, item: dict, out: dict, flipped: bool, eval_target: Any, size: int
) -> np.ndarray:
    """The target a training item must carry, from the raw item and the affine the transform recorded."""
    affine = np.asarray(_np(out["meta"]["affine"]), np.float64)
    if spec.output == "landmarks":
        target = apply_affine(np.asarray(item["target"], np.float64), affine)
    elif spec.output == "segmentation":
        label = np.asarray(item["target"], np.uint8)
        target = (
            remap(label, crop_maps(affine, spec.crop.warp_factor, size), cv2.INTER_NEAREST)
            if spec.crop.warp_factor > 0
            else warp_image(label, affine, size, cv2.INTER_NEAREST)
        )
    else:
        target = _np(eval_target)
    return _np(flip.relabel(target)) if flipped else np.asarray(target)


def _agreement(spec: TaskSpec, flip: LabelFlip, got: np.ndarray, want: np.ndarray) -> tuple[bool, str]:
    if spec.output == "segmentation":
        moved = [c for c, p in enumerate(flip.permutation or ()) if c != p]
        mask = np.isin(want, moved) if moved else np.ones(want.shape, bool)
        if mask.sum() < 8:
            return True, ""
        share = float((got[mask] == want[mask]).mean())
        return share >= 0.5, f"{share:.0%} of the pixels of the classes the rule swaps carry the rule's class"
    if got.shape != want.shape:
        return False, f"target shape {got.shape}, expected {want.shape}"
    ok = np.allclose(got.astype(np.float64), want.astype(np.float64), atol=1e-2 if spec.output == "landmarks" else 1e-5)
    shown = [np.round(v.reshape(-1)[:6].astype(np.float64), 4).tolist() for v in (got, want)]
    return ok, f"target {shown[0]}, the rule gives {shown[1]}"


def _symmetry(spec: TaskSpec, flip: LabelFlip, targets: list[np.ndarray], size: int) -> str | None:
    """For points / label maps: the rule's mirror of a face's labels must match them far better than a mirror that
    does not reorder (returns the failure, or None)."""
    plain = LabelFlip(spec.output, None, (), spec.num_queries)
    # Skipped when the faces are not mirror-symmetric enough to tell (each mirrored point far from every point).
    if spec.output == "landmarks":
        mean = np.nanmean(np.stack([t.astype(np.float64) for t in targets]), axis=0)  # the mean face, N x 2
        spread = float(np.nanmax(np.ptp(mean, axis=0))) or 1.0
        mirrored = _np(plain.mirror(mean, size))
        dist = np.linalg.norm(mirrored[:, None, :] - mean[None, :, :], axis=-1)
        if np.isnan(dist).any():
            return None
        nearest = dist.argmin(axis=1)
        mutual = float(np.mean(nearest[nearest] == np.arange(len(nearest))))  # a clean left/right pairing
        err_best = float(dist.min(axis=1).mean()) / spread  # each mirrored point to its nearest point
        err_rule = float(np.linalg.norm(_np(flip.mirror(mean, size)) - mean, axis=-1).mean()) / spread
        if mutual >= 0.7 and err_best < 0.035 and err_rule > 2 * err_best + 0.05:
            return (
                f"the mirrored mean face lands within {err_best:.0%} of the face size on its own points, but the "
                f"rule's point order puts them {err_rule:.0%} away: the rule's point pairing looks wrong"
            )
        return None
    if spec.output == "segmentation":
        labels = np.stack([t.astype(np.int64) for t in targets])
        k = spec.num_queries
        mirrored = _np(plain.mirror(labels))
        valid = (labels < k) & (mirrored < k)
        # confusion[c, d]: pixels of class c in the mirrored maps that lie on class d in the faces' own maps. For two
        # classes, swap evidence (c lands on d and d on c) against keep evidence (each lands on itself).
        confusion = np.bincount(mirrored[valid] * k + labels[valid], minlength=k * k).reshape(k, k)
        perm = flip.permutation or tuple(range(k))
        names = spec.label_names or tuple(map(str, range(k)))
        for c in range(k):
            for d in range(c + 1, k):
                swap, keep = int(confusion[c, d] + confusion[d, c]), int(confusion[c, c] + confusion[d, d])
                pair = f"{names[c]!r} and {names[d]!r}"
                if perm[c] == d and swap + keep >= 16 and swap < keep:
                    return (
                        f"the rule swaps {pair}, but mirrored faces put them on themselves ({keep} pixels) more "
                        f"than on each other ({swap}): the rule's class swap looks wrong"
                    )
                if perm[c] == c and perm[d] == d and swap >= 16 and swap > 2 * keep:
                    return (
                        f"the rule keeps {pair}, but mirrored faces put each on the other ({swap} pixels, against "
                        f"{keep} on themselves): the rule should swap them"
                    )
    return None


def check_flip(spec: TaskSpec, root: str | None, size: int, fail: Callable[[str], None]) -> None:
    """The flip contract of ``spec`` (see the module docstring); ``fail(message)`` raises."""
    try:
        flip = spec.label_flip
    except ValueError as exc:
        fail(f"the flip rule does not fit the task: {exc}")
        return
    ds = spec.dataset(root, "train", transform=None)
    items = [dict(ds[i]) for i in range(min(ITEMS, len(ds)))]
    eval_t = spec.transforms("test", size)
    eval_targets = [eval_t(dict(item))["target"] for item in items]
    outs = _train_outputs(spec, items, size)
    mirrored = [_mirrored(out) for _, out in outs]
    if flip is None:
        if any(mirrored):
            fail(
                "the training transform mirrors images (meta['affine'] has a negative determinant) but the task "
                "declares no flip rule: set TaskSpec.flip to how its labels change (FlipRule() when they do not)"
            )
        return
    for t in eval_targets:
        try:
            twice = _np(flip.mirror(flip.mirror(t, size), size))
        except (ValueError, IndexError, RuntimeError) as exc:
            fail(
                f"the rule ({spec.flip.describe()}) cannot be applied to the task's targets of shape "
                f"{tuple(np.shape(_np(t)))}: {exc}"
            )
            return
        if twice.shape != _np(t).shape or not np.allclose(
            twice.astype(np.float64), _np(t).astype(np.float64), atol=1e-4, equal_nan=True
        ):
            fail(f"flipping a target twice does not give it back ({spec.flip.describe()})")
    if flip.changes_labels and any(m is None for m in mirrored):
        fail("training items must record meta['affine'] (crop and flip) so that flipped items can be told apart")
    by_item = {id(item): eval_targets[i] for i, item in enumerate(items)}
    for item, out in outs:
        flipped = _mirrored(out)
        if flipped is None:
            continue
        want = _expected(spec, flip, item, out, flipped, by_item[id(item)], size)
        ok, detail = _agreement(spec, flip, _np(out["target"]), want)
        if not ok:
            how = "a mirrored" if flipped else "an unmirrored"
            fail(f"{how} training item does not carry the flip rule's labels ({spec.flip.describe()}): {detail}")
    if spec.output in ("landmarks", "segmentation"):
        sym = min(spec.input_size, SYMMETRY_MAX_SIZE)
        sym_t = spec.transforms("test", sym)
        faces = [_np(sym_t(dict(ds[i]))["target"]) for i in range(min(SYMMETRY_ITEMS, len(ds)))]
        problem = _symmetry(spec, flip, faces, sym)
        if problem:
            fail(problem)
