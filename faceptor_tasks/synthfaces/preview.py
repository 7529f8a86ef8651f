"""Contact sheet of SynthFaces: faces with their landmarks, beside their parsing maps, with captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .dataset import split_generator
from .generator import SynthSample
from .labels import EXPRESSIONS, SYNTH_ATTRIBUTES

#: Display colours of the 11 LaPa classes (background transparent).
CLASS_COLOURS = np.array(
    [
        (0, 0, 0),
        (255, 200, 120),
        (0, 90, 255),
        (0, 200, 255),
        (40, 255, 40),
        (180, 255, 0),
        (255, 255, 0),
        (255, 0, 120),
        (120, 0, 60),
        (255, 90, 0),
        (160, 60, 255),
    ],
    np.uint8,
)
CAPTION_LINES = 3
CAPTION = 12 * CAPTION_LINES + 2


def overlay(sample: SynthSample, alpha: float = 0.55) -> np.ndarray:
    """The image with the parsing map blended over every non-background pixel."""
    img = sample.image.astype(np.float32)
    fg = sample.parsing > 0
    img[fg] = (1 - alpha) * img[fg] + alpha * CLASS_COLOURS[sample.parsing[fg]]
    return img.astype(np.uint8)


def caption(sample: SynthSample, width: int = 40) -> list[str]:
    """``id, age, expression`` then the attributes that are on (but No_Beard and Young), wrapped."""
    hidden = ("No_Beard", "Young")
    on = [a for a, v in zip(SYNTH_ATTRIBUTES, sample.attributes, strict=True) if v and a not in hidden]
    lines, line = [f"id {sample.identity}, {sample.age:.0f} y, {EXPRESSIONS[sample.expression]}"], ""
    for a in on:
        if line and len(line) + 1 + len(a) > width:
            lines.append(line)
            line = ""
        line = f"{line} {a}".strip()
    return [*lines, line][:CAPTION_LINES]


def card(sample: SynthSample, scale: int = 1) -> Image.Image:
    """Image with landmarks (green: visible, red: occluded) | parsing overlay, and two caption lines."""
    h, w = sample.image.shape[:2]
    left = Image.fromarray(sample.image).resize((w * scale, h * scale), Image.NEAREST)
    right = Image.fromarray(overlay(sample)).resize((w * scale, h * scale), Image.NEAREST)
    out = Image.new("RGB", (2 * w * scale, h * scale + CAPTION), (255, 255, 255))
    out.paste(left, (0, 0))
    out.paste(right, (w * scale, 0))
    d = ImageDraw.Draw(out)
    r = max(1, scale)
    for (x, y), vis in zip((sample.landmarks + 0.5) * scale, sample.visible, strict=True):
        d.ellipse((x - r, y - r, x + r - 1, y + r - 1), fill=(0, 255, 0) if vis else (255, 0, 0))
    for i, text in enumerate(caption(sample, width=2 * w * scale // 6)):
        d.text((3, h * scale + 1 + 12 * i), text, fill=(0, 0, 0))
    return out


def make_preview(
    out_path: str | Path,
    count: int = 16,
    size: int = 112,
    seed: int = 0,
    columns: int = 4,
    scale: int = 1,
    split: str = "train",
    palette: bool = False,
) -> Path:
    """Write a contact sheet of ``count`` faces (PNG, or any format Pillow infers from the suffix);
    ``palette`` reduces it to 256 colours (a much smaller PNG, e.g. for documentation)."""
    gen, offset = split_generator(split, size, seed)
    cards = [card(gen.sample(offset + i), scale) for i in range(count)]
    cw, ch = cards[0].size
    rows = -(-count // columns)
    sheet = Image.new(
        "RGB", (min(count, columns) * cw + 4 * (columns - 1), rows * ch + 4 * (rows - 1)), (255, 255, 255)
    )
    for i, c in enumerate(cards):
        sheet.paste(c, ((i % columns) * (cw + 4), (i // columns) * (ch + 4)))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    sheet.save(out_path, optimize=True) if out_path.suffix.lower() == ".png" else sheet.save(out_path)
    return out_path
