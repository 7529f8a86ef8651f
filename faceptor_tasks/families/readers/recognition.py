"""Readers of face-recognition data without mxnet: InsightFace RecordIO (``train.rec``/``train.idx``) and
verification ``.bin`` files (read with a restricted unpickler, never executing arbitrary pickles).

RecordIO (dmlc): each record is ``uint32 magic 0xced7230a``, ``uint32 lrecord`` (upper 3 bits: continuation
flag, lower 29: length), the payload, zero padding to 4 bytes. A payload is an ``IRHeader`` (``<IfQQ``:
flag, label, id, id2), then ``flag`` float32 labels when ``flag > 0``, then the encoded image. Record 0 is a
header whose labels ``(a, b)`` say that images are records ``1 .. a-1`` and identities ``b - a``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ..common import DatasetFormatError, FaceDataset, Skip, decode_image

RECORDIO_MAGIC = 0xCED7230A
IR_HEADER = struct.Struct("<IfQQ")
_WORD = struct.Struct("<II")
_IDX_FILE = re.compile(r"(?:[ \t]*(?:\d+[ \t]+\d+[ \t]*)?\r?\n)*(?:[ \t]*\d+[ \t]+\d+[ \t]*)?")


def read_idx(path: str | os.PathLike, skip_invalid: bool = False, skipped: list[Skip] | None = None) -> np.ndarray:
    """``train.idx`` lines ``index<TAB>offset`` -> ``K x 2`` int64 (sorted by index)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise DatasetFormatError(path, 0, "index file not found") from None
    if _IDX_FILE.fullmatch(text):  # well-formed: parse in one go
        arr = np.array(text.split(), dtype=np.int64).reshape(-1, 2)
        return arr[np.argsort(arr[:, 0], kind="stable")]
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            rows.append((int(fields[0]), int(fields[1])))
        except ValueError:
            if not skip_invalid:
                raise DatasetFormatError(path, lineno, f"expected 'index<TAB>offset', got {line.strip()!r}") from None
            if skipped is not None:
                skipped.append((str(path), lineno, "malformed index line"))
    arr = np.asarray(rows, np.int64).reshape(-1, 2)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def read_record(f: io.BufferedIOBase, offset: int, name: str = "train.rec") -> bytes:
    """The payload of the record at ``offset`` (joining multi-part records)."""
    f.seek(offset)
    out = bytearray()
    while True:
        head = f.read(8)
        if len(head) != 8:
            raise DatasetFormatError(name, 0, f"record at offset {offset}: truncated header")
        magic, lrec = _WORD.unpack(head)
        if magic != RECORDIO_MAGIC:
            raise DatasetFormatError(name, 0, f"record at offset {offset}: bad magic 0x{magic:08x}")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        data = f.read((length + 3) & ~3)
        if len(data) < length:
            raise DatasetFormatError(name, 0, f"record at offset {offset}: truncated payload")
        out += data[:length]
        if cflag in (0, 3):
            return bytes(out)
        out += struct.pack("<I", RECORDIO_MAGIC)


def unpack_record(payload: bytes, name: str = "train.rec") -> tuple[int, np.ndarray, int, int, bytes]:
    """``IRHeader`` + image bytes -> ``(flag, labels, id, id2, image_bytes)``; ``labels`` has >= 1 value."""
    if len(payload) < IR_HEADER.size:
        raise DatasetFormatError(name, 0, "record shorter than its IRHeader")
    flag, label, id1, id2 = IR_HEADER.unpack_from(payload)
    body = payload[IR_HEADER.size :]
    if flag > 0:
        if len(body) < 4 * flag:
            raise DatasetFormatError(name, 0, f"record {id1}: {flag} labels announced, payload too short")
        labels = np.frombuffer(body[: 4 * flag], dtype="<f4").copy()
        body = body[4 * flag :]
    else:
        labels = np.asarray([label], np.float32)
    return flag, labels, id1, id2, body


class RecordIODataset(FaceDataset):
    """InsightFace ``train.rec``/``train.idx`` (e.g. MS1MV3): raw items ``{"image", "target": identity}``."""

    def __init__(self, root: str, transform: Callable | None = None, skip_invalid: bool = False):
        super().__init__([], transform, skip_invalid, name="recordio")
        self.rec_path = os.path.join(root, "train.rec")
        self.idx_path = os.path.join(root, "train.idx")
        if not os.path.isfile(self.rec_path):
            raise DatasetFormatError(self.rec_path, 0, "RecordIO file not found")
        idx = read_idx(self.idx_path, skip_invalid, self.skipped)
        self._idx_keys, self._idx_offsets = idx[:, 0].copy(), idx[:, 1].copy()
        self._fh: Any = None
        self._pid = -1
        header = unpack_record(self._payload(0), self.rec_path) if self._has(np.asarray([0]))[0] else None
        if header is not None and header[0] > 0 and len(header[1]) >= 2:
            first, end = int(header[1][0]), int(header[1][1])
            self.keys = np.arange(1, first, dtype=np.int64)
            self.num_identities = end - first
        else:
            self.keys = self._idx_keys[self._idx_keys != 0]
            self.num_identities = 0
        present = self._has(self.keys)
        if not present.all():
            missing = self.keys[~present]
            if not skip_invalid:
                raise DatasetFormatError(self.idx_path, 0, f"{len(missing)} record(s) missing, first {missing[0]}")
            self.skipped += [(self.idx_path, 0, f"record {k} missing") for k in missing.tolist()]
            self.keys = self.keys[present]

    def _has(self, keys: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._idx_keys, keys).clip(max=max(len(self._idx_keys) - 1, 0))
        return (self._idx_keys[pos] == keys) if len(self._idx_keys) else np.zeros(len(keys), bool)

    def _payload(self, key: int) -> bytes:
        if self._fh is None or self._pid != os.getpid():  # one handle per (worker) process
            self._fh, self._pid = open(self.rec_path, "rb"), os.getpid()  # noqa: SIM115 - kept open
        offset = int(self._idx_offsets[np.searchsorted(self._idx_keys, key)])
        return read_record(self._fh, offset, self.rec_path)

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fh"], state["_pid"] = None, -1
        return state

    def raw(self, index: int) -> dict[str, Any]:
        key = int(self.keys[index])
        _, labels, *_, img = unpack_record(self._payload(key), self.rec_path)
        try:
            image = decode_image(img, f"{self.rec_path}[{key}]")
        except DatasetFormatError as exc:
            raise DatasetFormatError(self.rec_path, 0, f"record {key}: {exc.reason}") from None
        return {"image": image, "target": int(labels[0]), "meta": {}}


# -- verification .bin ---------------------------------------------------------------------------------
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
    ("_codecs", "encode"),  # how pickle protocol 2 stores bytes under Python 3
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that loads only builtin containers/bytes/bools/numbers and numpy arrays.

    Every global is refused except numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``,
    ``_frombuffer`` for protocol 5, ``scalar`` for numpy bool scalars) and ``_codecs.encode`` (protocol-2
    bytes), so a pickle cannot call ``os.system`` or anything else.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def read_verification_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """An InsightFace verification ``.bin``: ``(list of encoded images, issame list)``; image ``2i`` and
    ``2i + 1`` form pair ``i``. Raises :class:`DatasetFormatError` naming the file on anything unexpected."""
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetFormatError(path, 0, "verification file not found") from None
    except pickle.UnpicklingError as exc:
        raise DatasetFormatError(path, 0, f"unsafe or corrupt pickle: {exc}") from None
    except Exception as exc:
        raise DatasetFormatError(path, 0, f"cannot unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DatasetFormatError(path, 0, "expected a (images, issame) pair")
    bins, issame = obj
    images = []
    for i, b in enumerate(bins):
        if isinstance(b, np.ndarray) and b.dtype == np.uint8:
            b = b.tobytes()
        if not isinstance(b, (bytes, bytearray)):
            raise DatasetFormatError(path, 0, f"image {i} is {type(b).__name__}, not bytes")
        images.append(bytes(b))
    same = np.asarray([bool(s) for s in issame], dtype=bool)
    if len(images) != 2 * len(same):
        raise DatasetFormatError(path, 0, f"{len(images)} images for {len(same)} pairs")
    return images, same


class VerificationDataset(FaceDataset):
    """Pairs of a verification ``.bin`` (image ``2i`` and ``2i + 1`` form pair ``i``).

    Raw item ``i``: ``{"image": first image, "image_b": second image, "target": issame (0/1),
    "meta": {"pair": i}}``. With a transform each image goes through it and the item is
    ``{"image_a", "image_b", "issame", "target", "meta"}`` (what the evaluation loop scores as pairs).
    """

    def __init__(self, path: str, transform: Callable | None = None, skip_invalid: bool = False):
        super().__init__([], transform, skip_invalid, name=os.path.basename(path))
        self.path = path
        self.images, self.issame = read_verification_bin(path)

    def __len__(self) -> int:
        return len(self.issame)

    def _decode(self, index: int) -> np.ndarray:
        try:
            return decode_image(self.images[index], f"{self.path}[{index}]")
        except DatasetFormatError as exc:
            raise DatasetFormatError(self.path, 0, f"image {index}: {exc.reason}") from None

    def raw(self, index: int) -> dict[str, Any]:
        return {
            "image": self._decode(2 * index),
            "image_b": self._decode(2 * index + 1),
            "target": int(self.issame[index]),
            "meta": {"pair": index},
        }

    def finish(self, item: dict[str, Any]) -> Any:
        if self.transform is None:
            return item
        a = self.transform({"image": item["image"], "target": item["target"], "meta": {}})
        b = self.transform({"image": item["image_b"], "target": item["target"], "meta": {}})
        return {
            "image_a": a["image"],
            "image_b": b["image"],
            "issame": bool(item["target"]),
            "target": a["target"],
            "meta": dict(item["meta"]),
        }
