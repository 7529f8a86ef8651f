"""Pictures of results: landmark and parsing overlays, labelled prediction cards, loss curves (Pillow only)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from . import predictions as P


def palette(n: int) -> np.ndarray:
    """``n x 3`` uint8 distinct colours; class 0 (background) is black."""
    colours = [(0, 0, 0)]
    for k in range(1, n):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours[:n], dtype=np.uint8)


def overlay_parsing(image: np.ndarray, labels: np.ndarray, num_classes: int | None = None,
                    alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over ``image`` (H x W x 3 uint8); background stays as it is."""
    n = int(num_classes or labels.max() + 1)
    colours = palette(max(n, 2))[labels.clip(0, n - 1)]
    mask = (labels > 0)[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return np.where(mask, blended, image).astype(np.uint8)


def draw_landmarks(img: Image.Image, points: np.ndarray, colour=(0, 255, 0), radius: float | None = None) -> None:
    """Draw points (N x 2 pixel coordinates, pixel centres at integers) onto ``img`` in place."""
    d = ImageDraw.Draw(img)
    r = radius if radius is not None else max(1.0, min(img.size) / 80)
    for x, y in np.asarray(points, dtype=np.float64):
        d.ellipse([x - r + 0.5, y - r + 0.5, x + r + 0.5, y + r + 0.5], fill=colour)


def prediction_card(image: np.ndarray, preds: Mapping[str, P.Prediction], index: int = 0,
                    scale: int = 1) -> Image.Image:
    """One image with every task's prediction drawn: parsing colours, landmarks, and text lines."""
    canvas = image
    lines = []
    for pred in preds.values():
        if isinstance(pred, P.ParsingPrediction):
            canvas = overlay_parsing(canvas, pred.labels[index].cpu().numpy(), len(pred.label_names) or None)
    img = Image.fromarray(canvas)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    for name, pred in preds.items():
        if isinstance(pred, P.LandmarkPrediction):
            draw_landmarks(img, (pred.points[index].cpu().numpy() + 0.5) * scale - 0.5)
        elif isinstance(pred, P.AgePrediction):
            lines.append(f"{name}: {float(pred.age[index]):.1f} y")
        elif isinstance(pred, P.ClassificationPrediction):
            k = int(pred.labels[index])
            label = pred.label_names[k] if pred.label_names else str(k)
            lines.append(f"{name}: {label} ({float(pred.probabilities[index, k]):.2f})")
        elif isinstance(pred, P.MultilabelPrediction):
            on = [n for n, p in zip(pred.label_names, pred.probabilities[index].tolist(), strict=False) if p > 0.5]
            lines.append(f"{name}: {', '.join(on[:4]) or '-'}")
        elif isinstance(pred, P.RegressionPrediction):
            lines.append(f"{name}: " + ", ".join(f"{v:.2f}" for v in pred.values[index].tolist()[:4]))
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


def plot_curves(series: Mapping[str, Sequence[tuple[float, float]]], title: str = "",
                size: tuple[int, int] = (720, 400), log_y: bool = True) -> Image.Image:
    """A line chart of ``{name: [(x, y), ...]}`` (log-scale y by default)."""
    width, height = size
    left, right, top, bottom = 60, 170, 28, 36
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

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (fy(y) - y0) / (y1 - y0) * (height - top - bottom)
        return px, py

    d.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + frac * (y1 - y0)
        label = f"{10 ** yv:.3g}" if log_y else f"{yv:.3g}"
        py = height - bottom - frac * (height - top - bottom)
        d.text((4, py - 6), label, fill=(0, 0, 0))
        xv = x0 + frac * (x1 - x0)
        d.text((left + frac * (width - left - right) - 10, height - bottom + 6), f"{xv:.0f}", fill=(0, 0, 0))
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
    from .photo import results as R

    head = f"#{face.index + 1}"
    if face.score is not None:
        head += f"  score {face.score:.2f}"
    if face.flags:
        head += "  [" + ", ".join(face.flags) + "]"
    lines = [head]
    for name, r in face.tasks.items():
        if names is not None and name not in names:
            continue
        if isinstance(r, R.AgeResult):
            lines.append(f"  {name}: {r.age:.1f} years")
        elif isinstance(r, R.ClassificationResult):
            lines.append(f"  {name}: {r.label} (p={r.probabilities[r.label]:.2f})")
        elif isinstance(r, R.MultilabelResult):
            lines.append(f"  {name}: {', '.join(r.positive[:5]) or '-'}{' ...' if len(r.positive) > 5 else ''}")
        elif isinstance(r, R.RegressionResult):
            lines.append(f"  {name}: " + ", ".join(f"{k}={v:.3g}" for k, v in list(r.values.items())[:4]))
        elif isinstance(r, R.LandmarksResult):
            lines.append(f"  {name}: {len(r.points)} points (px)")
        elif isinstance(r, R.ParsingResult):
            lines.append(f"  {name}: {sum(r.class_pixels().values())} face px")
        elif isinstance(r, R.EmbeddingResult):
            lines.append(f"  {name}: {r.embedding.shape[-1]}-d embedding")
    return lines


def photo_overlay(image: np.ndarray, result, max_side: int = 2048) -> Image.Image:
    """An analysed photo: parsing colours (first parsing task), every face's box with its number, its five
    points and landmarks, then a panel with each face's values (with units) and the parsing legend."""
    from .photo import results as R

    h, w = image.shape[:2]
    canvas = image
    parsing_task = next(iter(result.parsing), None)
    if parsing_task is not None:
        pm = result.parsing[parsing_task]
        canvas = overlay_parsing(image, pm.labels, max(len(pm.label_names), int(pm.labels.max()) + 1))
    img = Image.fromarray(canvas)
    scale = min(max_side / max(h, w), max(1.0, 256 / max(h, w)))
    if scale != 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                         Image.NEAREST if scale > 1 else Image.BILINEAR)
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
            if isinstance(r, R.LandmarksResult):
                draw_landmarks(img, (r.points + 0.5) * scale - 0.5, colour=(0, 255, 0),
                               radius=max(1.0, (x2 - x1) / 120))
        if f.points is not None:
            draw_landmarks(img, (f.points + 0.5) * scale - 0.5, colour=c, radius=max(1.5, (x2 - x1) / 60))
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
