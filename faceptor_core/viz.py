"""Pictures of results: landmark and parsing overlays, labelled prediction cards, loss curves (Pillow only)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from . import predictions as P
from .drawing import draw_landmarks, overlay_parsing, palette, scaled_points

__all__ = [
    "contact_sheet",
    "draw_landmarks",
    "face_lines",
    "overlay_parsing",
    "palette",
    "photo_overlay",
    "plot_curves",
    "prediction_card",
]


def prediction_card(
    image: np.ndarray, preds: Mapping[str, P.Prediction], index: int = 0, scale: int = 1
) -> Image.Image:
    """One image with every task's prediction drawn (area fills under marks) and each one's caption below."""
    img = Image.fromarray(image)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    for pred in sorted(preds.values(), key=lambda p: p.layer):
        img = pred.draw(img, index, scale)
    lines = [f"{name}: {c}" for name, pred in preds.items() if (c := pred.caption(index)) is not None]
    if not lines:
        return img
    card = Image.new("RGB", (img.width, img.height + 12 * len(lines) + 4), "white")
    card.paste(img, (0, 0))
    d = ImageDraw.Draw(card)
    for i, line in enumerate(lines):
        d.text((3, img.height + 2 + 12 * i), line, fill=(0, 0, 0))
    return card


def contact_sheet(cards: Sequence[Image.Image], columns: int = 4, pad: int = 4) -> Image.Image:
    """Lay images out on a grid."""
    if not cards:
        raise ValueError("contact_sheet needs at least one image")
    w = max(c.width for c in cards)
    h = max(c.height for c in cards)
    rows = math.ceil(len(cards) / columns)
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), (235, 235, 235))
    for i, c in enumerate(cards):
        r, col = divmod(i, columns)
        sheet.paste(c, (pad + col * (w + pad), pad + r * (h + pad)))
    return sheet


#: The colour of :func:`plot_curves`' marks.
MARK_GREY = (128, 128, 128)


def plot_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str = "",
    size: tuple[int, int] = (720, 400),
    log_y: bool = True,
    marks: Mapping[str, float] | None = None,
) -> Image.Image:
    """A line chart of ``{name: [(x, y), ...]}`` (log-scale y by default), with a dashed grey vertical line at each x
    of ``marks`` (``{label: x}``, e.g. where a training stage starts) inside the plotted range, labelled above the
    frame, where no curve runs."""
    width, height = size
    left, right, top, bottom = 60, 170, 28 + (14 if marks else 0), 36
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y) and (y > 0 or not log_y)]
    d.text((left, 8), title, fill=(0, 0, 0))
    if not pts:
        return img
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xs, ys = [p[0] for p in pts], [fy(p[1]) for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def to_x(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return to_x(x), height - bottom - (fy(y) - y0) / (y1 - y0) * (height - top - bottom)

    d.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + frac * (y1 - y0)
        label = f"{10**yv:.3g}" if log_y else f"{yv:.3g}"
        py = height - bottom - frac * (height - top - bottom)
        d.text((4, py - 6), label, fill=(0, 0, 0))
        xv = x0 + frac * (x1 - x0)
        d.text((left + frac * (width - left - right) - 10, height - bottom + 6), f"{xv:.0f}", fill=(0, 0, 0))
    for label, xm in (marks or {}).items():
        if not x0 <= xm <= x1:
            continue
        px = to_x(xm)
        for ya in range(top, height - bottom, 8):
            d.line([(px, ya), (px, min(ya + 4, height - bottom))], fill=MARK_GREY, width=1)
        d.text((px - _text_width(d, label) / 2, top - 14), label, fill=MARK_GREY)
    colours = palette(len(series) + 1)[1:]
    for k, (name, s) in enumerate(series.items()):
        line = [to_px(x, y) for x, y in s if math.isfinite(y) and (y > 0 or not log_y)]
        colour = tuple(int(c) for c in colours[k])
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        d.rectangle([width - right + 10, top + 14 * k + 3, width - right + 20, top + 14 * k + 11], fill=colour)
        d.text((width - right + 24, top + 14 * k), name[:22], fill=(0, 0, 0))
    return img


def _text_width(d: ImageDraw.ImageDraw, text: str) -> int:
    left, _, right, _ = d.textbbox((0, 0), text)
    return right - left


def face_lines(face, names: Sequence[str] | None = None) -> list[str]:
    """Text lines describing one analysed face (values with their units)."""
    head = f"#{face.index + 1}"
    if face.score is not None:
        head += f"  score {face.score:.2f}"
    if face.flags:
        head += "  [" + ", ".join(face.flags) + "]"
    lines = [head]
    for name, r in face.tasks.items():
        if names is not None and name not in names:
            continue
        line = r.summary()
        if line is not None:
            lines.append(f"  {name}: {line}")
    return lines


def photo_overlay(image: np.ndarray, result, max_side: int = 2048) -> Image.Image:
    """An analysed photo: parsing colours (first parsing task), every face's box with its number, its five
    points and landmarks, then a panel with each face's values (with units) and the parsing legend."""
    h, w = image.shape[:2]
    canvas = image
    parsing_task = next(iter(result.parsing), None)
    if parsing_task is not None:
        pm = result.parsing[parsing_task]
        canvas = overlay_parsing(image, pm.labels, max(len(pm.label_names), int(pm.labels.max()) + 1))
    img = Image.fromarray(canvas)
    scale = min(max_side / max(h, w), max(1.0, 256 / max(h, w)))
    if scale != 1:
        img = img.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.NEAREST if scale > 1 else Image.BILINEAR
        )
    d = ImageDraw.Draw(img)
    colours = palette(len(result.faces) + 2)[2:]
    lw = max(1, round(min(img.size) / 300))
    for f in result.faces:
        c = tuple(int(v) for v in colours[f.index % len(colours)])
        x1, y1, x2, y2 = ((np.asarray(f.box) + 0.5) * scale).tolist()
        d.rectangle([x1, y1, x2, y2], outline=c, width=lw)
        label = f"{f.index + 1}"
        tw = _text_width(d, label)
        d.rectangle([x1, y1 - 12, x1 + tw + 4, y1], fill=c)
        d.text((x1 + 2, y1 - 12), label, fill=(0, 0, 0))
        for r in f.tasks.values():
            r.draw(img, scale, x2 - x1)
        if f.points is not None:
            draw_landmarks(img, scaled_points(f.points, scale), colour=c, radius=max(1.5, (x2 - x1) / 60))
    lines = [f"{result.name}: {len(result.faces)} face(s)" if result.faces else f"{result.name}: no face found"]
    for f in result.faces:
        lines += face_lines(f)
    legend: list[tuple[tuple[int, int, int], str]] = []
    if parsing_task is not None:
        pm = result.parsing[parsing_task]
        cols = palette(max(len(pm.label_names), 2))
        legend = [(tuple(int(v) for v in cols[k]), n) for k, n in enumerate(pm.label_names) if k > 0]
        lines.append(f"{parsing_task} classes:")
    width = max([img.width, 260] + [_text_width(d, t) + 8 for t in lines])
    height = img.height + 14 * len(lines) + 14 * ((len(legend) + 2) // 3) + 8
    card = Image.new("RGB", (width, height), "white")
    card.paste(img, (0, 0))
    cd = ImageDraw.Draw(card)
    y = img.height + 4
    for t in lines:
        cd.text((4, y), t, fill=(0, 0, 0))
        y += 14
    col_w = max(86, width // 3)
    for k, (c, n) in enumerate(legend):
        x, yy = 4 + (k % 3) * col_w, y + 14 * (k // 3)
        cd.rectangle([x, yy + 2, x + 9, yy + 11], fill=c)
        cd.text((x + 13, yy), n, fill=(0, 0, 0))
    return card
