"""SynthFaces must not change under anyone's feet: a golden copy of four samples (images and every label).

Labels must match exactly; images to within codec drift (JPEG and resampling in a newer Pillow/OpenCV can
move a pixel by a level or two, a changed generator moves far more). To regenerate after an intended change
of the generator, say so in the commit and rewrite ``tests/data/synthfaces_golden.npz`` with the same indices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceptor_tasks.synthfaces.dataset import SynthFacesDataset

GOLDEN = Path(__file__).parent / "data" / "synthfaces_golden.npz"
SAMPLES = [("train", 0), ("train", 7), ("train", 12345), ("test", 3)]


@pytest.mark.parametrize("k", range(len(SAMPLES)))
def test_synthfaces_samples_match_the_golden_copy(k: int) -> None:
    golden = np.load(GOLDEN)
    split, index = SAMPLES[k]
    s = SynthFacesDataset(split, target="all")[index]
    t = s["target"]
    image = s["image"].astype(np.int16)
    diff = np.abs(image - golden[f"image{k}"].astype(np.int16))
    assert diff.mean() < 0.05 and diff.max() <= 8, f"image {split}[{index}] changed (mean |diff| {diff.mean():.3f})"
    np.testing.assert_array_equal(np.asarray(t["parsing"]), golden[f"parsing{k}"])
    np.testing.assert_allclose(np.asarray(t["landmarks"]), golden[f"landmarks{k}"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(t["visible"]), golden[f"visible{k}"])
    np.testing.assert_array_equal(np.asarray(t["attributes"]), golden[f"attributes{k}"])
    np.testing.assert_allclose(np.asarray(t["gaze"]), golden[f"gaze{k}"], rtol=0, atol=1e-9)
    np.testing.assert_allclose([t["age"], t["expression"], t["identity"]], golden[f"scalars{k}"], rtol=0, atol=1e-9)
    p = t["pose"]
    np.testing.assert_allclose([p["roll"], p["scale"], *p["shift"], p["yaw_squash"]], golden[f"pose{k}"], atol=1e-9)
