"""Landmark family: readers of 300W / WFLW / COFW / AFLW-19 fixtures, transforms, loss and NME metric."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import default_collate

from faceptor_tasks.builtin import FLIP_19, FLIP_29, FLIP_68, FLIP_98, builtin_tasks
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.geometry import apply_affine, compose, flip_points, hflip_matrix, invert_affine
from faceptor_tasks.families.landmarks import (
    BOX_NORM,
    DIAG_NORM,
    LandmarkLoss,
    LandmarkTransform,
    NMEMetric,
    auc_failure_rate,
    heatmap_targets,
    inter_points,
)
from faceptor_tasks.families.readers.landmarks import read_300w, read_aflw19, read_cofw, read_pts, read_wflw

RNG = np.random.default_rng(0)


def write_image(path: Path, h: int = 40, w: int = 48, fmt: str = "JPEG") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save(path, format=fmt)
    return img


def random_points(n: int, h: int = 40, w: int = 48) -> np.ndarray:
    return np.round(RNG.uniform([5, 5], [w - 5, h - 5], (n, 2)), 2).astype(np.float32)


def write_300w_csv(root: Path, split: str = "train", n: int = 4) -> list[tuple[str, float, float, float, np.ndarray]]:
    rows = []
    for i in range(n):
        rel = f"lfpw/trainset/image_{i:04d}.png"
        write_image(root / "data" / rel, fmt="PNG")
        rows.append((rel, 0.15 + 0.01 * i, 24.0 + i, 20.0, random_points(68)))
    lines = ["image_name,scale,center_w,center_h," + ",".join(f"original_{k}_{a}" for k in range(68) for a in "xy")]
    lines += [f"{r},{s},{cx},{cy}," + ",".join(f"{v:.2f}" for v in p.reshape(-1)) for r, s, cx, cy, p in rows]
    (root / f"face_landmarks_300w_{split}.csv").write_text("\n".join(lines) + "\n")
    return rows


def write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    path.write_text(f"version: 1\nn_points:  {len(pts)}\n{{\n{body}\n}}\n")


# -- readers -------------------------------------------------------------------------------------------------
def test_300w_hrnet_csv(tmp_path: Path) -> None:
    rows = write_300w_csv(tmp_path)
    ds = read_300w(str(tmp_path), "train")
    assert len(ds) == 4
    item = ds[1]
    rel, scale, cx, cy, pts = rows[1]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (40, 48, 3)
    # the reference subtracts 2.0 from every CSV coordinate (landmarks and box centre)
    np.testing.assert_allclose(item["target"], pts - 2.0, atol=1e-5)
    half = 100 * scale
    np.testing.assert_allclose(item["box"], [cx - 2 - half, cy - 2 - half, cx - 2 + half, cy - 2 + half], atol=1e-4)
    # the offset is a reader argument: 1-based values minus 1 put pixel centres at integers
    np.testing.assert_allclose(read_300w(str(tmp_path), "train", offset=-1.0)[1]["target"], pts - 1.0, atol=1e-5)


def test_300w_original_pts_folders(tmp_path: Path) -> None:
    expected = {}
    for folder in ("afw", "helen/trainset", "lfpw/trainset"):
        (tmp_path / folder).mkdir(parents=True)
        write_image(tmp_path / folder / "a.jpg")
        pts = random_points(68)
        write_pts(tmp_path / folder / "a.pts", pts)
        expected[str(tmp_path / folder / "a.jpg")] = pts
    ds = read_300w(str(tmp_path), "train")
    assert len(ds) == 3
    for i in range(3):
        np.testing.assert_allclose(ds[i]["target"], expected[ds.samples[i].image] - 2.0, atol=1e-3)


def test_pts_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "x.pts"
    p.write_text("version: 1\nn_points: 3\n{\n1 2\n3 oops\n5 6\n}\n")
    with pytest.raises(DatasetFormatError, match=r"x\.pts:5"):
        read_pts(p)


def test_csv_malformed_line_raises_or_is_skipped(tmp_path: Path) -> None:
    write_300w_csv(tmp_path, n=3)
    csv = tmp_path / "face_landmarks_300w_train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 3)[0]  # drop columns on line 3
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"face_landmarks_300w_train\.csv:3: .*136 points|expected 140"):
        read_300w(str(tmp_path), "train")
    ds = read_300w(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 2
    assert [(Path(f).name, line) for f, line, _ in ds.skipped] == [("face_landmarks_300w_train.csv", 3)]


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    rows = write_300w_csv(tmp_path, n=4)
    (tmp_path / "data" / rows[0][0]).unlink()
    with pytest.raises(DatasetFormatError, match=r"csv:2: image file not found: .*image_0000\.png"):
        read_300w(str(tmp_path), "train")
    ds = read_300w(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 3 and ds.skipped[0][1] == 2
    (tmp_path / "data" / rows[2][0]).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ds.skip_invalid = False
    with pytest.raises(DatasetFormatError, match=r"csv:4: .*image_0002\.png: cannot decode"):
        ds[1]
    ds.skip_invalid = True
    item = ds[1]  # replaced by the next decodable item, and counted
    np.testing.assert_allclose(item["target"], rows[3][4] - 2.0, atol=1e-5)
    assert ds.skipped[-1][1] == 4 and "cannot decode" in ds.skipped[-1][2]


def test_wflw_original_and_csv(tmp_path: Path) -> None:
    (tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test").mkdir(parents=True)
    lines, pts_all = [], []
    for i in range(3):
        write_image(tmp_path / "WFLW_images" / "0--Parade" / f"{i}.jpg")
        pts = random_points(98)
        pts_all.append(pts)
        flags = [0, 0, 0, 0, 0, 1 if i == 1 else 0]
        lines.append(
            " ".join(f"{v:.3f}" for v in pts.reshape(-1))
            + " 3 4 40 36 "
            + " ".join(map(str, flags))
            + f" 0--Parade/{i}.jpg"
        )
    txt = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    txt.write_text("\n".join(lines) + "\n")
    ds = read_wflw(str(tmp_path), "test")
    assert len(ds) == 3
    np.testing.assert_allclose(ds[2]["target"], pts_all[2], atol=1e-3)
    np.testing.assert_allclose(ds[2]["box"], [3, 4, 40, 36])
    blur = read_wflw(str(tmp_path), "test_blur")
    assert len(blur) == 1 and blur.samples[0].image.endswith("1.jpg")
    # the HRNet CSV takes precedence when present
    header = "image_name,scale,center_w,center_h," + ",".join(f"p{k}" for k in range(196))
    row = "0--Parade/0.jpg,0.2,20,18," + ",".join(f"{v:.3f}" for v in pts_all[0].reshape(-1))
    (tmp_path / "face_landmarks_wflw_test.csv").write_text(f"{header}\n{row}\n")
    ds = read_wflw(str(tmp_path), "test")
    assert len(ds) == 1
    np.testing.assert_allclose(ds[0]["target"], pts_all[0], atol=1e-3)
    np.testing.assert_allclose(ds[0]["box"], [0, -2, 40, 38], atol=1e-5)


def test_cofw_mat(tmp_path: Path) -> None:
    images = np.empty((3, 1), dtype=object)
    phis = np.zeros((3, 87))
    for i in range(3):
        images[i, 0] = RNG.integers(0, 256, (30, 34) if i == 0 else (30, 34, 3), dtype=np.uint8)  # grey and colour
        pts = random_points(29, 30, 34)
        phis[i, :29], phis[i, 29:58], phis[i, 58:] = pts[:, 0], pts[:, 1], i % 2
    scipy.io.savemat(tmp_path / "COFW_test_color.mat", {"IsT": images, "phisT": phis})
    ds = read_cofw(str(tmp_path), "test")
    assert len(ds) == 3
    item = ds[0]
    assert item["image"].shape == (30, 34, 3) and (item["image"][..., 0] == images[0, 0]).all()
    np.testing.assert_allclose(item["target"], np.stack([phis[0, :29], phis[0, 29:58]], 1), atol=1e-5)
    x1, y1, x2, y2 = item["box"]
    assert x2 - x1 == pytest.approx(y2 - y1)
    assert (item["meta"]["occlusion"] == 0).all() and (ds[1]["meta"]["occlusion"] == 1).all()
    with pytest.raises(DatasetFormatError, match="COFW_train_color.mat"):
        read_cofw(str(tmp_path), "train")


def write_aflw(root: Path, n: int = 6, train: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = np.empty((n, 1), dtype=object)
    data, bbox, mask = np.zeros((n, 38)), np.zeros((n, 4)), np.ones((n, 19))
    for i in range(n):
        names[i, 0] = np.array([f"0/image{i:05d}.jpg"])
        write_image(root / "data" / "flickr" / "0" / f"image{i:05d}.jpg")
        pts = random_points(19)
        data[i, :19], data[i, 19:] = pts[:, 0], pts[:, 1]
        bbox[i] = [4 + i, 40, 3, 36]  # left right top bottom
    mask[1, 3] = 0
    ra = np.roll(np.arange(1, n + 1), 2).astype(np.float64)[None]
    scipy.io.savemat(
        root / "AFLWinfo_release.mat", {"nameList": names, "data": data, "bbox": bbox, "mask_new": mask, "ra": ra}
    )
    return data, bbox, ra[0].astype(int) - 1


def test_aflw19_mat(tmp_path: Path) -> None:
    data, bbox, ra = write_aflw(tmp_path)
    real = partial(read_aflw19, train_size=4)  # 20,000 training faces in the release, 4 in the fixture
    train = real(str(tmp_path), "train")
    test = real(str(tmp_path), "test")
    assert len(train) == 4 and len(test) == 2
    j = ra[0]
    np.testing.assert_allclose(train[0]["target"], np.stack([data[j, :19], data[j, 19:]], 1), atol=1e-5)
    left, right, top, bottom = bbox[j]
    np.testing.assert_allclose(train[0]["box"], [left, top, right, bottom])
    frontal = real(str(tmp_path), "test_frontal")
    assert len(frontal) == len(test) - int(1 in ra[4:])


# -- flips and transforms ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("perm", "pairs", "fixed"),
    [
        (FLIP_68, [(36, 45), (0, 16), (48, 54)], [8, 27, 30]),
        (FLIP_98, [(60, 72), (0, 32), (96, 97), (76, 82)], [16, 51, 54, 57]),
        (FLIP_29, [(8, 9), (16, 17), (22, 23)], [20, 21, 28]),
        (FLIP_19, [(6, 11), (7, 10), (0, 5), (15, 17)], [13, 16, 18]),
    ],
)
def test_flip_permutations(perm: tuple[int, ...], pairs: list[tuple[int, int]], fixed: list[int]) -> None:
    assert sorted(perm) == list(range(len(perm)))
    assert all(perm[perm[i]] == i for i in range(len(perm)))
    assert all(perm[a] == b for a, b in pairs)
    assert all(perm[i] == i for i in fixed)


@given(st.integers(8, 300), st.sampled_from([FLIP_68, FLIP_98, FLIP_29, FLIP_19]), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_flip_twice_is_identity(width: int, perm: tuple[int, ...], seed: int) -> None:
    pts = np.random.default_rng(seed).uniform(0, width, (len(perm), 2))
    np.testing.assert_allclose(flip_points(flip_points(pts, width, perm), width, perm), pts, atol=1e-9)
    np.testing.assert_allclose(compose(hflip_matrix(width), hflip_matrix(width)), np.eye(3)[:2], atol=1e-12)


def gradient_image(size: int = 256) -> np.ndarray:
    """Colour encodes position: R = x, G = y."""
    ys, xs = np.mgrid[0:size, 0:size]
    return np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8)


@given(st.integers(0, 2**31), st.booleans())
@settings(max_examples=25, deadline=None)
def test_transform_keeps_landmarks_on_content(seed: int, with_flip: bool) -> None:
    rng = np.random.default_rng(seed)
    image = gradient_image()
    pts = rng.uniform(70, 186, (68, 2))
    box = (60.0, 60.0, 196.0, 196.0)
    t = LandmarkTransform("train", 96, FLIP_68 if with_flip else None, photometric=False)
    torch.manual_seed(seed)
    out = t({"image": image, "target": pts, "box": np.asarray(box, np.float32), "meta": {}})
    crop = (out["image"].numpy().transpose(1, 2, 0) * 255).round()
    target = out["target"].numpy().astype(np.float64)
    a = out["meta"]["affine"].astype(np.float64)
    flipped = np.linalg.det(a[:, :2]) < 0
    source = pts[list(FLIP_68)] if flipped else pts
    assert with_flip or not flipped
    np.testing.assert_allclose(apply_affine(target, invert_affine(a)), source, atol=1e-3)
    inside = (target >= 1).all(1) & (target <= 94).all(1)
    u, v = np.round(target[inside]).astype(int).T
    sampled = crop[v, u, :2]
    exact = source[inside]
    # crop pixel centres are within 0.5 crop px of the landmark: at most ~1.5 source px at this zoom
    assert np.abs(sampled - exact).max() <= 3.0
    np.testing.assert_allclose(out["meta"]["landmarks_orig"], pts, atol=1e-4)


def test_transformed_items_collate_and_eval_is_deterministic(tmp_path: Path) -> None:
    write_300w_csv(tmp_path, "train")
    spec = next(s for s in builtin_tasks() if s.name == "landmarks_300w")
    ds = spec.dataset(str(tmp_path), "train", transform=spec.transforms("train", 64))
    batch = default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert float(batch["image"].min()) >= 0 and float(batch["image"].max()) <= 1
    assert batch["target"].shape == (4, 68, 2) and batch["meta"]["affine"].shape == (4, 2, 3)
    assert batch["meta"]["landmarks_orig"].shape == (4, 68, 2) and batch["meta"]["box"].shape == (4, 4)
    ev = spec.transforms("test", 64)
    raw = ds.raw(0)
    a, b = ev(raw), ev(raw)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    # eval crop: the box (squared, 0.8 of the crop) is centred
    centre = apply_affine(
        np.array([[(raw["box"][0] + raw["box"][2]) / 2, (raw["box"][1] + raw["box"][3]) / 2]]), a["meta"]["affine"]
    )
    np.testing.assert_allclose(centre, [[31.5, 31.5]], atol=1e-4)


# -- loss ------------------------------------------------------------------------------------------------------
def test_heatmap_targets_peak_and_radius() -> None:
    pts = torch.tensor([[[(10 + 0.5) / 32, (20 + 0.5) / 32]]])
    hm = heatmap_targets(pts, 32, 32, 3.0)
    assert hm.shape == (1, 1, 32, 32)
    assert hm[0, 0, 20, 10] == 1.0 and hm[0, 0].argmax() == 20 * 32 + 10
    assert hm[0, 0, 20, 14] == 0.0 and 0 < hm[0, 0, 20, 13] < 1
    assert float(hm[0, 0, 20, 12]) == pytest.approx(np.exp(-16 * 4 / 18), rel=1e-6)


def test_landmark_loss_prefers_the_target() -> None:
    loss_fn = LandmarkLoss(input_size=128)
    target = torch.tensor([[[40.0, 64.0], [90.0, 30.0]]])
    hm = heatmap_targets((target + 0.5) / 128, 32, 32, 5.0 * 32 / 128)
    good = torch.logit(hm.clamp(1e-4, 1 - 1e-4)).requires_grad_()
    bad = torch.logit(hm.flip(-1).clamp(1e-4, 1 - 1e-4))
    lg, lb = loss_fn(good, target), loss_fn(bad, target)
    assert lg.ndim == 0 and torch.isfinite(lg) and lg < lb
    lg.backward()
    assert torch.isfinite(good.grad).all()


# -- metric ----------------------------------------------------------------------------------------------------
def test_nme_hand_computed() -> None:
    gt = np.zeros((2, 68, 2))
    gt[0, 36], gt[0, 45] = (0, 0), (10, 0)  # inter-ocular 10
    gt[1, 36], gt[1, 45] = (0, 0), (0, 20)  # inter-ocular 20
    pred = gt.copy()
    pred[0] += (1, 0)  # error 1 at every point -> 0.1
    pred[1, :34] += (0, 8)  # error 8 at half the points -> 0.2
    m = NMEMetric({"inter_ocular": inter_points(36, 45)})
    m.update(torch.tensor(pred), torch.tensor(gt))
    assert m.compute()["nme"] == pytest.approx(0.15)
    assert m.compute()["nme_inter_ocular"] == pytest.approx(0.15)


def test_nme_maps_back_to_original_and_box_norms() -> None:
    gt = np.array([[[10.0, 10.0], [30.0, 10.0], [20.0, 40.0]]])
    box = np.array([[0.0, 0.0, 40.0, 10.0]])  # sqrt(w h) = 20, diagonal = sqrt(1700)
    affine = np.array([[[2.0, 0.0, 5.0], [0.0, 2.0, -3.0]]])
    pred_orig = gt + np.array([3.0, 4.0])  # error 5 everywhere
    pred_crop = pred_orig * 2 + np.array([5.0, -3.0])
    m = NMEMetric({"box": BOX_NORM, "diag": DIAG_NORM, "io": inter_points(0, 1)})
    m.update(
        torch.tensor(pred_crop),
        torch.zeros(1, 3, 2),
        {"affine": torch.tensor(affine), "landmarks_orig": torch.tensor(gt), "box": torch.tensor(box)},
    )
    out = m.compute()
    assert out["nme"] == pytest.approx(5 / 20) and out["nme_box"] == pytest.approx(0.25)
    assert out["nme_diag"] == pytest.approx(5 / np.sqrt(1700)) and out["nme_io"] == pytest.approx(0.25)


def test_auc_and_failure_rate_hand_computed() -> None:
    auc, fr = auc_failure_rate(torch.tensor([0.02, 0.05, 0.2], dtype=torch.float64), 0.1)
    # CED is 0 below 0.02, 1/3 up to 0.05, 2/3 up to 0.1: area (0.03/3 + 0.05 * 2/3) / 0.1
    assert auc == pytest.approx((0.03 / 3 + 0.05 * 2 / 3) / 0.1, abs=2e-3)
    assert fr == pytest.approx(1 / 3)
    m = NMEMetric({"inter_ocular": inter_points(0, 1)}, auc=(("inter_ocular", 0.1),))
    gt = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    m.update(gt.clone(), gt)  # perfect: AUC 1, no failure
    out = m.compute()
    assert out["auc_inter_ocular_10"] == pytest.approx(1.0) and out["fr_inter_ocular_10"] == 0.0


def test_auc_reference_rule_on_perfect_predictions() -> None:
    # the reference's grid at 0.07 is np.arange(0, 0.0701, 1e-4): 702 points ending at 0.0701, so a CED of 1
    # everywhere integrates to 0.0701 and AUC_box@0.07 is 0.0701 / 0.07
    zero = torch.zeros(5, dtype=torch.float64)
    auc, fr = auc_failure_rate(zero, 0.07)
    assert auc == pytest.approx(0.0701 / 0.07, rel=1e-12) and auc == pytest.approx(1.0014285714, abs=1e-10)
    assert fr == 0.0
    assert auc_failure_rate(zero, 0.07, rule="exact") == (1.0, 0.0)
    assert auc_failure_rate(zero, 0.1)[0] == pytest.approx(1.0, rel=1e-12)  # 1,001 points ending at 0.1


@pytest.mark.parametrize(("threshold", "last"), [(0.07, 701), (0.08, 800)])
def test_auc_reference_rule_closed_form(threshold: float, last: int) -> None:
    """One image with NME in (0.0199, 0.0200]: the sampled CED is 1 from grid index 200 on. Composite Simpson
    (weights 1 4 2 ... 4 1, h / 3) over points 0..P with P even gives h (P - 200) + h / 3; with 702 points the
    last interval is integrated by Cartwright's correction, exact for the constant there (h)."""
    h = 1e-4
    e = torch.tensor([0.01995], dtype=torch.float64)
    auc, fr = auc_failure_rate(e, threshold)
    covered = last if last % 2 == 0 else last - 1
    area = h * (covered - 200) + h / 3 + (h if last % 2 else 0.0)
    assert auc == pytest.approx(area / threshold, rel=1e-9) and fr == 0.0
    exact, fr_exact = auc_failure_rate(e, threshold, rule="exact")
    assert exact == pytest.approx((threshold - 0.01995) / threshold, rel=1e-12) and fr_exact == 0.0
    assert (auc > exact) == (last == 701)  # at 0.07 the grid's extra end point adds 1e-4 of area


def test_auc_reference_rule_agrees_with_scipy_and_counts_failures_past_the_grid() -> None:
    from scipy.integrate import simpson

    rng = np.random.default_rng(0)
    nmes = np.exp(rng.normal(np.log(0.02), 0.6, 500))
    nmes[:3] = [0.0700, 0.07005, 0.0702]  # at/inside/past the grid's end 0.0701
    grid = np.arange(0.0, 0.07 + 1e-4, 1e-4)
    ced = np.array([np.count_nonzero(nmes <= x) / len(nmes) for x in grid])
    auc, fr = auc_failure_rate(torch.tensor(nmes), 0.07)
    assert auc == pytest.approx(simpson(ced, x=grid) / 0.07, abs=1e-12)
    assert fr == pytest.approx(np.mean(nmes > 0.0701), abs=1e-15)
    exact, fr_exact = auc_failure_rate(torch.tensor(nmes), 0.07, rule="exact")
    assert fr_exact == pytest.approx(np.mean(nmes > 0.07)) and fr_exact > fr  # 0.07005 fails only exactly
    assert exact == pytest.approx(np.mean(np.clip(0.07 - nmes, 0, None)) / 0.07, abs=1e-12)
    assert 0.001 < auc - exact < 0.002  # the reference's rule scores about 0.0014 higher


def test_nme_metric_reports_both_auc_rules() -> None:
    m = NMEMetric({"box": BOX_NORM}, auc=(("box", 0.07),))
    gt = torch.tensor([[[10.0, 10.0], [20.0, 10.0]]], dtype=torch.float64)
    m.update(gt.clone(), gt, {"box": torch.tensor([[0.0, 0.0, 10.0, 10.0]])})
    out = m.compute()
    assert out["auc_box_7"] == pytest.approx(0.0701 / 0.07) and out["auc_box_7_exact"] == 1.0
    assert out["fr_box_7"] == 0.0 and out["fr_box_7_exact"] == 0.0
    only = NMEMetric({"box": BOX_NORM}, auc=(("box", 0.07),), auc_rules=("exact",))
    only.update(gt.clone(), gt, {"box": torch.tensor([[0.0, 0.0, 10.0, 10.0]])})
    assert "auc_box_7" not in only.compute() and "auc_box_7_exact" in only.compute()
    with pytest.raises(ValueError, match="unknown AUC rule"):
        NMEMetric({"box": BOX_NORM}, auc_rules=("trapezoid",))


@given(st.integers(1, 12), st.lists(st.integers(1, 5), min_size=1, max_size=6), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_nme_accumulation_is_batch_independent(n: int, cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 100, (n, 19, 2))
    pred = gt + rng.normal(0, 3, gt.shape)
    box = np.concatenate([gt.min(1), gt.max(1)], 1) + [-5, -5, 5, 5]
    affine = np.tile(np.array([[1.5, 0.1, 4.0], [-0.1, 1.5, 2.0]]), (n, 1, 1))
    crop = pred @ affine[0, :, :2].T + affine[0, :, 2]
    meta = {"affine": affine, "landmarks_orig": gt, "box": box}
    norms = {"diag": DIAG_NORM, "box": BOX_NORM, "io": inter_points(6, 11)}
    one = NMEMetric(norms, auc=(("box", 0.07),))
    one.update(torch.tensor(crop), None, {k: torch.tensor(v) for k, v in meta.items()})
    many = NMEMetric(norms, auc=(("box", 0.07),))
    start = 0
    for c in [*cuts, n]:
        stop = min(n, start + c)
        if stop > start:
            many.update(torch.tensor(crop[start:stop]), None, {k: torch.tensor(v[start:stop]) for k, v in meta.items()})
        start = stop
    a, b = one.compute(), many.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-15)
    assert 0 <= a["auc_box_7"] <= 1 and 0 <= a["fr_box_7"] <= 1 and a["nme"] >= 0


def test_aflw19_crop_stretches_the_box_as_the_reference() -> None:
    """The reference maps AFLW-19's (non-square) box edges onto the crop edges; the other sets square it."""
    from faceptor_core import get_task

    item = {
        "image": np.zeros((60, 80, 3), np.uint8),
        "target": random_points(19, 60, 80),
        "box": np.array([10.0, 20.0, 50.0, 30.0]),
    }  # 40 wide, 10 high
    out = get_task("landmarks_aflw19").transforms("test", 32)(item)
    corners = apply_affine(np.array([[10.0, 20.0], [50.0, 30.0]]), out["meta"]["affine"])
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [31.5, 31.5]], atol=1e-5)
    square = LandmarkTransform("test", 32, face_scale=1.0)(item)
    corners = apply_affine(np.array([[10.0, 5.0], [50.0, 45.0]]), square["meta"]["affine"])  # squared about centre
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [31.5, 31.5]], atol=1e-5)
