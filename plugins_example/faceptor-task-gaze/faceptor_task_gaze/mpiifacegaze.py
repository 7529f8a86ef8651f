"""Reader of the MPIIFaceGaze release layout: ``pXX/pXX.txt`` annotation lines and ``pXX/dayYY/NNNN.jpg``.

Each annotation line has 28 fields: image path, gaze point on screen (2), six facial landmarks (12: four
eye corners, two mouth corners, in image pixels), head rotation (3) and translation (3), the face centre
``fc`` (3) and the 3-D gaze target ``gt`` (3) in camera coordinates, and the evaluated eye. The gaze
direction is ``gt - fc``, converted to (pitch, yaw). The face box is centred on the landmarks.

Splits: ``train`` / ``test`` hold out one person (``p14`` by default); ``train:p03`` / ``test:p03`` hold out
another (leave-one-person-out folds); ``p03`` is that person alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from faceptor_tasks.kit import Collector, DatasetFormatError, FaceDataset, Sample, read_lines

from .angles import vector_to_angles

FIELDS = 28
DEFAULT_TEST_PERSON = "p14"
BOX_SCALE = 2.4  # face box side / landmark extent


def _people(root: Path) -> list[str]:
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"p\d\d", p.name))
    if not people:
        raise DatasetFormatError(root, 0, "no person folders (p00, p01, ...) found")
    return people


def _select(root: Path, split: str) -> list[str]:
    people = _people(root)
    if re.fullmatch(r"p\d\d", split):
        chosen = [split]
    else:
        kind, _, held_out = split.partition(":")
        held_out = held_out or DEFAULT_TEST_PERSON
        if kind not in ("train", "test"):
            raise DatasetFormatError(
                root, 0, f"unknown split {split!r}; expected train, test, train:pXX, test:pXX or pXX"
            )
        chosen = [held_out] if kind == "test" else [p for p in people if p != held_out]
    missing = [p for p in chosen if p not in people]
    if missing:
        raise DatasetFormatError(root, 0, f"split {split!r} needs person folder(s) {missing}, not found")
    return chosen


def parse_line(line: str) -> tuple[str, np.ndarray, np.ndarray]:
    """One annotation line -> (relative image path, 6 x 2 landmarks, (pitch, yaw))."""
    parts = line.split()
    if len(parts) != FIELDS:
        raise ValueError(f"expected {FIELDS} fields, got {len(parts)}")
    values = np.asarray(parts[1:27], dtype=np.float64)
    landmarks = values[2:14].reshape(6, 2)
    fc, gt = values[20:23], values[23:26]
    direction = gt - fc
    if not np.isfinite(direction).all() or np.linalg.norm(direction) < 1e-9:
        raise ValueError("gaze target equals the face centre")
    return parts[0], landmarks.astype(np.float32), vector_to_angles(direction)


def face_box(landmarks: np.ndarray, scale: float = BOX_SCALE) -> tuple[float, float, float, float]:
    centre = landmarks.mean(axis=0)
    half = 0.5 * scale * float(np.ptp(landmarks, axis=0).max())
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def read_mpiifacegaze(root: str | os.PathLike, split: str, skip_invalid: bool = False) -> FaceDataset:
    """Items: ``{"image", "target": float32 (pitch, yaw) radians, "box", "landmarks6"}``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(root, 0, "MPIIFaceGaze root folder not found")
    col = Collector(skip_invalid)
    for person in _select(root, split):
        ann = root / person / f"{person}.txt"
        for number, line in enumerate(read_lines(ann), start=1):
            if not line.strip():
                continue
            with col.entry(ann, number):
                rel, landmarks, angles = parse_line(line)
                col.add(
                    Sample(
                        image=str(root / person / rel),
                        target=angles,
                        source=(str(ann), number),
                        box=face_box(landmarks),
                        extra={"landmarks6": landmarks},
                    )
                )
    return FaceDataset.from_collector(col, name=f"mpiifacegaze/{split}")
