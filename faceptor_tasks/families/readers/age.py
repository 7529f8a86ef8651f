"""Readers of age datasets: MORPH II ("path age" lists) and UTKFace (file names or prepared CSVs).

Raw items: ``{"image", "target": float age in years}``.
"""

from __future__ import annotations

import csv
import os
import zlib
from pathlib import Path

from ..common import Collector, DatasetFormatError, FaceDataset, Sample, first_existing, read_lines


def read_age_list(col: Collector, list_path: Path, image_dir: str) -> None:
    """Lines ``relative/path.jpg age`` (whitespace separated)."""
    for lineno, line in enumerate(read_lines(list_path), start=1):
        fields = line.split()
        if not fields:
            continue
        with col.entry(list_path, lineno):
            if len(fields) != 2:
                raise ValueError(f"expected 'path age', got {line.strip()!r}")
            col.add(Sample(os.path.join(image_dir, fields[0]), _age(fields[1]), (str(list_path), lineno)))


def _age(text: str) -> float:
    age = float(text)
    if not 0 <= age < 150:
        raise ValueError(f"age {age} out of range")
    return age


def read_morph2(root: str, split: str, skip_invalid: bool = False, protocol: str = "RANDOM_80_20") -> FaceDataset:
    """MORPH II as the reference prepares it: ``label/<protocol>/<split>.txt`` ("path age" lines) with images
    under ``data/``; a plain ``<split>.txt`` in ``root`` is read the same way. Splits: the list files present
    (``train``, ``test`` for the default protocol)."""
    lst = first_existing(os.path.join(root, "label", protocol, f"{split}.txt"), os.path.join(root, f"{split}.txt"))
    if lst is None:
        raise DatasetFormatError(root, 0, f"no label/{protocol}/{split}.txt (or {split}.txt)")
    col = Collector(skip_invalid)
    image_dir = os.path.join(root, "data") if os.path.isdir(os.path.join(root, "data")) else root
    read_age_list(col, lst, image_dir)
    return FaceDataset.from_collector(col, name=f"morph2/{split}")


def utkface_split_of(name: str) -> str:
    """Deterministic 80/20 split of the original release (which ships none): CRC-32 of the file name."""
    return "test" if zlib.crc32(name.encode()) % 5 == 0 else "train"


def read_utkface(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """UTKFace. Prepared (reference): ``label/<split>.csv`` with a header and the file name and age in columns
    ``filename``/``age`` (else columns 1 and 2), images in ``data/``. Original: a folder (``root``,
    ``root/UTKFace`` or ``root/crop_part1``) of ``age_gender_race_date.jpg[.chip.jpg]`` files; its splits are
    ``all`` and a deterministic 80/20 ``train``/``test`` (:func:`utkface_split_of`)."""
    col = Collector(skip_invalid)
    prepared = first_existing(os.path.join(root, "label", f"{split}.csv"))
    if prepared is not None:
        _read_utk_csv(col, prepared, os.path.join(root, "data"))
        return FaceDataset.from_collector(col, name=f"utkface/{split}")
    if split not in ("all", "train", "test"):
        raise DatasetFormatError(root, 0, f"unknown split {split!r}; expected all, train or test")
    folder = first_existing(os.path.join(root, "UTKFace"), os.path.join(root, "crop_part1"), root)
    assert folder is not None
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".png")))
    if not files:
        raise DatasetFormatError(folder, 0, "no UTKFace images (age_gender_race_date.jpg) found")
    for name in files:
        if split != "all" and utkface_split_of(name) != split:
            continue
        path = os.path.join(folder, name)
        with col.entry(path):
            try:
                age = _age(name.split("_")[0])
            except ValueError:
                raise ValueError(f"file name {name!r} does not start with 'age_'") from None
            col.add(Sample(path, age, (path, 0)))
    return FaceDataset.from_collector(col, name=f"utkface/{split}")


def _read_utk_csv(col: Collector, path: Path, image_dir: str) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DatasetFormatError(path, 1, "empty CSV")
    header = [h.strip().lower() for h in rows[0]]
    name_col = next((header.index(h) for h in ("filename", "file", "image", "image_name") if h in header), 1)
    age_col = header.index("age") if "age" in header else 2
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        with col.entry(path, lineno):
            col.add(Sample(os.path.join(image_dir, row[name_col].strip()), _age(row[age_col]), (str(path), lineno)))
