"""``faceptor predict``: photos, folders or globs in; per photo a JSON record, parsing maps and an overlay."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..durable import write_atomic


def _save_png(path: Path, array: np.ndarray) -> None:
    """A uint8 (8-bit grey) or uint16 (16-bit grey) array as a PNG, atomically."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(array))
    write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))


def load_faces_file(path: str, photos: list[Path], given_as: dict[Path, str], stems: dict[Path, Path]) -> dict:
    """``--faces FILE``: a JSON object ``{photo: [face, ...]}``; a photo is named as given on the command line,
    by its path relative to the inputs' common folder, or by its file name when that is unique. Every face is
    checked here, before any photo is analysed; errors (``ValueError``) name the file, the photo and the field."""
    from .faces import parse_faces

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read faces file ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{photo: [faces]}}, got {type(data).__name__}")
    keys: dict[str, Path] = {}
    names: dict[str, list[Path]] = {}
    for p in photos:
        for k in (given_as[p], str(p), str(stems[p].parent / p.name), str(stems[p])):
            keys.setdefault(k, p)
        names.setdefault(p.name, []).append(p)
    out: dict[Path, Any] = {}
    for key, faces in data.items():
        photo = keys.get(key) or (names[key][0] if len(names.get(key, [])) == 1 else None)
        if photo is None:
            why = "names several photos" if len(names.get(key, [])) > 1 else "names none of the photos"
            raise ValueError(f"{path}: key {key!r} {why}")
        if not isinstance(faces, list):
            raise ValueError(f"{path}: {key!r}: expected a list of faces, got {type(faces).__name__}")
        parse_faces(faces, f"{path}: {key}")
        out[photo] = faces
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    from ..build import load
    from ..images import ImageDecodeError, read_image
    from ..viz import photo_overlay
    from .analyze import analyze
    from .outputs import OutputPlanError, check_plan, expand_inputs, output_stems
    from .records import dumps, photo_record

    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    found = expand_inputs(args.inputs, out_dir)
    for arg in found.unmatched:
        print(f"error: {arg}: no such file or folder, and no file matches it", file=sys.stderr)
    if found.skipped_in_out:
        print(
            f"note: skipped {found.skipped_in_out} picture(s) an earlier run wrote in the output folder {out_dir}",
            file=sys.stderr,
        )
    if not found.photos:
        print("error: no photos to predict", file=sys.stderr)
        return 2
    stems = output_stems(found.photos)
    try:
        given = load_faces_file(args.faces, found.photos, found.given_as, stems) if args.faces else {}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..checkpoint import CheckpointError
    from ..detect import DetectorError
    from ..registry import DetectorNotFoundError, TaskNotFoundError, default_registry

    try:
        model = load(args.checkpoint, addons=args.addon or ())
        heads = model.select(args.tasks)
        if not args.no_detect:
            default_registry().detector(
                args.detector, **({} if args.min_score is None else {"score_threshold": args.min_score})
            )
    except (CheckpointError, TaskNotFoundError, DetectorNotFoundError, DetectorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parsing_tasks = [h.name for h in heads if h.output == "segmentation"]
    plan: dict[Path, dict[str, Any]] = {}
    for p in found.photos:
        stem = out_dir / stems[p]
        files: dict[str, Any] = {"json": stem.parent / (stem.name + ".json")}
        if not args.no_overlay:
            files["overlay"] = stem.parent / (stem.name + ".overlay.png")
        files["parsing"] = {
            t: {
                "label_map": stem.parent / f"{stem.name}.{t}.png",
                "face_map": stem.parent / f"{stem.name}.{t}.faces.png",
            }
            for t in parsing_tasks
        }
        plan[p] = files
    try:
        check_plan(
            {
                p: [
                    f["json"],
                    *([f["overlay"]] if "overlay" in f else []),
                    *(x for m in f["parsing"].values() for x in m.values()),
                ]
                for p, f in plan.items()
            },
            found.photos,
        )
    except OutputPlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detector = None if args.no_detect else args.detector
    options = {} if args.min_score is None else {"score_threshold": args.min_score}
    failed = written = done = 0
    for start in range(0, len(found.photos), args.batch):
        chunk, images = [], []
        for p in found.photos[start : start + args.batch]:
            try:
                images.append(read_image(p))
                chunk.append(p)
            except ImageDecodeError as exc:
                print(f"error: {found.given_as[p]}: {exc.reason}", file=sys.stderr)
                failed += 1
        if not chunk:
            continue
        faces = [given.get(p) for p in chunk] if given else None
        results = analyze(model, images, args.tasks, detector, faces, min_face=args.min_face, detector_options=options)
        for p, image, result in zip(chunk, images, results, strict=True):
            result.name = found.given_as[p]
            files = plan[p]
            wrote = []
            rel = {"overlay": None, "parsing": {}}
            for t, pm in result.parsing.items():
                _save_png(files["parsing"][t]["label_map"], pm.labels)
                _save_png(files["parsing"][t]["face_map"], (pm.faces.astype(np.int32) + 1).astype(np.uint16))
                rel["parsing"][t] = {
                    k: os.path.relpath(v, files["json"].parent) for k, v in files["parsing"][t].items()
                }
                wrote += list(files["parsing"][t].values())
            if "overlay" in files:
                card = photo_overlay(image, result)
                write_atomic(files["overlay"], lambda tmp, c=card: c.save(tmp, format="PNG"))
                rel["overlay"] = os.path.relpath(files["overlay"], files["json"].parent)
                wrote.append(files["overlay"])
            record = photo_record(
                result, model=model, source=found.given_as[p], files=rel, embeddings=not args.no_embeddings
            )
            text = dumps(record)
            write_atomic(files["json"], text.encode("utf-8"))
            wrote.insert(0, files["json"])
            written += len(wrote)
            done += 1
            n = len(result.faces)
            print(f"{found.given_as[p]}: {n} face{'s' if n != 1 else ''} -> {', '.join(map(str, wrote))}")
    print(f"wrote {written} files for {done} photo(s) in {out_dir}" + (f"; {failed} photo(s) failed" if failed else ""))
    return 1 if failed or found.unmatched else 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="every face of photos: a JSON record, parsing maps and an overlay per photo",
        description="Detect the faces of each photo, crop each face as each task was trained, and "
        "write per photo: OUT/<name>.json (docs/predictions.md), parsing label maps and "
        "an overlay. Outputs mirror the inputs' paths relative to their common folder.",
    )
    p.add_argument("inputs", nargs="+", metavar="PHOTO", help="photo files, folders (searched recursively) or globs")
    p.add_argument("--checkpoint", required=True, help="a Faceptor checkpoint directory")
    p.add_argument("--tasks", nargs="+", help="tasks to run (default: all of the checkpoint's)")
    p.add_argument(
        "--addon", action="append", help="prompt-tuning add-on directory to load on top; repeatable (default: none)"
    )
    p.add_argument("--out", default="predictions", help="output folder")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--faces",
        metavar="FILE",
        help="JSON {photo: [{box, points}, ...]} of faces to use instead of "
        "detecting (photos it does not name are detected; default: "
        "detect every face)",
    )
    how.add_argument("--no-detect", action="store_true", help="each photo is one face, already cropped")
    p.add_argument("--detector", default="yunet", help="registered face detector")
    p.add_argument("--min-score", type=float, help="detector score threshold (YuNet default 0.7)")
    p.add_argument("--min-face", type=float, default=32.0, help="faces smaller than this (px) are flagged 'small'")
    p.add_argument("--no-embeddings", action="store_true", help="leave identity embeddings out of the JSON")
    p.add_argument("--no-overlay", action="store_true", help="do not draw the overlay pictures")
    p.add_argument("--batch", type=int, default=8, help="photos analysed together")
    p.set_defaults(func=cmd_predict)
