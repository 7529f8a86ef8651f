"""Requests -> ready photos: body size limits, JSON / multipart parsing, base64, image decoding, given faces,
detection and the face limit. Every refusal is an :class:`ApiError` (a 4xx with a one-line message)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from ..images import ImageDecodeError, decode_image
from ..photo import faces as FA
from .schemas import AnalyzeRequest, FaceIn


class ApiError(Exception):
    """A request the service refuses: HTTP status, a stable code, a one-line message and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass
class PhotoIn:
    """One photo of a request, not yet decoded."""

    data: bytes
    name: str
    faces: list[dict[str, Any]] | None
    field: str


@dataclass
class Parsed:
    photos: list[PhotoIn]
    tasks: list[str] | None
    embeddings: bool


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _pydantic_error(exc: ValidationError, where: str = "") -> ApiError:
    err = exc.errors()[0]
    loc = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "json_invalid":
        return ApiError(
            400,
            "malformed_json",
            f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})".replace(" ()", ""),
        )
    return ApiError(422, "invalid_request", f"{loc or 'body'}: {err['msg']}", loc or None)


def _b64(data: str, field: str) -> bytes:
    if data.startswith("data:") and "," in data:  # a data: URL
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "malformed_base64", f"{field}: not valid base64 ({exc})", field) from None


def parse_json(body: bytes) -> Parsed:
    if not body.strip():
        raise ApiError(400, "empty_body", 'the request body is empty; send JSON {"photos": [{"data": base64}]}')
    try:
        req = AnalyzeRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _pydantic_error(exc) from None
    photos = [
        PhotoIn(
            _b64(p.data, f"photos[{i}].data"),
            p.name or f"photo{i}",
            None if p.faces is None else [f.model_dump(exclude_none=True) for f in p.faces],
            f"photos[{i}]",
        )
        for i, p in enumerate(req.photos)
    ]
    return Parsed(photos, req.tasks, req.embeddings)


_FACES = TypeAdapter(list[list[FaceIn] | None])


def _flag(value: str, field: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ApiError(422, "invalid_request", f"{field}: expected true or false, got {value!r}", field)


async def parse_multipart(request: Request, body: bytes, max_photos: int) -> Parsed:
    """Fields: ``photo`` (files, repeated), ``tasks`` (names split by commas or spaces), ``faces`` (JSON, one
    entry per photo) and ``embeddings``."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"upload photos as multipart/form-data (got {ctype or 'no content type'}); JSON goes to POST /v1/analyze",
        )
    if not body:
        raise ApiError(400, "empty_body", "the request body is empty; send one or more 'photo' files")
    sent = False

    async def replay() -> Mapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(
            max_files=max_photos + 1, max_fields=64, max_part_size=len(body) + 1
        )
    except Exception as exc:  # Starlette's multipart errors (malformed parts, too many files)
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        if "Too many files" in detail:
            raise ApiError(
                422, "too_many_photos", f"more photos in one request than the limit of {max_photos}", "photo"
            ) from None
        raise ApiError(400, "malformed_multipart", f"cannot read the multipart body ({detail})") from None
    try:
        files = form.getlist("photo")
        if not files:
            raise ApiError(422, "invalid_request", "no 'photo' file in the upload", "photo")
        photos = []
        for i, f in enumerate(files):
            if isinstance(f, str):
                raise ApiError(422, "invalid_request", f"photo[{i}]: expected a file, got a text field", "photo")
            photos.append(PhotoIn(await f.read(), f.filename or f"photo{i}", None, f"photo[{i}]"))
        tasks = [t for v in form.getlist("tasks") for t in re.split(r"[,\s]+", str(v)) if t] or None
        embeddings = _flag(str(form["embeddings"]), "embeddings") if "embeddings" in form else True
        if "faces" in form:
            try:
                faces = _FACES.validate_json(str(form["faces"]))
            except ValidationError as exc:
                raise _pydantic_error(exc, "faces") from None
            if len(faces) != len(photos):
                raise ApiError(
                    422,
                    "invalid_request",
                    f"faces: one entry per photo needed ({len(photos)} photo(s), {len(faces)} entries)",
                    "faces",
                )
            for p, fs in zip(photos, faces, strict=True):
                p.faces = None if fs is None else [f.model_dump(exclude_none=True) for f in fs]
        return Parsed(photos, tasks, embeddings)
    finally:
        await form.close()


def decode_photo(photo: PhotoIn, max_faces: int) -> tuple[Any, list[FA.Face] | None]:
    """A photo's pixels and its given faces (checked), or a 4xx."""
    if not photo.data:
        raise ApiError(400, "empty_photo", f"{photo.field} ({photo.name}): the photo is empty", photo.field)
    try:
        image = decode_image(photo.data, photo.name)
    except ImageDecodeError as exc:
        if "too large" in exc.reason:
            raise ApiError(413, "image_too_large", f"{photo.field}: {exc}", photo.field) from None
        raise ApiError(422, "not_an_image", f"{photo.field}: {exc}", photo.field) from None
    given = None
    if photo.faces is not None:
        try:
            given = FA.parse_faces(photo.faces, f"{photo.field} ({photo.name})")
        except ValueError as exc:
            raise ApiError(422, "invalid_faces", str(exc), f"{photo.field}.faces") from None
        if len(given) > max_faces:
            raise ApiError(
                422,
                "too_many_faces",
                f"{photo.field} ({photo.name}): {len(given)} faces given, the limit is {max_faces}",
                f"{photo.field}.faces",
            )
    return image, given
