"""``faceptor serve``: the HTTP service on uvicorn (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

MISSING = (
    "error: `faceptor serve` needs the serve extra: pip install 'faceptor[serve]' (fastapi, uvicorn, python-multipart)"
)


def cmd_serve(args: argparse.Namespace) -> int:
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{MISSING}; missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    import uvicorn
    from pydantic import ValidationError

    from ..checkpoint import CheckpointError, read_manifest
    from ..detect import DetectorError
    from ..registry import DetectorNotFoundError
    from .app import CONFIG_ENV, create_app
    from .schemas import API_KEY_ENV, ServeConfig

    try:
        config = ServeConfig(
            checkpoint=args.checkpoint,
            addons=tuple(args.addon or ()),
            detector=None if args.no_detect else args.detector,
            min_score=args.min_score,
            min_face=args.min_face,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
            max_photos=args.max_photos,
            max_faces=args.max_faces,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            device=args.device,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"error: --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    run = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": args.graceful_timeout,
    }
    try:
        if args.workers == 1:
            app = create_app(config)
        else:  # each worker process loads the model itself; check the checkpoint here first
            read_manifest(config.checkpoint)
    except (CheckpointError, DetectorNotFoundError, DetectorError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers == 1:
        uvicorn.run(app, **run)
    else:
        os.environ[CONFIG_ENV] = config.model_dump_json()
        uvicorn.run("faceptor_core.serve.app:app_from_env", factory=True, workers=args.workers, **run)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="an HTTP service: every task for every face, requests batched together",
        description="Serve a checkpoint over HTTP (docs/serving.md). Photos from concurrent requests "
        "are analysed together: one model pass per input size for all their faces.",
    )
    p.add_argument("checkpoint", help="a Faceptor checkpoint directory")
    p.add_argument(
        "--addon", action="append", help="prompt-tuning add-on directory to load on top; repeatable (default: none)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own model")
    p.add_argument("--max-batch", type=int, default=16, help="photos per model pass")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits for more photos, ms")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--detector", default="yunet", help="registered face detector")
    how.add_argument("--no-detect", action="store_true", help="photos without given faces are one face each")
    p.add_argument("--min-score", type=float, help="detector score threshold (YuNet default 0.7)")
    p.add_argument("--min-face", type=float, default=32.0, help="faces smaller than this (px) are flagged 'small'")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body, MiB")
    p.add_argument("--max-photos", type=int, default=16, help="photos per request")
    p.add_argument("--max-faces", type=int, default=32, help="faces per photo, given or detected")
    p.add_argument(
        "--api-key",
        help="require this key (header X-API-Key or Authorization: Bearer); default: $FACEPTOR_API_KEY, else no key",
    )
    p.add_argument("--device", default="cpu", help="torch device of the model")
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds in-flight requests get to finish on shutdown",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level",
    )
    p.set_defaults(func=cmd_serve)
