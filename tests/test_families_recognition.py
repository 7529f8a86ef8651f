"""Recognition family: RecordIO and verification .bin readers (no mxnet, no unsafe pickles), CosFace,
10-fold verification accuracy."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceptor_tasks.builtin import builtin_tasks
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.readers.recognition import RecordIODataset, read_verification_bin
from faceptor_tasks.families.recognition import CosFaceLoss, VerificationMetric, kfold_slices

MAGIC = 0xCED7230A


def jpeg(seed: int, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def record(flag: int, label: float, id1: int, payload: bytes, labels: tuple[float, ...] = ()) -> bytes:
    body = struct.pack("<IfQQ", flag, label, id1, 0) + struct.pack(f"<{len(labels)}f", *labels) + payload
    return body


def frame(body: bytes, cflag: int = 0) -> bytes:
    pad = (-len(body)) % 4
    return struct.pack("<II", MAGIC, (cflag << 29) | len(body)) + body + b"\0" * pad


def write_recordio(root: Path, labels: list[int], split_record: int | None = None) -> list[bytes]:
    """Header record 0 (labels: first image 1, end of identity records), then images; one record may be
    written in two parts (cflag 1 then 3) the way dmlc splits a payload at an embedded magic word."""
    images = [jpeg(i) for i in range(len(labels))]
    n = len(labels)
    bodies = [record(2, 0.0, 0, b"", (float(n + 1), float(n + 1 + len(set(labels)))))]
    bodies += [record(0, float(lab), i + 1, img) for i, (lab, img) in enumerate(zip(labels, images, strict=True))]
    data, index = b"", []
    for i, body in enumerate(bodies):
        index.append(f"{i}\t{len(data)}")
        if i == split_record:
            cut = 30  # the reader re-inserts the magic word between the parts
            data += frame(body[:cut], 1) + frame(body[cut + 4 :], 3)
            bodies[i] = body[:cut] + struct.pack("<I", MAGIC) + body[cut + 4 :]
        else:
            data += frame(body)
    (root / "train.rec").write_bytes(data)
    (root / "train.idx").write_text("\n".join(index) + "\n")
    return images


def test_recordio_reader(tmp_path: Path) -> None:
    write_recordio(tmp_path, [0, 0, 1, 2, 2])
    ds = RecordIODataset(str(tmp_path))
    assert len(ds) == 5 and ds.num_identities == 3
    assert [ds[i]["target"] for i in range(5)] == [0, 0, 1, 2, 2]
    assert ds[3]["image"].shape == (16, 16, 3) and ds[3]["image"].dtype == np.uint8
    expected = np.asarray(Image.open(io.BytesIO(jpeg(3))).convert("RGB"))
    np.testing.assert_array_equal(ds[3]["image"], expected)


def test_recordio_multipart_record(tmp_path: Path) -> None:
    write_recordio(tmp_path, [4, 5, 6], split_record=2)
    ds = RecordIODataset(str(tmp_path))
    assert ds[1]["target"] == 5
    np.testing.assert_array_equal(ds[1]["image"][..., 0].shape, (16, 16))


def test_recordio_errors(tmp_path: Path) -> None:
    write_recordio(tmp_path, [0, 1, 2])
    idx = tmp_path / "train.idx"
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join([*lines[:2], "2 oops", *lines[3:]]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"train\.idx:3"):
        RecordIODataset(str(tmp_path))
    ds = RecordIODataset(str(tmp_path), skip_invalid=True)
    assert len(ds) == 2 and {line for _, line, _ in ds.skipped} == {3, 0}
    idx.write_text("\n".join(lines) + "\n")
    rec = bytearray((tmp_path / "train.rec").read_bytes())
    off = int(lines[2].split()[1])
    rec[off : off + 4] = b"\0\0\0\0"
    (tmp_path / "train.rec").write_bytes(bytes(rec))
    ds = RecordIODataset(str(tmp_path))
    with pytest.raises(DatasetFormatError, match=r"train\.rec: record at offset \d+: bad magic"):
        ds[1]


def write_bin(path: Path, n_pairs: int, as_numpy: bool = False, protocol: int = 2) -> tuple[list[bytes], list[bool]]:
    images = [jpeg(100 + i, 12) for i in range(2 * n_pairs)]
    same = [bool(i % 2 == 0) for i in range(n_pairs)]
    bins = [np.frombuffer(b, np.uint8) for b in images] if as_numpy else images
    payload = (bins, np.asarray(same) if as_numpy else same)
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    return images, same


@pytest.mark.parametrize(("as_numpy", "protocol"), [(False, 2), (False, 4), (True, 2), (True, 5)])
def test_verification_bin(tmp_path: Path, as_numpy: bool, protocol: int) -> None:
    images, same = write_bin(tmp_path / "lfw.bin", 3, as_numpy, protocol)
    got, issame = read_verification_bin(tmp_path / "lfw.bin")
    assert got == images and issame.tolist() == same
    spec = next(s for s in builtin_tasks() if s.name == "recognition_ms1mv3")
    raw = spec.dataset(str(tmp_path), "lfw")
    assert len(raw) == 3 and raw[1]["target"] == 0 and raw[1]["image_b"].shape == (12, 12, 3)
    ds = spec.dataset(str(tmp_path), "test", transform=spec.transforms("test", 32))  # test: first set present
    item = ds[0]
    assert item["image_a"].shape == (3, 32, 32) and item["image_b"].shape == (3, 32, 32) and item["issame"] is True


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > evil_was_here",))


def test_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([Evil()], [True])))
    with pytest.raises(DatasetFormatError, match=r"evil\.bin: unsafe or corrupt pickle: refusing .*\.system"):
        read_verification_bin(tmp_path / "evil.bin")
    assert not (tmp_path / "evil_was_here").exists()
    (tmp_path / "odd.bin").write_bytes(pickle.dumps(([b"x"], [True, False])))
    with pytest.raises(DatasetFormatError, match="1 images for 2 pairs"):
        read_verification_bin(tmp_path / "odd.bin")


def test_cosface_hand_computed() -> None:
    loss_fn = CosFaceLoss(3, 2, scale=10.0, margin=0.5)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]))
    emb = torch.tensor([[3.0, 0.0]])  # cosines 1, 0, -1
    loss = loss_fn(emb, torch.tensor([0]))
    expected = F.cross_entropy(torch.tensor([[10 * 0.5, 0.0, -10.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    spec = next(s for s in builtin_tasks() if s.name == "recognition_ms1mv3")
    assert spec.num_identities == 93431 and spec.embedding_dim == 512


def reference_verification(dist: np.ndarray, same: np.ndarray, folds: int = 10) -> float:
    """InsightFace's calculate_roc accuracy, written with loops."""
    thresholds = np.arange(0, 4, 0.01)
    n = len(dist)
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    accs, start = [], 0
    for size in sizes:
        test = np.arange(start, start + size)
        train = np.setdiff1d(np.arange(n), test)
        start += size
        train_acc = [np.mean((dist[train] < t) == same[train]) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        accs.append(np.mean((dist[test] < best) == same[test]))
    return float(np.mean(accs))


def test_verification_accuracy_hand_computed() -> None:
    m = VerificationMetric()
    a = torch.eye(4)[[0, 1, 2, 3] * 5]
    same = torch.tensor([True, False] * 10)
    b = torch.where(same[:, None], a, torch.eye(4)[[1, 2, 3, 0] * 5])
    m.update_pairs(a, b, same)
    assert m.compute()["verification_accuracy"] == 1.0
    assert kfold_slices(23, 10)[0] == slice(0, 3) and kfold_slices(23, 10)[-1] == slice(21, 23)


@given(st.integers(10, 60), st.integers(1, 9), st.integers(0, 2**31))
@settings(max_examples=25, deadline=None)
def test_verification_matches_reference_and_is_batch_independent(n: int, step: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=-1)
    same = torch.rand(n, generator=g) < 0.5
    noise = torch.randn(n, 8, generator=g, dtype=torch.float64)
    b = F.normalize(torch.where(same[:, None], a + 0.6 * noise, noise), dim=-1)
    pairs = VerificationMetric()
    pairs.update_pairs(a, b, same)
    images = VerificationMetric()  # image rows in shuffled batches, paired through meta
    emb = torch.stack([a, b], 1).reshape(2 * n, 8)
    key = torch.randperm(2 * n, generator=g)
    for i in range(0, 2 * n, step):
        k = key[i : i + step]
        images.update(emb[k], same[k // 2], {"pair": k // 2, "side": k % 2})
    dist = ((a - b) ** 2).sum(1).numpy()
    expected = reference_verification(dist, same.numpy())
    assert pairs.compute()["verification_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert images.compute() == pytest.approx(pairs.compute(), abs=1e-12)
    assert 0 <= expected <= 1
