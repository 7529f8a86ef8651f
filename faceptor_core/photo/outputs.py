"""Where ``faceptor predict`` writes: input expansion (files, folders, globs) and collision-free output names.

Outputs mirror the inputs' paths relative to their common folder, so photos with the same file name in
different folders never share a result; two photos of one folder that differ only by extension keep their
extension in the name. No output may be an input (checked before anything is written).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FaceptorError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2"}


class OutputPlanError(FaceptorError, ValueError):
    """Outputs that would overwrite an input or each other; nothing has been written."""


@dataclass
class Inputs:
    """Photos found (resolved, in order, each once), arguments that matched nothing, and files skipped."""

    photos: list[Path] = field(default_factory=list)
    given_as: dict[Path, str] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    skipped_in_out: int = 0  # pictures of an earlier run found in the output folder


_OUTPUT_PICTURE = re.compile(r"(overlay|[a-z][a-z0-9_]*(\.faces)?)\.png")


def is_earlier_output(path: Path, out_dir: Path | None) -> bool:
    """A picture this command wrote before (``X.overlay.png``, ``X.<task>.png``, ``X.<task>.faces.png`` beside
    an ``X.json``) inside the output folder."""
    if out_dir is None or out_dir not in path.parents:
        return False
    name = path.name
    return any(
        _OUTPUT_PICTURE.fullmatch(name[i + 1 :]) and (path.parent / (name[:i] + ".json")).is_file()
        for i, c in enumerate(name)
        if c == "." and i > 0
    )


def expand_inputs(args: Sequence[str], out_dir: str | os.PathLike | None = None) -> Inputs:
    """Files as given; folders searched recursively for images; anything else as a glob (``**`` allowed).
    Pictures an earlier run wrote into ``out_dir`` that a folder or a glob finds are skipped and counted."""
    out = Path(out_dir).resolve() if out_dir is not None else None
    found = Inputs()

    def add(p: Path, given: str) -> None:
        p = p.resolve()
        if p not in found.given_as:
            found.photos.append(p)
            found.given_as[p] = given

    def add_dir(d: Path) -> None:
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                if is_earlier_output(p.resolve(), out):
                    found.skipped_in_out += 1
                else:
                    add(p, str(p))

    for arg in args:
        p = Path(arg)
        if p.is_file():
            add(p, arg)
        elif p.is_dir():
            add_dir(p)
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                found.unmatched.append(arg)
            for m in map(Path, matches):
                if m.is_dir():
                    add_dir(m)
                elif m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES:
                    if is_earlier_output(m.resolve(), out):
                        found.skipped_in_out += 1
                    else:
                        add(m, str(m))
    return found


def output_stems(photos: Sequence[Path]) -> dict[Path, Path]:
    """Each photo's output stem: its path relative to the photos' common folder, without the extension (with
    it, for photos of one folder whose names differ only by extension or case)."""
    if not photos:
        return {}
    base = Path(os.path.commonpath([str(p.parent) for p in photos]))
    rel = {p: p.relative_to(base) for p in photos}
    counts: dict[str, int] = {}
    for r in rel.values():
        key = str(r.with_suffix("")).casefold()
        counts[key] = counts.get(key, 0) + 1
    return {p: (r.with_suffix("") if counts[str(r.with_suffix("")).casefold()] == 1 else r) for p, r in rel.items()}


def check_plan(planned: dict[Path, list[Path]], inputs: Sequence[Path]) -> None:
    """Refuse outputs that are an input photo or that two photos share (case-insensitively, for file systems
    that ignore case)."""
    taken: dict[str, Path] = {}
    ins = {str(p.resolve()).casefold(): p for p in inputs}
    for photo, paths in planned.items():
        for o in paths:
            key = str(o.resolve()).casefold()
            if key in ins:
                raise OutputPlanError(f"output {o} would overwrite the input photo {ins[key]}; choose another --out")
            if key in taken:
                raise OutputPlanError(f"photos {taken[key]} and {photo} would both write {o}")
            taken[key] = photo
