"""Render docs/crops.jpg: where each built-in task's crop lies on a photo (scikit-image's astronaut, faces
found by YuNet) and the crops themselves, with the template points each crop aligns the face to (for a tanh-warped
crop, the outline on the photo is its affine part: the warp squeezes the rest of the photo into the border).

    python benchmarks/render_crops.py            # writes docs/crops.jpg
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

import faceptor_core
from faceptor_core.crop import cut
from faceptor_core.geometry import apply_affine, invert_affine, resize_matrix
from faceptor_core.photo.analyze import face_crop_matrix
from faceptor_core.photo.faces import from_detections
from faceptor_core.viz import palette
from faceptor_core.warp import warp_points

TASKS = [
    "recognition_ms1mv3",
    "attributes_celeba",
    "age_morph2",
    "parsing_lapa",
    "parsing_celebamask_hq",
    "landmarks_300w",
    "synth_age",
]
SHOW = 150


def main() -> None:
    photo = skimage.data.astronaut()
    face = from_detections(faceptor_core.default_registry().detector("yunet").detect(photo))[0]
    colours = [tuple(int(v) for v in c) for c in palette(len(TASKS) + 1)[1:]]
    scene = Image.fromarray(photo)
    d = ImageDraw.Draw(scene)
    tiles = []
    for task, colour in zip(TASKS, colours, strict=True):
        spec = faceptor_core.get_task(task)
        size = spec.input_size
        m = face_crop_matrix(spec.crop, size, face, photo.shape[:2])
        corners = apply_affine(
            np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]]), invert_affine(m)
        )
        d.polygon([tuple(p + 0.5) for p in corners], outline=colour, width=3)
        crop = Image.fromarray(cut(photo, m, spec.crop, size)).resize((SHOW, SHOW), Image.BILINEAR)
        cd = ImageDraw.Draw(crop)
        fw, fh = spec.crop.frame
        if spec.crop.method == "points":
            where = apply_affine(np.asarray(spec.crop.template), resize_matrix(int(fh), int(fw), size))
            if spec.crop.warp_factor > 0:  # the template is where the aligned face lands before the warp
                where = warp_points(where, np.eye(2, 3), spec.crop.warp_factor, size)
            for x, y in where:
                x, y = (x + 0.5) * SHOW / size, (y + 0.5) * SHOW / size
                cd.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour, width=2)
        tile = Image.new("RGB", (SHOW, SHOW + 30), "white")
        tile.paste(crop, (0, 0))
        td = ImageDraw.Draw(tile)
        td.rectangle([0, SHOW, 8, SHOW + 8], fill=colour)
        td.text((11, SHOW - 1), task, fill=(0, 0, 0))
        fill = f", fills {spec.crop.box_scale:g}" if spec.crop.method == "box" else ""
        warp = f", tanh {spec.crop.warp_factor:g}" if spec.crop.warp_factor else ""
        how = f"{spec.crop.method}, {size} px{fill}{warp}"
        td.text((11, SHOW + 13), how, fill=(90, 90, 90))
        tiles.append(tile)
    for x, y in face.points:
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(255, 255, 0))
    scene = scene.crop((40, 0, 440, 330))
    sheet = Image.new("RGB", (scene.width + 4 * (SHOW + 6) + 6, max(scene.height, 2 * (SHOW + 36)) + 6), "white")
    sheet.paste(scene, (3, 3))
    for k, tile in enumerate(tiles):
        r, c = divmod(k, 4)
        sheet.paste(tile, (scene.width + 9 + c * (SHOW + 6), 3 + r * (SHOW + 36)))
    out = Path(__file__).resolve().parents[1] / "docs" / "crops.jpg"
    sheet.save(out, quality=88)
    print(out)


if __name__ == "__main__":
    main()
