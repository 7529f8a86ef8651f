"""Readers of face-parsing datasets: CelebAMask-HQ (part masks) and LaPa.

Raw items: ``{"image": H x W x 3, "target": H x W uint8 label map}`` of the same size; LaPa items also
carry ``"align_points"`` (5 x 2: eye centres, nose tip, mouth corners) used to align the crop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..common import (
    Collector,
    DatasetFormatError,
    FaceDataset,
    LazyTarget,
    Sample,
    check_split,
    first_existing,
    load_label_map,
    read_lines,
)

#: CelebAMask-HQ part-mask suffixes in painting order; class ``i + 1`` is ``CELEBAMASK_PARTS[i]``.
CELEBAMASK_PARTS = (
    "neck",
    "skin",
    "cloth",
    "l_ear",
    "r_ear",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "nose",
    "mouth",
    "l_lip",
    "u_lip",
    "hair",
    "eye_g",
    "hat",
    "ear_r",
    "neck_l",
)
#: The 19 class names (background first), as the reference names them.
CELEBAMASK_LABELS = (
    "background",
    "neck",
    "face",
    "cloth",
    "rr",
    "lr",
    "rb",
    "lb",
    "re",
    "le",
    "nose",
    "imouth",
    "llip",
    "ulip",
    "hair",
    "glass",
    "hat",
    "earr",
    "neckl",
)
LAPA_LABELS = ("background", "face_lr_rr", "lb", "rb", "le", "re", "nose", "ul", "im", "ll", "hair")
#: Class permutations under a horizontal flip (left/right ears, brows, eyes swap), for ``label_flip``.
CELEBAMASK_FLIP = (0, 1, 2, 3, 5, 4, 7, 6, 9, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18)
LAPA_FLIP = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)
#: LaPa 106-point indices of the eye centres, nose tip and mouth corners (the reference's alignment).
LAPA_ALIGN_POINTS = (104, 105, 54, 84, 90)


class ParsingDataset(FaceDataset):
    """Parsing items; an image whose size differs from its label map is resized to it (area)."""

    def raw(self, index: int) -> dict[str, Any]:
        item = super().raw(index)
        lh, lw = item["target"].shape
        if item["image"].shape[:2] != (lh, lw):
            item["image"] = cv2.resize(item["image"], (lw, lh), interpolation=cv2.INTER_AREA)
        return item


class PartMasks(LazyTarget):
    """A label map painted from binary part masks, later parts over earlier ones."""

    def __init__(self, parts: Sequence[tuple[int, str]]):
        self.parts = tuple(parts)

    def load(self) -> np.ndarray:
        label: np.ndarray | None = None
        for value, path in self.parts:
            mask = load_label_map(path)
            if label is None:
                label = np.zeros(mask.shape, np.uint8)
            elif mask.shape != label.shape:
                raise DatasetFormatError(path, 0, f"mask is {mask.shape}, earlier parts are {label.shape}")
            label[mask > 0] = value
        assert label is not None
        return label


class LabelFile(LazyTarget):
    """A label map stored as one PNG (values checked against ``num_classes`` when given)."""

    def __init__(self, path: str, num_classes: int | None = None):
        self.path, self.num_classes = path, num_classes

    def load(self) -> np.ndarray:
        return load_label_map(self.path, self.num_classes)


CELEBA_GROUPS = {"train": (0,), "val": (1,), "test": (2,), "train_val": (0, 1), "trainval": (0, 1)}


def read_celebamask_hq(root: str, split: str, skip_invalid: bool = False) -> ParsingDataset:
    """CelebAMask-HQ: ``CelebA-HQ-img/<id>.jpg``, ``CelebAMask-HQ-mask-anno/<id // 2000>/<%05d id>_<part>.png``
    painted in :data:`CELEBAMASK_PARTS` order into 19 classes; split from CelebA's ``list_eval_partition.txt``
    through ``CelebA-HQ-to-CelebA-mapping.txt``. Splits: ``train``, ``val``, ``test``, ``train_val``.
    The 1024-px images are resized to the 512-px masks (as the reference).
    """
    check_split(split, tuple(CELEBA_GROUPS), root)
    mapping = first_existing(os.path.join(root, "CelebA-HQ-to-CelebA-mapping.txt"))
    partition = first_existing(
        os.path.join(root, "list_eval_partition.txt"), os.path.join(root, "Eval", "list_eval_partition.txt")
    )
    if mapping is None or partition is None:
        raise DatasetFormatError(root, 0, "needs CelebA-HQ-to-CelebA-mapping.txt and list_eval_partition.txt")
    col = Collector(skip_invalid)
    orig_to_hq: dict[str, tuple[int, int]] = {}
    for lineno, line in enumerate(read_lines(mapping), start=1):
        fields = line.split()
        if not fields or (lineno == 1 and not fields[0].isdigit()):
            continue
        with col.entry(mapping, lineno):
            if len(fields) != 3:
                raise ValueError(f"expected 'idx orig_idx orig_file', got {line.strip()!r}")
            orig_to_hq[fields[2]] = (int(fields[0]), lineno)
    mask_dir = Path(root, "CelebAMask-HQ-mask-anno")
    if not mask_dir.is_dir():
        raise DatasetFormatError(mask_dir, 0, "part-mask folder not found")
    existing = {f for d in mask_dir.iterdir() if d.is_dir() for f in os.listdir(d)}
    groups = CELEBA_GROUPS[split]
    part_group: dict[str, tuple[int, int]] = {}
    for lineno, line in enumerate(read_lines(partition), start=1):
        fields = line.split()
        if not fields:
            continue
        with col.entry(partition, lineno):
            if len(fields) != 2:
                raise ValueError(f"expected 'image group', got {line.strip()!r}")
            group = int(fields[1])
            if fields[0] in part_group and part_group[fields[0]][0] != group:
                raise ValueError(
                    f"{fields[0]} is already in group {part_group[fields[0]][0]} (line "
                    f"{part_group[fields[0]][1]}): an image in two splits"
                )
            part_group.setdefault(fields[0], (group, lineno))
            if fields[0] not in orig_to_hq or group not in groups:
                continue
            hq, map_line = orig_to_hq[fields[0]]
            parts = [
                (v + 1, str(mask_dir / str(hq // 2000) / f"{hq:05d}_{p}.png"))
                for v, p in enumerate(CELEBAMASK_PARTS)
                if f"{hq:05d}_{p}.png" in existing
            ]
            if not parts:
                raise DatasetFormatError(mapping, map_line, f"no part masks {mask_dir}/{hq // 2000}/{hq:05d}_*.png")
            image = os.path.join(root, "CelebA-HQ-img", f"{hq}.jpg")
            col.add(Sample(image, PartMasks(parts), (str(mapping), map_line)))
    return ParsingDataset.from_collector(col, name=f"celebamask_hq/{split}")


LAPA_SPLITS = {"train": ("train",), "val": ("val",), "test": ("test",), "train_val": ("train", "val")}


def read_lapa_landmarks(path: str | os.PathLike) -> np.ndarray:
    """A LaPa landmark file: the count (106) then 106 ``x y`` pairs -> 106 x 2."""
    values = " ".join(read_lines(path)).split()
    try:
        n = int(float(values[0]))
        pts = np.asarray([float(v) for v in values[1:]], np.float32)
    except (IndexError, ValueError):
        raise DatasetFormatError(path, 1, "expected a point count then 'x y' pairs") from None
    if pts.size != 2 * n:
        raise DatasetFormatError(path, 1, f"declares {n} points but holds {pts.size} values")
    return pts.reshape(n, 2)


def lapa_align_points(pts: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Eye centres, nose tip and mouth corners (5 x 2) from LaPa's 106 points, or from 68 iBUG points
    (eye centres as the means of 36-41 and 42-47, nose tip 30, mouth corners 48 and 54)."""
    if len(pts) == 106:
        return pts[list(LAPA_ALIGN_POINTS)]
    if len(pts) == 68:
        return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]]).astype(np.float32)
    raise DatasetFormatError(path, 1, f"expected 106 (LaPa) or 68 (iBUG) points, got {len(pts)}")


def read_lapa(root: str, split: str, skip_invalid: bool = False) -> ParsingDataset:
    """LaPa: ``{train,val,test}/{images/<n>.jpg, labels/<n>.png, landmarks/<n>.txt}``, 11 classes.
    Splits: ``train``, ``val``, ``test``, ``train_val``."""
    check_split(split, tuple(LAPA_SPLITS), root)
    col = Collector(skip_invalid)
    for sub in LAPA_SPLITS[split]:
        img_dir = Path(root, sub, "images")
        if not img_dir.is_dir():
            raise DatasetFormatError(img_dir, 0, "LaPa image folder not found")
        for img in sorted(img_dir.iterdir()):
            if img.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            label = Path(root, sub, "labels", img.stem + ".png")
            lm_path = Path(root, sub, "landmarks", img.stem + ".txt")
            with col.entry(lm_path):
                if not label.is_file():
                    raise DatasetFormatError(label, 0, f"label map of {img.name} not found")
                pts = read_lapa_landmarks(lm_path)
                col.add(
                    Sample(
                        str(img),
                        LabelFile(str(label), len(LAPA_LABELS)),
                        (str(lm_path), 0),
                        extra={"align_points": lapa_align_points(pts, lm_path)},
                    )
                )
    return ParsingDataset.from_collector(col, name=f"lapa/{split}")
