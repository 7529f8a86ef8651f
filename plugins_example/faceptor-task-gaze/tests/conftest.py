"""Fixtures: a small MPIIFaceGaze tree in the release layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# This checkout's plugin, not another copy installed in editable mode.
_PLUGIN = str(Path(__file__).resolve().parents[1])
if _PLUGIN not in sys.path:
    sys.path.append(_PLUGIN)


def write_person(root: Path, person: str, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Write ``n`` frames and their annotation lines; returns each line's (face centre, gaze target)."""
    (root / person / "day01").mkdir(parents=True)
    lines, truth = [], []
    for i in range(n):
        name = f"day01/{i:04d}.jpg"
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / person / name, quality=95)
        lm = np.array([[50, 50], [65, 50], [90, 50], [105, 50], [60, 85], [95, 85]], float) + rng.normal(0, 1, (6, 2))
        fc = np.array([rng.normal(0, 20), rng.normal(0, 20), 550.0])
        gt = np.array([rng.normal(0, 150), rng.normal(-100, 80), 0.0])
        fields = [name, "800", "400", *map(str, lm.flatten()), *(["0.1"] * 6), *map(str, fc), *map(str, gt), "left"]
        lines.append(" ".join(fields))
        truth.append((fc, gt))
    (root / person / f"{person}.txt").write_text("\n".join(lines) + "\n")
    return truth


@pytest.fixture
def mpii_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "MPIIFaceGaze"
    for person in ("p00", "p01", "p14"):
        write_person(root, person, 4, rng)
    return root
