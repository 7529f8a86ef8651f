"""A render cache for SynthFaces: rendered samples kept on disk, so that tasks, stages and evaluations that read the
same images paint each one once.

Every SynthFaces task reads the same images (index ``i`` of a split is one picture with all its labels), so a run of
six tasks over two stages draws the same training images many times: the demo draws 78,000 and paints about
20,000 of them with the cache. Reading one back costs a file read; painting it, about 2 ms of a core
(docs/synthfaces.md).

Layout: ``<root>/<key>/<index>.bin``, one file a sample, written to a temporary name and renamed into place, so data
workers of several tasks can fill one cache together. The key names the generator's settings and a fingerprint of
its first samples' bytes: a generator that paints differently (another version of the library) gets a folder of
its own instead of reading stale images. A file of the wrong size or checksum is painted again and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from .generator import SynthFaces, SynthSample
from .labels import SYNTH_ATTRIBUTES
from .pose import HeadPose

#: Bumped when the file layout changes (it is part of every cache folder's name).
FORMAT = 1
#: Samples whose bytes make up a generator's fingerprint.
FINGERPRINT_SAMPLES = 4


class _Layout:
    """The byte layout of one sample at ``size`` pixels (little-endian), and a CRC-32 of it at the end."""

    def __init__(self, size: int):
        n_attr = len(SYNTH_ATTRIBUTES)
        self.fields = (
            ("image", np.dtype("u1"), (size, size, 3)),
            ("parsing", np.dtype("u1"), (size, size)),
            ("landmarks", np.dtype("<f4"), (68, 2)),
            ("visible", np.dtype("?"), (68,)),
            ("attributes", np.dtype("<i8"), (n_attr,)),
            ("gaze", np.dtype("<f4"), (2,)),
            ("floats", np.dtype("<f8"), (6,)),  # age, yaw, roll, scale, shift x, shift y
            ("ints", np.dtype("<i8"), (2,)),  # expression, identity
        )
        self.payload = sum(d.itemsize * int(np.prod(s)) for _, d, s in self.fields)
        self.nbytes = self.payload + 4

    def encode(self, s: SynthSample) -> bytes:
        p = s.pose
        values = {
            "image": s.image,
            "parsing": s.parsing,
            "landmarks": s.landmarks,
            "visible": s.visible,
            "attributes": s.attributes,
            "gaze": s.gaze,
            "floats": [s.age, p.yaw, p.roll, p.scale, p.shift[0], p.shift[1]],
            "ints": [s.expression, s.identity],
        }
        parts = []
        for name, dtype, shape in self.fields:
            a = np.asarray(values[name])
            if a.shape != shape:
                raise ValueError(f"SynthFaces render cache: {name} has shape {a.shape}, expected {shape}")
            parts.append(np.ascontiguousarray(a, dtype).tobytes())
        payload = b"".join(parts)
        return payload + zlib.crc32(payload).to_bytes(4, "little")

    def decode(self, data: bytes) -> SynthSample | None:
        """The sample in ``data``, or None when its size or checksum is wrong."""
        if len(data) != self.nbytes:
            return None
        if zlib.crc32(data[: self.payload]) != int.from_bytes(data[self.payload :], "little"):
            return None
        out, at = {}, 0
        for name, dtype, shape in self.fields:
            count = int(np.prod(shape))
            out[name] = np.frombuffer(data, dtype, count, at).reshape(shape).astype(dtype.newbyteorder("="))
            at += count * dtype.itemsize
        age, yaw, roll, scale, sx, sy = out["floats"].tolist()
        expression, identity = out["ints"].tolist()
        return SynthSample(
            image=out["image"],
            landmarks=out["landmarks"],
            visible=out["visible"],
            parsing=out["parsing"],
            age=age,
            expression=expression,
            attributes=out["attributes"],
            identity=identity,
            gaze=out["gaze"],
            pose=HeadPose(yaw, roll, scale, (sx, sy)),
        )


def cache_key(generator: SynthFaces, layout: _Layout | None = None) -> str:
    """The folder name of ``generator``'s samples: its settings and a fingerprint of its first samples' bytes
    (encoded by ``layout``, the generator's own by default)."""
    layout = layout or _Layout(generator.size)
    digest = hashlib.sha256()
    for i in range(FINGERPRINT_SAMPLES):
        digest.update(layout.encode(generator.sample(i)))
    g = generator
    settings = f"s{g.seed}-{g.size}px-{g.num_identities}ids-from{g.identity_offset}"
    settings += f"-v{g.variation:g}-e{int(g.effects)}-o{g.occlusion:g}"
    return f"f{FORMAT}-{settings}-{digest.hexdigest()[:16]}"


class RenderCache:
    """``generator``'s samples kept under ``root`` (:func:`cache_key` names the folder); :meth:`sample` reads one back
    or paints and stores it. Picklable: data workers each open the same folder."""

    def __init__(self, generator: SynthFaces, root: str | os.PathLike):
        self.generator = generator
        self.layout = _Layout(generator.size)
        self.folder = Path(root) / cache_key(generator, self.layout)
        self._writable = True

    @property
    def num_identities(self) -> int:
        return self.generator.num_identities

    def path(self, index: int) -> Path:
        return self.folder / f"{index}.bin"

    def sample(self, index: int) -> SynthSample:
        """Sample ``index`` as ``generator.sample(index)`` gives it."""
        path = self.path(index)
        try:
            cached = self.layout.decode(path.read_bytes())
        except OSError:  # not there yet, or the folder cannot be read: paint it
            cached = None
        if cached is not None:
            return cached
        s = self.generator.sample(index)
        if self._writable:
            self._store(path, s)
        return s

    def _store(self, path: Path, s: SynthSample) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(self.layout.encode(s))
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk: keep painting, stop writing
            self._writable = False
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            warnings.warn(
                f"SynthFaces render cache {self.folder}: cannot write ({exc}); painting every image instead",
                stacklevel=2,
            )
