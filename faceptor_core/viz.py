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
