"""Readers of expression datasets: RAF-DB, AffectNet and FERPlus, all mapped to one class order.

Shared order (:data:`EXPRESSIONS`): surprise, fear, disgust, happiness, sadness, anger, neutral (RAF-DB's).
Raw items: ``{"image", "target": int in the shared order}`` (AffectNet items also carry the face ``"box"``).
Entries whose label lies outside the seven classes (contempt, none, uncertain, no face, no majority) are
not errors: they are left out and counted in ``dataset.excluded`` by reason.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..common import Collector, DatasetFormatError, FaceDataset, Sample, check_split, first_existing, read_lines

EXPRESSIONS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
#: AffectNet label k (0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger) -> shared index.
AFFECTNET_TO_SHARED = (6, 3, 4, 0, 1, 2, 5)
AFFECTNET_EXCLUDED = {7: "contempt", 8: "none", 9: "uncertain", 10: "no face"}
#: FER+ vote columns, in fer2013new.csv order.
FERPLUS_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
#: FER+ class k (column order above, first seven) -> shared index.
FERPLUS_TO_SHARED = (6, 3, 0, 4, 5, 2, 1)
FERPLUS_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
FERPLUS_SPLITS = {
    "train": ("Training",),
    "val": ("PublicTest",),
    "test": ("PrivateTest",),
    "train_val": ("Training", "PublicTest"),
}


def read_rafdb(root: str, split: str, skip_invalid: bool = False, aligned: bool = True) -> FaceDataset:
    """RAF-DB basic. Original: ``[basic/]EmoLabel/list_patition_label.txt`` ("train_00001.jpg k", k in 1..7)
    with images ``Image/aligned/<stem>_aligned.jpg`` (``aligned=False``: ``Image/original/<name>``).
    Prepared (reference): ``label.txt`` with the same lines and images in ``data/``. Splits: ``train``, ``test``
    (by the name prefix; a name with neither prefix is a malformed line). Label k maps to k - 1."""
    check_split(split, ("train", "test"), root)
    base = (
        root
        if os.path.isdir(os.path.join(root, "EmoLabel")) or not os.path.isdir(os.path.join(root, "basic"))
        else os.path.join(root, "basic")
    )
    original = first_existing(os.path.join(base, "EmoLabel", "list_patition_label.txt"))
    prepared = first_existing(os.path.join(root, "label.txt"), os.path.join(root, "list_patition_label.txt"))
    label_file = original or prepared
    if label_file is None:
        raise DatasetFormatError(root, 0, "no EmoLabel/list_patition_label.txt (or label.txt)")
    col = Collector(skip_invalid)
    for lineno, line in enumerate(read_lines(label_file), start=1):
        fields = line.split()
        if not fields:
            continue
        with col.entry(label_file, lineno):
            if len(fields) != 2:
                raise ValueError(f"expected 'image label', got {line.strip()!r}")
            name, k = fields[0], int(fields[1])
            if not 1 <= k <= 7:
                raise ValueError(f"label {k} not in 1..7")
            if not name.startswith(("train_", "test_")):
                raise ValueError(f"image name {name!r} fits neither split (expected train_* or test_*)")
            if not name.startswith(split + "_"):
                continue
            if original is not None:
                stem = os.path.splitext(name)[0]
                image = (
                    os.path.join(base, "Image", "aligned", f"{stem}_aligned.jpg")
                    if aligned
                    else os.path.join(base, "Image", "original", name)
                )
            else:
                image = os.path.join(root, "data", name)
            col.add(Sample(image, k - 1, (str(label_file), lineno)))
    return FaceDataset.from_collector(col, name=f"rafdb/{split}")


def _read_name_label(
    col: Collector, path: Path, image_dir: str, to_shared: tuple[int, ...], excluded: dict[int, str]
) -> None:
    for lineno, line in enumerate(read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        with col.entry(path, lineno):
            if len(fields) < 2:
                raise ValueError(f"expected 'image label', got {line.strip()!r}")
            k = int(fields[1])
            if k in excluded:
                col.exclude(excluded[k])
                continue
            if not 0 <= k < len(to_shared):
                raise ValueError(f"label {k} out of range")
            col.add(Sample(os.path.join(image_dir, fields[0]), to_shared[k], (str(path), lineno)))


def read_affectnet(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """AffectNet, 7 classes. Original: ``Manually_Annotated_file_lists/{training,validation}.csv`` (columns
    subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, valence,
    arousal) with images under ``Manually_Annotated_Images/``; ``train`` reads training.csv, ``val``/``test``
    validation.csv (the official test set is not public). Prepared (reference): ``label/<split>.txt``
    ("image label") with images in ``data/``. Labels 7..10 are excluded and counted."""
    col = Collector(skip_invalid)
    prepared = first_existing(os.path.join(root, "label", f"{split}.txt"))
    if prepared is not None:
        _read_name_label(col, prepared, os.path.join(root, "data"), AFFECTNET_TO_SHARED, AFFECTNET_EXCLUDED)
        return FaceDataset.from_collector(col, name=f"affectnet/{split}")
    check_split(split, ("train", "val", "test"), root)
    name = "training.csv" if split == "train" else "validation.csv"
    csv_path = first_existing(os.path.join(root, "Manually_Annotated_file_lists", name), os.path.join(root, name))
    if csv_path is None:
        raise DatasetFormatError(root, 0, f"no Manually_Annotated_file_lists/{name} (or label/{split}.txt)")
    image_dir = first_existing(
        os.path.join(root, "Manually_Annotated_Images"),
        os.path.join(root, "Manually_Annotated", "Manually_Annotated_Images"),
    ) or Path(root)
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]] if rows else []
    if "subDirectory_filePath" not in header or "expression" not in header:
        raise DatasetFormatError(csv_path, 1, "header lacks subDirectory_filePath / expression")
    ci = {h: header.index(h) for h in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        with col.entry(csv_path, lineno):
            k = int(row[ci["expression"]])
            if k in AFFECTNET_EXCLUDED:
                col.exclude(AFFECTNET_EXCLUDED[k])
                continue
            if not 0 <= k < 7:
                raise ValueError(f"expression {k} out of range")
            x, y = float(row[ci["face_x"]]), float(row[ci["face_y"]])
            w, h = float(row[ci["face_width"]]), float(row[ci["face_height"]])
            col.add(
                Sample(
                    os.path.join(image_dir, row[ci["subDirectory_filePath"]]),
                    AFFECTNET_TO_SHARED[k],
                    (str(csv_path), lineno),
                    box=(x, y, x + w, y + h),
                )
            )
    return FaceDataset.from_collector(col, name=f"affectnet/{split}")


def ferplus_majority(votes: np.ndarray) -> int | str:
    """FER+ majority vote over the 10 vote columns: the shared class index, or why the row is excluded.

    The winner needs more than half of all votes (FER+'s "majority" mode); contempt, unknown and
    not-a-face winners are excluded."""
    total = votes.sum()
    if total <= 0:
        return "no votes"
    k = int(np.argmax(votes))
    if votes[k] * 2 <= total:
        return "no majority"
    return FERPLUS_TO_SHARED[k] if k < 7 else FERPLUS_COLUMNS[k]


def read_ferplus(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """FERPlus. Original: ``fer2013new.csv`` (Usage, Image name, 10 vote columns) with images in
    ``FER2013{Train,Valid,Test}/``; the label is the majority vote (:func:`ferplus_majority`), rows without
    an image name (removed by FER+) are excluded. Prepared (reference): ``label/<split>.txt`` ("image k", k in
    FER+ order 0..7, 7 = contempt excluded) with images in ``data/``. Splits: ``train``, ``val``, ``test``,
    ``train_val``."""
    check_split(split, tuple(FERPLUS_SPLITS), root)
    col = Collector(skip_invalid)
    parts = ("train", "val") if split == "train_val" else (split,)
    lists = [first_existing(os.path.join(root, "label", f"{p}.txt")) for p in parts]
    if all(lst is not None for lst in lists):
        for lst in lists:
            assert lst is not None
            _read_name_label(col, lst, os.path.join(root, "data"), FERPLUS_TO_SHARED, {7: "contempt"})
        return FaceDataset.from_collector(col, name=f"ferplus/{split}")
    csv_path = first_existing(os.path.join(root, "fer2013new.csv"), os.path.join(root, "FERPlus", "fer2013new.csv"))
    if csv_path is None:
        raise DatasetFormatError(root, 0, f"no fer2013new.csv (or label/{split}.txt)")
    usages = FERPLUS_SPLITS[split]
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    start = 1 if rows and rows[0] and rows[0][0].strip().lower() == "usage" else 0
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if not row:
            continue
        with col.entry(csv_path, lineno):
            if len(row) != 12:
                raise ValueError(f"expected 12 columns (usage, image, 10 votes), got {len(row)}")
            usage, name = row[0].strip(), row[1].strip()
            if usage not in FERPLUS_FOLDERS:
                raise ValueError(f"unknown usage {usage!r}")
            if usage not in usages:
                continue
            if not name:
                col.exclude("no image (removed by FER+)")
                continue
            label = ferplus_majority(np.asarray([int(float(v)) for v in row[2:]]))
            if isinstance(label, str):
                col.exclude(label)
                continue
            image = os.path.join(csv_path.parent, FERPLUS_FOLDERS[usage], name)
            col.add(Sample(image, label, (str(csv_path), lineno)))
    return FaceDataset.from_collector(col, name=f"ferplus/{split}")
