"""Reader of CelebA's 40 binary attributes (``list_attr_celeba.txt`` + ``list_eval_partition.txt``).

Raw items: ``{"image", "target": int64 array of 40 in {0, 1}}`` (-1 in the file -> 0).
"""

from __future__ import annotations

import os

import numpy as np

from ..common import Collector, DatasetFormatError, FaceDataset, Sample, check_split, first_existing, read_lines

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
CELEBA_SPLITS = {"train": (0,), "val": (1,), "test": (2,), "trainval": (0, 1), "train_val": (0, 1), "all": (0, 1, 2)}


def read_celeba_attributes(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """CelebA: ``[Anno/]list_attr_celeba.txt`` (count line, 40 names, then ``image +-1 x40``) and
    ``[Eval/]list_eval_partition.txt`` (``image 0|1|2``); images in ``[Img/]img_align_celeba/`` (or ``data/``).
    Splits: ``train``, ``val``, ``test``, ``trainval``, ``all``."""
    check_split(split, tuple(CELEBA_SPLITS), root)
    attr = first_existing(
        os.path.join(root, "list_attr_celeba.txt"), os.path.join(root, "Anno", "list_attr_celeba.txt")
    )
    part = first_existing(
        os.path.join(root, "list_eval_partition.txt"), os.path.join(root, "Eval", "list_eval_partition.txt")
    )
    if attr is None or part is None:
        raise DatasetFormatError(root, 0, "needs list_attr_celeba.txt and list_eval_partition.txt")
    image_dir = (
        first_existing(
            os.path.join(root, "img_align_celeba"),
            os.path.join(root, "Img", "img_align_celeba"),
            os.path.join(root, "data"),
        )
        or root
    )
    col = Collector(skip_invalid)
    groups: dict[str, int] = {}
    seen: dict[str, int] = {}
    for lineno, line in enumerate(read_lines(part), start=1):
        fields = line.split()
        if not fields:
            continue
        with col.entry(part, lineno):
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"expected 'image 0|1|2', got {line.strip()!r}")
            if fields[0] in groups and groups[fields[0]] != int(fields[1]):
                raise ValueError(
                    f"{fields[0]} is already in group {groups[fields[0]]} (line "
                    f"{seen[fields[0]]}): an image in two splits"
                )
            groups[fields[0]] = int(fields[1])
            seen.setdefault(fields[0], lineno)
    lines = read_lines(attr)
    if len(lines) < 2 or tuple(lines[1].split()) != CELEBA_ATTRIBUTES:
        raise DatasetFormatError(attr, 2, "expected the 40 CelebA attribute names")
    try:
        declared = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise DatasetFormatError(attr, 1, "expected the image count") from None
    wanted = CELEBA_SPLITS[split]
    rows = 0
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        rows += 1
        with col.entry(attr, lineno):
            if len(fields) != 41:
                raise ValueError(f"expected an image and 40 values, got {len(fields)} fields")
            values = np.asarray([int(v) for v in fields[1:]], np.int64)
            if not np.isin(values, (-1, 0, 1)).all():
                raise ValueError("attribute values must be -1, 0 or 1")
            if fields[0] not in groups:
                raise ValueError(f"{fields[0]} is not in {part.name}")
            if groups[fields[0]] in wanted:
                col.add(Sample(os.path.join(image_dir, fields[0]), (values > 0).astype(np.int64), (str(attr), lineno)))
    if rows != declared:
        col.reject(attr, 1, f"declares {declared} images but lists {rows}")
    return FaceDataset.from_collector(col, name=f"celeba/{split}")
