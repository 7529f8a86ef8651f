"""What the service takes and gives: its settings, the JSON request body, errors, and the OpenAPI document.

Answers are prediction records (``faceptor_core/schemas/prediction.schema.json``, the format ``faceptor predict``
writes); the OpenAPI document embeds that one schema rather than restating it.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..photo.records import prediction_schema

#: Name of the prediction record (and its parts) among the OpenAPI document's component schemas.
RECORD = "PredictionRecord"
API_KEY_ENV = "FACEPTOR_API_KEY"


class ServeConfig(BaseModel):
    """Settings of one server process (what ``faceptor serve`` takes)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    addons: tuple[str, ...] = ()
    detector: str | None = "yunet"  # None: every photo is one face, already cropped
    min_score: float | None = None
    min_face: float = 32.0
    max_batch: int = Field(16, ge=1)  # photos per model pass
    max_wait_ms: float = Field(10.0, ge=0)  # how long a batch waits for more photos
    max_upload_bytes: int = Field(20 << 20, ge=1)  # one request's body
    max_photos: int = Field(16, ge=1)  # photos per request
    max_faces: int = Field(32, ge=1)  # faces per photo (given or detected)
    api_key: str | None = None
    device: str = "cpu"


class FaceIn(BaseModel):
    """A face to use instead of detecting: a box, five points, or both (pixels of the photo)."""

    model_config = ConfigDict(extra="forbid")

    box: list[float] | None = Field(None, description="[x1, y1, x2, y2]", min_length=4, max_length=4)
    points: list[list[float]] | None = Field(
        None, description="five [x, y]: eyes, nose, mouth corners", min_length=5, max_length=5
    )
    score: float | None = None


class PhotoIn(BaseModel):
    """One photo of a JSON request."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="the encoded image file (JPEG, PNG, ...), base64")
    name: str | None = Field(None, description="the photo's name in the answer (default photo<i>)")
    faces: list[FaceIn] | None = Field(None, description="faces to use instead of detecting (null: detect)")


class AnalyzeRequest(BaseModel):
    """``POST /v1/analyze``: photos as base64, the tasks to run (default all), embeddings in or out."""

    model_config = ConfigDict(extra="forbid")

    photos: list[PhotoIn] = Field(min_length=1)
    tasks: list[str] | None = Field(None, description="task names (GET /v1/model lists them); default: all")
    embeddings: bool = Field(True, description="include identity embeddings (else only their dimension)")


class ErrorBody(BaseModel):
    code: str = Field(description="a stable code, e.g. not_an_image, unknown_task, too_many_faces")
    message: str = Field(description="one line saying what was wrong and where")
    field: str | None = Field(None, description="the request part at fault, e.g. photos[1].data")


class ErrorResponse(BaseModel):
    error: ErrorBody


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                f"#/components/schemas/{prefix}{v.removeprefix('#/$defs/')}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rewrite_refs(v, prefix)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def record_components() -> dict[str, Any]:
    """The prediction record's JSON Schema as OpenAPI components: the record as :data:`RECORD`, each of its
    ``$defs`` as ``PredictionRecord_<name>`` (references rewritten; nothing else changed)."""
    schema = copy.deepcopy(prediction_schema())
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    prefix = RECORD + "_"
    out = {RECORD: _rewrite_refs(schema, prefix)}
    out.update({prefix + k: _rewrite_refs(v, prefix) for k, v in defs.items()})
    return out


def analyze_response_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": {
                "type": "array",
                "items": {"$ref": f"#/components/schemas/{RECORD}"},
                "description": "one prediction record per photo, in order",
            }
        },
    }


def request_schema() -> dict[str, Any]:
    """The JSON request body's schema, its parts as OpenAPI components."""
    return AnalyzeRequest.model_json_schema(ref_template="#/components/schemas/{model}")


def upload_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["photo"],
        "properties": {
            "photo": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "one or more image files (the field repeated)",
            },
            "tasks": {"type": "string", "description": "task names separated by commas or spaces; default: all"},
            "faces": {
                "type": "string",
                "description": "JSON: one entry per photo, a list of faces ({box, points}) or null to detect",
            },
            "embeddings": {"type": "string", "enum": ["true", "false"], "default": "true"},
        },
    }
