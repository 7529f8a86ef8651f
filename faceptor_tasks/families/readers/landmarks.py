"""Readers of landmark datasets: 300W, WFLW, COFW, AFLW-19 (original releases and prepared layouts).

Raw items: ``{"image", "target": N x 2 float32 pixels (pixel centres at integers), "box": (x1, y1, x2, y2)}``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..common import Collector, DatasetFormatError, FaceDataset, Sample, check_split, first_existing, read_lines


def resolve_image(root: str, rel: str, bases: Sequence[str]) -> str:
    """``root/base/rel`` for the first base where it exists (else the first candidate, reported missing)."""
    candidates = [os.path.join(root, b, rel) if b else os.path.join(root, rel) for b in bases]
    return next((c for c in candidates if os.path.isfile(c)), candidates[0])


def points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box of the points."""
    x1, y1 = np.nanmin(points, axis=0)
    x2, y2 = np.nanmax(points, axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """An iBUG ``.pts`` file (``version``, ``n_points``, ``{``, ``x y`` lines, ``}``) -> ``N x 2`` as written."""
    lines = read_lines(path)
    try:
        n = next(int(ln.split(":")[1]) for ln in lines if ln.strip().startswith("n_points"))
    except (StopIteration, ValueError, IndexError):
        raise DatasetFormatError(path, 0, "no valid 'n_points:' header") from None
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "{") + 1
    except StopIteration:
        raise DatasetFormatError(path, 0, "no '{' line") from None
    pts = []
    for i in range(start, start + n):
        if i >= len(lines) or lines[i].strip() == "}":
            raise DatasetFormatError(path, i + 1, f"expected {n} points, found {len(pts)}")
        fields = lines[i].split()
        try:
            if len(fields) != 2:
                raise ValueError
            pts.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise DatasetFormatError(path, i + 1, f"expected 'x y', got {lines[i].strip()!r}") from None
    return np.asarray(pts, np.float32)


def read_hrnet_csv(
    col: Collector,
    csv_path: Path,
    num_points: int,
    root: str,
    image_dirs: Sequence[str],
    offset: float = 0.0,
    renames: dict[str, str] | None = None,
) -> None:
    """HRNet CSV: ``image, scale, centre_x, centre_y, x0, y0, ...``; box half-size = ``100 * scale``."""
    for lineno, line in enumerate(read_lines(csv_path), start=1):
        fields = [f.strip() for f in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if lineno == 1 and not _is_number(fields[1] if len(fields) > 1 else ""):
            continue  # header
        with col.entry(csv_path, lineno):
            if len(fields) != 4 + 2 * num_points:
                raise ValueError(f"expected {4 + 2 * num_points} columns ({num_points} points), got {len(fields)}")
            scale, cx, cy = float(fields[1]), float(fields[2]) + offset, float(fields[3]) + offset
            pts = np.asarray([float(v) for v in fields[4:]], np.float32).reshape(num_points, 2) + offset
            if not np.isfinite(pts).all() or not scale > 0:
                raise ValueError("non-finite landmark or non-positive scale")
            rel = fields[0]
            path = resolve_image(root, rel, image_dirs)
            if not os.path.isfile(path) and renames and rel in renames:
                path = resolve_image(root, renames[rel], image_dirs)
            half = 100.0 * scale
            col.add(Sample(path, pts, (str(csv_path), lineno), box=(cx - half, cy - half, cx + half, cy + half)))


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# -- 300W ----------------------------------------------------------------------------------------------
W300_FOLDERS = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "valid_common": ("helen/testset", "lfpw/testset"),
    "valid_challenge": ("ibug",),
    "valid": ("helen/testset", "lfpw/testset", "ibug"),
    "test": ("300W/01_Indoor", "300W/02_Outdoor"),
}
W300_ALIASES = {"common": "valid_common", "challenge": "valid_challenge", "full": "valid", "val": "valid"}
#: A file name that differs between the HRNet CSV and the 300W release.
W300_RENAMES = {"ibug/image_092_01.jpg": "ibug/image_092 _01.jpg"}


#: What the reference adds to 300W coordinates (landmarks and box centres of the HRNet CSVs): -2.0.
W300_REFERENCE_OFFSET = -2.0


def read_300w(root: str, split: str, skip_invalid: bool = False, offset: float = W300_REFERENCE_OFFSET) -> FaceDataset:
    """300W, 68 points. Prepared: ``face_landmarks_300w_{split}.csv`` (HRNet) with images under
    ``root/{data,images,.}``. Original: ``.pts`` next to the images in ``afw``, ``helen/{trainset,testset}``,
    ``lfpw/{trainset,testset}``, ``ibug`` (and ``300W/0{1_Indoor,2_Outdoor}`` for ``test``).

    Splits: ``train``, ``valid`` (= full), ``valid_common``, ``valid_challenge``, ``test``. ``offset`` is added
    to every coordinate (landmarks and box centre): -2.0 by default, as the Faceptor reference does to the CSV
    values, so that weights trained by it see the same targets; the ``.pts`` files hold the same values as the
    CSVs and get the same offset. (The values are 1-based, so -1.0 would put pixel centres at integers.)
    """
    split = W300_ALIASES.get(split, split)
    check_split(split, tuple(W300_FOLDERS), root)
    col = Collector(skip_invalid)
    csv = first_existing(os.path.join(root, f"face_landmarks_300w_{split}.csv"))
    if csv is not None:
        read_hrnet_csv(col, csv, 68, root, ("data", "images", ""), offset, W300_RENAMES)
    else:
        read_pts_folders(col, root, W300_FOLDERS[split], 68, offset)
    return FaceDataset.from_collector(col, name=f"300w/{split}")


def read_pts_folders(col: Collector, root: str, folders: Sequence[str], num_points: int, offset: float) -> None:
    """Every ``*.pts`` under ``root/folder`` with its image (same stem, .jpg or .png)."""
    found = False
    for folder in folders:
        base = Path(root, folder)
        if not base.is_dir():
            col.reject(base, 0, "folder of .pts files not found (nor an HRNet CSV for this split)")
            continue
        for pts_path in sorted(base.rglob("*.pts")):
            found = True
            with col.entry(pts_path):
                pts = read_pts(pts_path) + offset
                if len(pts) != num_points:
                    raise ValueError(f"expected {num_points} points, got {len(pts)}")
                image = next(
                    (
                        str(pts_path.with_suffix(e))
                        for e in (".jpg", ".png", ".jpeg")
                        if pts_path.with_suffix(e).is_file()
                    ),
                    str(pts_path.with_suffix(".jpg")),
                )
                col.add(Sample(image, pts, (str(pts_path), 0), box=points_box(pts)))
    if not found and not col.skipped:
        raise DatasetFormatError(root, 0, f"no .pts files under {', '.join(folders)}")


# -- WFLW ----------------------------------------------------------------------------------------------
WFLW_SUBSETS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")
WFLW_SPLITS = ("train", "test", *(f"test_{s}" for s in WFLW_SUBSETS))


def read_wflw(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """WFLW, 98 points. Prepared: ``face_landmarks_wflw_{split}.csv`` (HRNet) with images under
    ``root/{data,images,WFLW_images}``. Original: ``WFLW_annotations/list_98pt_rect_attr_train_test/
    list_98pt_rect_attr_{train,test}.txt`` (196 coordinates, box x1 y1 x2 y2, 6 attribute flags, image)
    with images in ``WFLW_images``. Splits: ``train``, ``test``, ``test_{largepose,expression,illumination,
    makeup,occlusion,blur}``.
    """
    check_split(split, WFLW_SPLITS, root)
    col = Collector(skip_invalid)
    dirs = ("data", "images", "WFLW_images", "")
    csv = first_existing(os.path.join(root, f"face_landmarks_wflw_{split}.csv"))
    if csv is not None:
        read_hrnet_csv(col, csv, 98, root, dirs)
        return FaceDataset.from_collector(col, name=f"wflw/{split}")
    part = "train" if split == "train" else "test"
    name = f"list_98pt_rect_attr_{part}.txt"
    txt = first_existing(
        os.path.join(root, "WFLW_annotations", "list_98pt_rect_attr_train_test", name),
        os.path.join(root, "list_98pt_rect_attr_train_test", name),
        os.path.join(root, name),
    )
    if txt is None:
        raise DatasetFormatError(root, 0, f"neither face_landmarks_wflw_{split}.csv nor {name} found")
    subset = WFLW_SUBSETS.index(split[5:]) if split.startswith("test_") else None
    for lineno, line in enumerate(read_lines(txt), start=1):
        if not line.strip():
            continue
        with col.entry(txt, lineno):
            fields = line.split()
            if len(fields) != 207:
                raise ValueError(f"expected 207 fields (196 coordinates, 4 box, 6 flags, image), got {len(fields)}")
            pts = np.asarray([float(v) for v in fields[:196]], np.float32).reshape(98, 2)
            box = tuple(float(v) for v in fields[196:200])
            flags = [int(v) for v in fields[200:206]]
            if subset is not None and not flags[subset]:
                continue
            col.add(Sample(resolve_image(root, fields[206], dirs), pts, (str(txt), lineno), box=box))
    return FaceDataset.from_collector(col, name=f"wflw/{split}")


# -- .mat files ----------------------------------------------------------------------------------------
def load_mat(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, object]:
    """Variables ``keys`` of a MATLAB file: v5 via scipy, v7.3 (HDF5) via h5py when installed."""
    if not os.path.isfile(path):
        raise DatasetFormatError(path, 0, "MATLAB file not found")
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # v7.3 = HDF5
        return _load_mat_h5(path, keys)
    except Exception as exc:
        raise DatasetFormatError(path, 0, f"cannot read MATLAB file ({exc})") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DatasetFormatError(path, 0, f"missing variable(s) {', '.join(missing)}")
    return {k: mat[k] for k in keys}


def _load_mat_h5(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, object]:
    try:
        import h5py
    except ImportError:
        raise DatasetFormatError(path, 0, "MATLAB v7.3 (HDF5) file: install h5py to read it") from None
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        for k in keys:
            if k not in f:
                raise DatasetFormatError(path, 0, f"missing variable {k}")
            ds = f[k]
            if ds.dtype == h5py.ref_dtype:  # cell array: MATLAB is column-major, so transpose back
                cells = np.empty(ds.shape[::-1], dtype=object)
                refs = np.asarray(ds).T
                for idx in np.ndindex(refs.shape):
                    cells[idx] = np.asarray(f[refs[idx]]).T
                out[k] = cells
            else:
                out[k] = np.asarray(ds).T
    return out


def _cells(x: object) -> list[np.ndarray]:
    """A MATLAB cell vector (N x 1 or 1 x N object array) as a list of its arrays."""
    arr = np.asarray(x, dtype=object).reshape(-1)
    out = []
    for v in arr:
        while isinstance(v, np.ndarray) and v.dtype == object and v.size == 1:
            v = v.reshape(-1)[0]
        out.append(v)
    return out


def _mat_str(x: object) -> str:
    while isinstance(x, np.ndarray):
        if x.dtype.kind in "US":
            return str(x.reshape(-1)[0]) if x.size else ""
        if x.size != 1:
            if x.dtype.kind in "ui":  # h5py char arrays
                return "".join(map(chr, x.reshape(-1)))
            raise ValueError(f"expected a string cell, got an array of shape {x.shape}")
        x = x.reshape(-1)[0]
    return str(x)


# -- COFW ----------------------------------------------------------------------------------------------
def read_cofw(root: str, split: str, skip_invalid: bool = False) -> FaceDataset:
    """COFW, 29 points: ``COFW_train_color.mat`` (``IsTr``, ``phisTr``) / ``COFW_test_color.mat`` (``IsT``,
    ``phisT``); each ``phis`` row holds 29 x, 29 y and 29 occlusion flags. Box: the landmarks' extent,
    squared (as the reference). Splits: ``train``, ``test``.
    """
    check_split(split, ("train", "test"), root)
    name, ki, kp = (
        ("COFW_train_color.mat", "IsTr", "phisTr") if split == "train" else ("COFW_test_color.mat", "IsT", "phisT")
    )
    path = os.path.join(root, name)
    mat = load_mat(path, (ki, kp))
    images, phis = _cells(mat[ki]), np.asarray(mat[kp], np.float64)
    col = Collector(skip_invalid)
    if phis.ndim != 2 or phis.shape[0] != len(images) or phis.shape[1] < 58:
        raise DatasetFormatError(path, 0, f"{kp} has shape {phis.shape}, expected {len(images)} x 87")
    for i, (img, row) in enumerate(zip(images, phis, strict=True)):
        with col.entry(path, i + 1):
            img = np.asarray(img)
            if img.ndim not in (2, 3) or img.dtype.kind not in "ui" or img.size == 0:
                raise ValueError(f"entry {i + 1}: {ki} cell is not an image (shape {img.shape}, {img.dtype})")
            pts = row[:58].reshape(2, 29).T.astype(np.float32)
            x1, y1 = math.floor(pts[:, 0].min()), math.floor(pts[:, 1].min())
            x2, y2 = math.ceil(pts[:, 0].max()), math.ceil(pts[:, 1].max())
            half = max(x2 - x1, y2 - y1) / 2
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            occl = row[58:87].astype(np.uint8) if row.shape[0] >= 87 else np.zeros(29, np.uint8)
            col.add(
                Sample(
                    img.astype(np.uint8),
                    pts,
                    (path, i + 1),
                    box=(cx - half, cy - half, cx + half, cy + half),
                    meta={"occlusion": occl},
                )
            )
    return FaceDataset.from_collector(col, name=f"cofw/{split}")


# -- AFLW-19 -------------------------------------------------------------------------------------------
def read_aflw19(root: str, split: str, skip_invalid: bool = False, train_size: int = 20000) -> FaceDataset:
    """AFLW-19: ``AFLWinfo_release.mat`` (``data`` N x 38 = 19 x then 19 y, ``bbox`` left right top bottom,
    ``mask_new`` visibility, ``nameList``, ``ra`` 1-based permutation: first ``train_size`` (20,000)
    train, rest test);
    images under ``root/{data/flickr,flickr,.}``. Splits: ``train``, ``test`` (= ``test_full``),
    ``test_frontal`` (test faces with all 19 points visible).
    """
    check_split(split, ("train", "test", "test_full", "test_frontal"), root)
    path = os.path.join(root, "AFLWinfo_release.mat")
    mat = load_mat(path, ("data", "bbox", "mask_new", "nameList", "ra"))
    data, bbox = np.asarray(mat["data"], np.float64), np.asarray(mat["bbox"], np.float64)
    mask, names = np.asarray(mat["mask_new"]), _cells(mat["nameList"])
    ra = np.asarray(mat["ra"]).astype(np.int64).reshape(-1) - 1
    n = len(names)
    if data.shape != (n, 38) or bbox.shape != (n, 4) or mask.shape != (n, 19):
        raise DatasetFormatError(
            path, 0, f"inconsistent shapes: data {data.shape}, bbox {bbox.shape}, mask_new {mask.shape}, nameList {n}"
        )
    if ra.min(initial=0) < 0 or ra.max(initial=0) >= n:
        raise DatasetFormatError(path, 0, "ra holds indices outside nameList")
    train_n = min(train_size, len(ra))
    indices = ra[:train_n] if split == "train" else ra[train_n:]
    if split == "test_frontal":
        indices = indices[(mask[indices] == 1).all(axis=1)]
    col = Collector(skip_invalid)
    dirs = ("data/flickr", "flickr", "")
    for i in indices:
        with col.entry(path, int(i) + 1):
            name = _mat_str(names[i])
            pts = data[i].reshape(2, 19).T.astype(np.float32)
            left, right, top, bottom = bbox[i]
            col.add(
                Sample(
                    resolve_image(root, name, dirs),
                    pts,
                    (path, int(i) + 1),
                    box=(left, top, right, bottom),
                    meta={"visibility": mask[i].astype(np.uint8)},
                )
            )
    return FaceDataset.from_collector(col, name=f"aflw19/{split}")
