"""SynthFaces exported in real layouts reads back through the real readers with the same labels."""

from __future__ import annotations

import numpy as np
import pytest

from faceptor_core.cli import main
from faceptor_tasks.families.readers.age import read_utkface
from faceptor_tasks.families.readers.attributes import read_celeba_attributes
from faceptor_tasks.families.readers.expression import read_rafdb
from faceptor_tasks.families.readers.landmarks import read_300w
from faceptor_tasks.families.readers.parsing import read_lapa
from faceptor_tasks.synthfaces.dataset import split_generator
from faceptor_tasks.synthfaces.export import split_counts
from faceptor_tasks.synthfaces.labels import CELEBA_ATTRIBUTES, SYNTH_ATTRIBUTES

COUNT, SIZE = 8, 96


def expected(split: str):
    gen, offset = split_generator(split, SIZE, 0)
    return [gen.sample(offset + i) for i in range(split_counts(COUNT)[split])]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("300w", "lapa", "celeba", "utkface", "rafdb"):
        assert (
            main(["synth", "export", "--format", fmt, str(root / fmt), "--count", str(COUNT), "--size", str(SIZE)]) == 0
        )
    return root


def test_300w_round_trip(exported):
    ds = read_300w(str(exported / "300w"), "train", offset=-1.0)  # 1-based values, as the HRNet CSVs
    truth = expected("train")
    assert len(ds) == len(truth)
    for i, s in enumerate(truth):
        np.testing.assert_allclose(ds[i]["target"], s.landmarks, atol=1e-3)
    reference = read_300w(str(exported / "300w"), "train")  # the reference's convention: 2.0 subtracted
    np.testing.assert_allclose(reference[0]["target"], truth[0].landmarks - 1.0, atol=1e-3)


def test_lapa_round_trip(exported):
    ds = read_lapa(str(exported / "lapa"), "test")
    truth = expected("test")
    assert len(ds) == len(truth)
    for i, s in enumerate(truth):
        np.testing.assert_array_equal(ds[i]["target"], s.parsing)
        eyes = ds[i]["align_points"][:2]
        np.testing.assert_allclose(eyes[0], s.landmarks[36:42].mean(0), atol=1e-3)


def test_celeba_round_trip(exported):
    ds = read_celeba_attributes(str(exported / "celeba"), "train")
    truth = expected("train")
    cols = [CELEBA_ATTRIBUTES.index(a) for a in SYNTH_ATTRIBUTES]
    for i, s in enumerate(truth):
        np.testing.assert_array_equal(np.asarray(ds[i]["target"])[cols], s.attributes)


def test_utkface_and_rafdb_round_trip(exported):
    readers = [read_utkface(str(exported / "utkface"), split) for split in ("train", "test")]
    ages = sorted(float(ds[i]["target"]) for ds in readers for i in range(len(ds)))
    truth = sorted(float(round(s.age)) for split in ("train", "test") for s in expected(split))
    assert ages == truth
    ds = read_rafdb(str(exported / "rafdb"), "train")
    assert [int(ds[i]["target"]) for i in range(len(ds))] == [s.expression for s in expected("train")]


def test_preview_command(tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["synth", "preview", str(out), "--count", "4"]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.width > 112 and im.height >= 112
