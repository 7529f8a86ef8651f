"""Photos in, every face out: detection, each task's crop, one batched model pass, results in photo pixels.

``analyze(model, photos)`` finds the faces of every photo (a registered detector, given faces, or the whole
photo as one face), cuts each face as each task's :class:`~faceptor_core.crop.CropSpec` says (the crop its
training data had), runs every crop of every face of every photo through the model at once -- one encoder
pass per input size, tasks sharing a crop sharing its rows -- and maps landmarks and parsing back to the
photo.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..crop import CropSpec, cut
from ..crop_frames import CropFrames
from ..detect import Detections, as_detector, run_detector
from ..registry import TaskRegistry, default_registry
from ..spec import TaskHead
from . import faces as FA
from .inputs import as_photo_list, load_photo
from .results import FaceResult, PhotoParsing, PhotoResult


@dataclass(frozen=True)
class CropGroup:
    """Tasks that share one crop: same input size, same :class:`CropSpec`."""

    size: int
    crop: CropSpec
    tasks: tuple[TaskHead, ...]


def task_crop(head: TaskHead, registry: TaskRegistry | None = None) -> CropSpec:
    """A model task's crop: the one its checkpoint records, else the registered task's, else the default."""
    if head.crop is not None:
        return head.crop
    reg = registry or default_registry()
    try:
        return reg.get_task(head.name).crop
    except (KeyError, ValueError):
        return CropSpec()


def crop_groups(heads: Sequence[TaskHead], registry: TaskRegistry | None = None) -> list[CropGroup]:
    """Group tasks by (input size, crop), in task order."""
    groups: dict[tuple[int, CropSpec], list[TaskHead]] = {}
    for h in heads:
        groups.setdefault((h.input_size, task_crop(h, registry)), []).append(h)
    return [CropGroup(size, crop, tuple(hs)) for (size, crop), hs in groups.items()]


def face_crop_matrix(crop: CropSpec, size: int, face: FA.Face, image_hw: tuple[int, int]) -> np.ndarray:
    """The 2x3 photo -> crop affine of ``face`` for a task with ``crop`` (the function the training
    transforms use, applied to what is known of the face)."""
    if face.source == "whole_image":
        return crop.matrix(size, image_hw=image_hw)
    return crop.matrix(size, points=face.points, box=face.box, image_hw=image_hw)


def crop_faces(image: np.ndarray, faces: Sequence[FA.Face], group: CropGroup) -> tuple[np.ndarray, np.ndarray]:
    """``N x S x S x 3`` uint8 crops and their ``N x 2 x 3`` affines (the crop's tanh warp, if any, follows the
    affine)."""
    s = group.size
    mats = (
        np.stack([face_crop_matrix(group.crop, s, f, image.shape[:2]) for f in faces]) if faces else np.zeros((0, 2, 3))
    )
    crops = np.stack([cut(image, m, group.crop, s) for m in mats]) if faces else np.zeros((0, s, s, 3), np.uint8)
    return crops, mats


# -- the pipeline ---------------------------------------------------------------------------------------
def _detector(detector: Any, registry: TaskRegistry, options: Mapping[str, Any] | None) -> tuple[Any, str]:
    if detector is None:
        return None, "whole_image"
    if isinstance(detector, str):
        return registry.detector(detector, **dict(options or {})), detector
    return as_detector(detector, type(detector).__name__), type(detector).__name__


def _per_photo_faces(faces: Any, n: int) -> list[Any]:
    if faces is None:
        return [None] * n
    single = n == 1 and isinstance(faces, Sequence) and (len(faces) == 0 or FA.looks_like_face(faces[0]))
    if single or isinstance(faces, Detections):
        faces = [faces]
    if not isinstance(faces, Sequence) or len(faces) != n:
        raise ValueError(
            f"faces must hold one entry (a list of faces, or None to detect) per photo: "
            f"{n} photo(s), got {len(faces) if isinstance(faces, Sequence) else type(faces).__name__}"
        )
    return list(faces)


@torch.no_grad()
def analyze(
    model: Any,
    photos: Any,
    tasks: str | Sequence[str] | None = None,
    detector: Any = "yunet",
    faces: Any = None,
    *,
    min_face: float = 32.0,
    detector_options: Mapping[str, Any] | None = None,
    registry: TaskRegistry | None = None,
) -> list[PhotoResult]:
    """Every face of every photo, with every task's result in photo coordinates.

    Args:
        model: a Faceptor model, or a checkpoint directory to load.
        photos: one photo or a list: file paths, PIL images, ``H x W x 3`` arrays, ``3 x H x W`` tensors
            (docs/predictions.md lists the accepted forms); any sizes.
        tasks: task names (default: all the model's tasks).
        detector: a registered detector's name (default ``"yunet"``), an object with ``detect(image)``, or
            None: each photo is then one face, already cropped (as the training images of a task were).
        faces: faces to use instead of detecting, one entry per photo: a list of faces (each
            ``{"box": [x1, y1, x2, y2], "points": [[x, y] x 5]}`` with one or both, a box, or five points) or
            None to detect in that photo. For a single photo, its list of faces.
        min_face: faces whose box is smaller (shorter side, pixels) are flagged ``small`` (never dropped).
        detector_options: options of the detector's factory (e.g. ``{"score_threshold": 0.8}``).

    Returns one :class:`PhotoResult` per photo, in order; a photo without faces has an empty ``faces`` list.
    All crops of one input size go through the model together: one encoder pass per input size in all.
    """
    if isinstance(model, (str, os.PathLike)):
        from ..build import load

        model = load(model, registry=registry)
    reg = registry or default_registry()
    heads = model.select(tasks)
    photo_list = as_photo_list(photos)
    given = _per_photo_faces(faces, len(photo_list))
    det, det_name = (None, "given") if all(g is not None for g in given) else _detector(detector, reg, detector_options)

    images, names, all_faces, detect_s, sources = [], [], [], [], []
    for i, photo in enumerate(photo_list):
        image, name = load_photo(photo, i)
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        if given[i] is not None:
            found, source = FA.parse_faces(given[i], name), "given"
        elif det is None:
            found, source = [FA.whole_image_face(h, w)], "whole_image"
        else:
            found, source = FA.from_detections(run_detector(det, image, det_name)), det_name
        detect_s.append(time.perf_counter() - t0)
        sources.append(source)
        images.append(image)
        names.append(name)
        all_faces.append([f if f.source == "whole_image" else FA.flag(f, h, w, min_face) for f in found])

    owners = [(p, j) for p, fs in enumerate(all_faces) for j in range(len(fs))]
    groups = crop_groups(heads, reg)
    t0 = time.perf_counter()
    crops_by_size: dict[int, list[torch.Tensor]] = {}
    rows: dict[str, slice] = {}
    mats: dict[int, np.ndarray] = {}  # group index -> (faces x 2 x 3)
    for gi, g in enumerate(groups):
        parts = [crop_faces(images[p], all_faces[p], g) for p in range(len(images))]
        crops = np.concatenate([c for c, _ in parts]) if parts else np.zeros((0, g.size, g.size, 3), np.uint8)
        mats[gi] = np.concatenate([m for _, m in parts]) if parts else np.zeros((0, 2, 3))
        start = sum(len(x) for x in crops_by_size.get(g.size, []))
        crops_by_size.setdefault(g.size, []).append(torch.from_numpy(crops).permute(0, 3, 1, 2))
        for h in g.tasks:
            rows[h.name] = slice(start, start + len(crops))
    align_s = time.perf_counter() - t0

    results = [
        PhotoResult(
            names[p],
            images[p].shape[0],
            images[p].shape[1],
            [FaceResult(j, f) for j, f in enumerate(all_faces[p])],
            faces_from=sources[p],
            tasks=tuple(h.name for h in heads),
        )
        for p in range(len(images))
    ]
    model_s = map_s = 0.0
    if owners:
        device = next(model.parameters()).device
        batches = {s: torch.cat(parts).to(device) for s, parts in crops_by_size.items()}
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            raw = model.forward_multitask(batches, rows)
        finally:
            model.train(was_training)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        model_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for gi, g in enumerate(groups):
            for head in g.tasks:
                _map_task(model, head, g, raw[head.name], mats[gi], owners, results)
        map_s = time.perf_counter() - t0
    for p, r in enumerate(results):
        r.timings = {
            "detect": detect_s[p],
            "align": align_s,
            "model": model_s,
            "map": map_s,
            "photos_in_call": float(len(results)),
        }
    return results


def _map_task(
    model: Any,
    head: TaskHead,
    group: CropGroup,
    raw: torch.Tensor,
    mats: np.ndarray,
    owners: list[tuple[int, int]],
    results: list[PhotoResult],
) -> None:
    """Decode one task's rows and put each face's result, in photo coordinates, into ``results`` (results with a
    per-pixel confidence, parsing, also go into the photo-wide map: the face with the higher logit wins)."""
    s = group.size
    pred = model.decode(head.name, raw, (s, s))
    own = head.name not in model.output_decoders and head.output == "segmentation" and raw.ndim == 4
    frames = CropFrames(
        mats,
        group.crop,
        s,
        [(results[p].height, results[p].width) for p, _ in owners],
        head.label_names,
        raw if own else None,
    )
    maps: dict[int, PhotoParsing] = {}
    best: dict[int, np.ndarray] = {}
    for k, ((p, j), result) in enumerate(zip(owners, pred.face_results(frames), strict=True)):
        r = results[p]
        r.faces[j].crops[head.name] = mats[k]
        r.faces[j].tasks[head.name] = result
        conf = getattr(result, "confidence", None)
        if conf is None:
            continue
        if p not in maps:
            maps[p] = PhotoParsing(
                np.zeros((r.height, r.width), np.uint8), np.full((r.height, r.width), -1, np.int16), result.label_names
            )
            best[p] = np.full((r.height, r.width), -np.inf, np.float32)
        x0, y0, x1, y1 = result.region
        labels = result.labels
        win = (labels > 0) & (conf > best[p][y0:y1, x0:x1])
        maps[p].labels[y0:y1, x0:x1][win] = labels[win]
        maps[p].faces[y0:y1, x0:x1][win] = j
        best[p][y0:y1, x0:x1][win] = conf[win]
    for p, pm in maps.items():
        results[p].parsing[head.name] = pm
