"""Write a SynthFaces sample in a real dataset's layout, so the real readers can be run end to end on it.

``export_dataset(fmt, out, count, seed, size)`` writes ``count`` faces (three quarters from the train
split, the rest from the test split, whose people are unseen) and returns the dataset root. Formats:

- ``300w``: HRNet CSVs ``face_landmarks_300w_{train,valid,test}.csv`` (``valid`` = ``test``), images in
  ``images/``. Points and centres are written 1-based, as the HRNet CSVs hold them (the 300W reader
  subtracts 2.0 by default, as the reference does; ``read_300w(..., offset=-1.0)`` recovers them exactly).
- ``lapa``: ``{train,test}/{images,labels,landmarks}/NAME.{jpg,png,txt}``; labels are 11-class uint8 PNGs;
  landmark files hold SynthFaces' 68 points (``68`` then ``x y`` lines, 0-based), not LaPa's 106.
- ``celeba``: ``img_align_celeba/``, ``list_attr_celeba.txt`` (40 attributes; the ones SynthFaces does not
  draw are written -1 and listed nowhere else), ``faceptor_modelled_attributes.txt`` (the drawn ones),
  ``list_eval_partition.txt`` (0 train, 2 test).
- ``utkface``: ``UTKFace/{age}_{gender}_{race}_{date}.jpg.chip.jpg`` (gender 0 male 1 female; race is not
  modelled and always 4, "others").
- ``rafdb``: ``basic/Image/aligned/{train,test}_NNNNN_aligned.jpg`` and
  ``basic/EmoLabel/list_patition_label.txt`` (``train_00001.jpg k``, k = expression index + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from faceptor_core.errors import FaceptorError

from .dataset import split_generator
from .generator import SynthSample
from .labels import CELEBA_ATTRIBUTES, SYNTH_ATTRIBUTES

EXPORT_FORMATS: tuple[str, ...] = ("300w", "lapa", "celeba", "utkface", "rafdb")
JPEG_QUALITY = 95


def split_counts(count: int) -> dict[str, int]:
    """Train / test sizes of an export: a quarter test (at least one of each when ``count`` >= 2)."""
    if count < 1:
        raise ValueError("count must be positive")
    test = max(1, count // 4) if count >= 2 else 0
    return {"train": count - test, "test": test}


def samples(count: int, seed: int, size: int) -> Iterator[tuple[str, int, SynthSample]]:
    """``(split, number, sample)`` for the export, numbers from 1 per split."""
    for split, n in split_counts(count).items():
        gen, offset = split_generator(split, size, seed)
        for i in range(n):
            yield split, i + 1, gen.sample(offset + i)


def save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)


def export_300w(out: Path, count: int, seed: int, size: int) -> None:
    points = ",".join(f"original_{i}_x,original_{i}_y" for i in range(68))
    header = f"image_name,scale,center_w,center_h,{points}"
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for split, k, s in samples(count, seed, size):
        rel = f"images/{split}_{k:05d}.jpg"
        save_jpeg(s.image, out / rel)
        lo, hi = s.landmarks.min(0), s.landmarks.max(0)
        centre = (lo + hi) / 2 + 1  # 1-based, like the HRNet CSVs
        scale = float((hi - lo).max()) / 200
        pts = ",".join(f"{v:.3f}" for v in (s.landmarks.astype(np.float64) + 1).ravel())
        rows[split].append(f"{rel},{scale:.6f},{centre[0]:.3f},{centre[1]:.3f},{pts}")
    for name, split in (("train", "train"), ("valid", "test"), ("test", "test")):
        (out / f"face_landmarks_300w_{name}.csv").write_text("\n".join([header, *rows[split]]) + "\n")


def export_lapa(out: Path, count: int, seed: int, size: int) -> None:
    for split, k, s in samples(count, seed, size):
        name = f"synth_{split}_{k:05d}"
        save_jpeg(s.image, out / split / "images" / f"{name}.jpg")
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.parsing).save(out / split / "labels" / f"{name}.png")
        (out / split / "landmarks").mkdir(parents=True, exist_ok=True)
        lines = [str(len(s.landmarks))] + [f"{x:.3f} {y:.3f}" for x, y in s.landmarks.astype(np.float64)]
        (out / split / "landmarks" / f"{name}.txt").write_text("\n".join(lines) + "\n")


def export_celeba(out: Path, count: int, seed: int, size: int) -> None:
    columns = [SYNTH_ATTRIBUTES.index(a) if a in SYNTH_ATTRIBUTES else -1 for a in CELEBA_ATTRIBUTES]
    attr_lines, part_lines = [], []
    number = 0
    for split, _, s in samples(count, seed, size):
        number += 1
        name = f"{number:06d}.jpg"
        save_jpeg(s.image, out / "img_align_celeba" / name)
        values = [1 if c >= 0 and s.attributes[c] else -1 for c in columns]
        attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in values))
        part_lines.append(f"{name} {0 if split == 'train' else 2}")
    attr_text = "\n".join([str(number), " ".join(CELEBA_ATTRIBUTES), *attr_lines]) + "\n"
    (out / "list_attr_celeba.txt").write_text(attr_text)
    (out / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")
    (out / "faceptor_modelled_attributes.txt").write_text("\n".join(SYNTH_ATTRIBUTES) + "\n")


def utkface_name(s: SynthSample, seed: int, number: int) -> str:
    """``age_gender_race_date.jpg.chip.jpg``; the 17-digit date is made unique from (seed, number)."""
    male = s.attributes[SYNTH_ATTRIBUTES.index("Male")]
    stamp = datetime(2017, 1, 1) + timedelta(seconds=seed * 7919 % 86400 + number * 61)
    date = stamp.strftime("%Y%m%d%H%M%S") + f"{number % 1000:03d}"
    return f"{int(round(s.age))}_{0 if male else 1}_4_{date}.jpg.chip.jpg"


def export_utkface(out: Path, count: int, seed: int, size: int) -> None:
    for number, (_, _, s) in enumerate(samples(count, seed, size), start=1):
        save_jpeg(s.image, out / "UTKFace" / utkface_name(s, seed, number))


def export_rafdb(out: Path, count: int, seed: int, size: int) -> None:
    lines = []
    for split, k, s in samples(count, seed, size):
        save_jpeg(s.image, out / "basic" / "Image" / "aligned" / f"{split}_{k:05d}_aligned.jpg")
        lines.append(f"{split}_{k:05d}.jpg {s.expression + 1}")
    (out / "basic" / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (out / "basic" / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")


EXPORTERS: dict[str, Callable[[Path, int, int, int], None]] = {
    "300w": export_300w,
    "lapa": export_lapa,
    "celeba": export_celeba,
    "utkface": export_utkface,
    "rafdb": export_rafdb,
}


class ExportTargetError(FaceptorError):
    """The export's target folder already holds files."""


def export_dataset(
    fmt: str, out: Path, count: int = 64, seed: int = 0, size: int = 224, overwrite: bool = False
) -> Path:
    """Write ``count`` SynthFaces in the layout ``fmt`` (one of :data:`EXPORT_FORMATS`) under ``out``;
    returns the dataset root to give the real reader. A non-empty ``out`` is refused (a real dataset's
    annotation files could be there) unless ``overwrite``, which writes over same-named files."""
    key = fmt.lower().replace("-", "").replace("_", "")
    if key not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportTargetError(f"{out}: exists and is not a folder")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ExportTargetError(
            f"{out}: not empty; the export would write over its files (annotation lists "
            "included). Choose an empty folder or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    EXPORTERS[key](out, count, seed, size)
    return out


#: Alias: ``export(format, out_dir, n, seed, size)``.
export = export_dataset
