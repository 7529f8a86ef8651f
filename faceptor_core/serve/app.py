"""The HTTP service: a FastAPI app around one loaded model, a :class:`~faceptor_core.serve.batcher.Batcher`
and the prediction record builder of ``faceptor predict``.

Endpoints (docs/serving.md): ``POST /v1/analyze`` (JSON, base64 photos), ``POST /v1/analyze/upload``
(multipart), ``GET /v1/model`` (the model card), ``GET /v1/schema/prediction``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` (Prometheus text) and ``GET /openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import platform
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..detect import DetectorError, run_detector
from ..photo.analyze import analyze
from ..photo.records import SCHEMA_NAME, SCHEMA_VERSION, photo_record, prediction_schema, task_info
from ..registry import TaskNotFoundError, default_registry
from .batcher import Batcher, Job, ServiceStopping, run_batch
from .inputs import ApiError, Parsed, decode_photo, parse_json, parse_multipart, read_body
from .metrics import Metrics
from .schemas import (
    API_KEY_ENV,
    ErrorResponse,
    ServeConfig,
    analyze_response_schema,
    record_components,
    request_schema,
    upload_schema,
)

CONFIG_ENV = "FACEPTOR_SERVE_CONFIG"  # a ServeConfig as JSON, for worker processes started by uvicorn


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Service:
    """One loaded model and what serving it needs; :func:`create_app` wires it to HTTP."""

    def __init__(self, config: ServeConfig, model: Any = None):
        from ..build import load
        from ..checkpoint import MANIFEST, WEIGHTS

        self.config = config
        self.model = (
            model if model is not None else load(config.checkpoint, map_location=config.device, addons=config.addons)
        )
        self.model.eval()
        options = {} if config.min_score is None else {"score_threshold": config.min_score}
        self.detector = None if config.detector is None else default_registry().detector(config.detector, **options)
        self.metrics = Metrics()
        self.batcher = Batcher(self._run, config.max_batch, config.max_wait_ms / 1000.0, self.metrics)
        self.decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceptor-decode")
        ckpt = Path(config.checkpoint)
        self.hashes = {"weights_sha256": _sha256(ckpt / WEIGHTS), "manifest_sha256": _sha256(ckpt / MANIFEST)}

    # -- analysis ------------------------------------------------------------------------------------
    def _analyze(self, images: list, tasks: tuple[str, ...] | None, faces: list) -> list:
        # Faces are known before queueing (given, or found by the detector while decoding); without a
        # detector, photos without given faces are whole faces.
        return analyze(
            self.model,
            images,
            list(tasks) if tasks else None,
            detector=None,
            faces=faces,
            min_face=self.config.min_face,
        )

    def _run(self, jobs: list[Job]) -> list:
        return run_batch(self._analyze, jobs)

    def check_tasks(self, tasks: list[str] | None) -> tuple[str, ...] | None:
        if tasks is None:
            return None
        if not tasks:
            raise ApiError(422, "invalid_request", "tasks: name at least one task, or leave it out for all", "tasks")
        names = tuple(dict.fromkeys(tasks))
        try:
            self.model.select(list(names))
        except TaskNotFoundError as exc:
            raise ApiError(422, "unknown_task", str(exc), "tasks") from None
        return names

    def prepare(self, parsed: Parsed, tasks: tuple[str, ...] | None) -> list[Job]:
        """Decode and check every photo of a request and find its faces (runs before queueing)."""
        jobs = []
        for p in parsed.photos:
            image, given = decode_photo(p, self.config.max_faces)
            if given is not None or self.detector is None:
                jobs.append(Job(image, p.name, p.faces, None, tasks))
                continue
            try:
                found = run_detector(self.detector, image, self.config.detector)
            except DetectorError as exc:
                raise ApiError(422, "detection_failed", f"{p.field} ({p.name}): {exc}", p.field) from None
            if len(found) > self.config.max_faces:
                raise ApiError(
                    422,
                    "too_many_faces",
                    f"{p.field} ({p.name}): {len(found)} faces detected, the limit is {self.config.max_faces}",
                    p.field,
                )
            jobs.append(Job(image, p.name, found, self.config.detector, tasks))
        return jobs

    async def analyze_request(self, parsed: Parsed) -> dict[str, Any]:
        if len(parsed.photos) > self.config.max_photos:
            raise ApiError(
                422,
                "too_many_photos",
                f"{len(parsed.photos)} photos in one request, the limit is {self.config.max_photos}",
                "photos",
            )
        tasks = self.check_tasks(parsed.tasks)
        jobs = await asyncio.get_running_loop().run_in_executor(self.decoder, self.prepare, parsed, tasks)
        try:
            results = await self.batcher.submit(jobs)
        except ServiceStopping:
            raise ApiError(503, "shutting_down", "the service is shutting down; retry on another instance") from None
        self.metrics.photos.inc(len(results))
        self.metrics.faces.inc(sum(len(r.faces) for r in results))
        return {
            "records": [
                photo_record(r, model=self.model, source=j.name, embeddings=parsed.embeddings)
                for r, j in zip(results, jobs, strict=True)
            ]
        }

    # -- access and description ----------------------------------------------------------------------
    def check_key(self, request: Request) -> None:
        key = self.config.api_key
        if not key:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), key.encode()):
            raise ApiError(
                401, "unauthorized", "a valid API key is needed (header 'X-API-Key' or 'Authorization: Bearer <key>')"
            )

    def card(self) -> dict[str, Any]:
        import fastapi
        import torch
        import uvicorn

        heads = self.model.config.tasks
        info = task_info(self.model)
        tasks = [
            {
                "name": h.name,
                **info[h.name],
                "head_type": h.head_type,
                "label_names": list(h.label_names),
                **({"embedding_dim": h.embedding_dim} if h.output == "embedding" else {}),
            }
            for h in heads
        ]
        c = self.config
        return {
            "checkpoint": {"path": str(Path(c.checkpoint).resolve()), **self.hashes, "addons": list(c.addons)},
            "encoder": self.model.config.encoder.name,
            "input_sizes": sorted({h.input_size for h in heads}),
            "tasks": tasks,
            "faces": {"detector": c.detector, "min_score": c.min_score, "min_face": c.min_face},
            "batching": {"max_batch": c.max_batch, "max_wait_ms": c.max_wait_ms},
            "limits": {"max_upload_bytes": c.max_upload_bytes, "max_photos": c.max_photos, "max_faces": c.max_faces},
            "record_schema": {"name": SCHEMA_NAME, "version": SCHEMA_VERSION},
            "versions": {
                "faceptor": __version__,
                "torch": torch.__version__,
                "fastapi": fastapi.__version__,
                "uvicorn": uvicorn.__version__,
                "python": platform.python_version(),
            },
        }


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": None}}, status, headers=headers)


ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 413, 415, 422, 503)}


def create_app(config: ServeConfig, model: Any = None) -> FastAPI:
    """The app serving ``config.checkpoint`` (or an already loaded ``model``)."""
    service = Service(config, model)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        try:
            yield
        finally:
            await service.batcher.stop()
            service.decoder.shutdown(wait=True)

    app = FastAPI(
        title="Faceptor",
        version=__version__,
        lifespan=lifespan,
        description="Every task of one Faceptor model for every face of your photos. Answers are "
        "prediction records, the JSON that `faceptor predict` writes.",
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return _error(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}".splitlines()[0])

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        t0 = time.perf_counter()
        response = await call_next(request)
        path = getattr(request.scope.get("route"), "path", "unmatched")
        service.metrics.requests.inc(endpoint=path, status=str(response.status_code))
        if path.startswith("/v1/analyze"):
            service.metrics.latency.observe(time.perf_counter() - t0)
        return response

    analyze_doc = {
        "responses": {
            200: {
                "description": "one prediction record per photo",
                "content": {"application/json": {"schema": analyze_response_schema()}},
            },
            **ERRORS,
        },
        "response_class": JSONResponse,
    }

    @app.post(
        "/v1/analyze",
        summary="Analyse photos sent as JSON (base64)",
        **analyze_doc,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalyzeRequest"}}},
            }
        },
    )
    async def analyze_json(request: Request) -> JSONResponse:
        service.check_key(request)
        body = await read_body(request, config.max_upload_bytes)
        return JSONResponse(await service.analyze_request(parse_json(body)))

    @app.post(
        "/v1/analyze/upload",
        summary="Analyse uploaded photo files (multipart/form-data)",
        **analyze_doc,
        openapi_extra={
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": upload_schema()}}}
        },
    )
    async def analyze_upload(request: Request) -> JSONResponse:
        service.check_key(request)
        body = await read_body(request, config.max_upload_bytes)
        parsed = await parse_multipart(request, body, config.max_photos)
        return JSONResponse(await service.analyze_request(parsed))

    @app.get(
        "/v1/model",
        summary="The model card: tasks, label names, input sizes, checkpoint hashes, versions",
        responses={401: {"model": ErrorResponse}},
    )
    async def model_card(request: Request) -> dict[str, Any]:
        service.check_key(request)
        return service.card()

    @app.get("/v1/schema/prediction", summary="The JSON Schema of a prediction record")
    async def record_schema() -> dict[str, Any]:
        return prediction_schema()

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the model is loaded and the batcher takes photos")
    async def readyz() -> JSONResponse:
        ready = service.batcher.running
        return JSONResponse({"status": "ready" if ready else "not_ready"}, 200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics (text format 0.0.4)", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            req = request_schema()
            schemas.update(req.pop("$defs", {}))
            schemas["AnalyzeRequest"] = req
            schemas.update(record_components())
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app for a worker process: its settings come as JSON in ``FACEPTOR_SERVE_CONFIG``."""
    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV])
    if config.api_key is None and os.environ.get(API_KEY_ENV):
        config = config.model_copy(update={"api_key": os.environ[API_KEY_ENV]})
    return create_app(config)
