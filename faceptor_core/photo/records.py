"""The prediction record of one photo: a JSON document following a versioned schema.

The schema is ``faceptor_core/schemas/prediction.schema.json`` (documented in docs/predictions.md). The
command line writes one record per photo; a service returns the same records. Bump :data:`SCHEMA_VERSION`
on any change that could break a reader (a removed or renamed field, a changed meaning or unit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .analyze import task_crop
from .results import PhotoResult

SCHEMA_ID = "https://faceptor.dev/schemas/prediction.schema.json"
SCHEMA_NAME = "faceptor.prediction"
SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def prediction_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a prediction record."""
    text = (resources.files("faceptor_core") / "schemas" / "prediction.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _round(values: np.ndarray, digits: int = 3) -> list:
    return np.round(np.asarray(values, np.float64), digits).tolist()


def task_info(model: Any, tasks: Any = None) -> dict[str, dict[str, Any]]:
    """What a record says about each task of ``model`` (or those named in ``tasks``): family, output, input size
    and crop."""
    out = {}
    for head in model.config.tasks:
        if tasks and head.name not in tasks:
            continue
        crop = task_crop(head)
        out[head.name] = {
            "family": head.family,
            "output": head.output,
            "input_size": head.input_size,
            "crop": {"method": crop.method, "source": crop.source},
        }
    return out


def photo_record(
    result: PhotoResult,
    *,
    model: Any = None,
    source: str | None = None,
    files: Mapping[str, Any] | None = None,
    embeddings: bool = True,
) -> dict[str, Any]:
    """The JSON-ready record of one analysed photo.

    Args:
        result: one item of :func:`faceptor_core.analyze`'s output.
        model: the model that produced it (adds each task run: family, output, input size and crop).
        source: the photo as the caller names it (default: ``result.name``).
        files: files written beside the record (``overlay``, and per parsing task ``label_map`` and
            ``face_map``), as paths relative to the record.
        embeddings: include identity embeddings (else only their dimension).
    """
    faces = []
    for f in result.faces:
        face: dict[str, Any] = {
            "index": f.index,
            "box": _round(f.box),
            "score": None if f.score is None else round(float(f.score), 6),
            "points": None if f.points is None else _round(f.points),
            "source": f.face.source,
            "flags": list(f.flags),
            "tasks": {name: r.to_json(embeddings=embeddings) for name, r in f.tasks.items()},
        }
        faces.append(face)
    files = dict(files or {})
    parsing = {}
    for name, pm in result.parsing.items():
        written = files.get("parsing", {}).get(name, {})
        parsing[name] = {
            "labels": list(pm.label_names),
            "label_map": written.get("label_map"),
            "face_map": written.get("face_map"),
        }
    record: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "photo": {"source": source or result.name, "width": result.width, "height": result.height},
        "faces_from": result.faces_from,
        "faces": faces,
        "parsing": parsing,
        "files": {"overlay": files.get("overlay")},
    }
    if model is not None:
        record["tasks"] = task_info(model, result.tasks)
    return record


_NUMBERS = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")


def dumps(record: dict[str, Any]) -> str:
    """A record as indented JSON with each list of numbers (a point, a box, an embedding) on one line."""
    return _NUMBERS.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(record, indent=1))
