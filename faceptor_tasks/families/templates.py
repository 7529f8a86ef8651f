"""Face crops of the built-in datasets, as :class:`~faceptor_core.crop.CropSpec` declarations.

Each template is where a dataset's aligned images put the face; a photo's face aligned onto it is cropped
as that dataset's training images were. Coordinates are pixels of the dataset's frame, pixel centres at
integers (a value ``v`` of a 1-based or continuous-coordinate source is written ``v - 1`` or ``v - 0.5``).
"""

from __future__ import annotations

import numpy as np

from faceptor_core.crop import CropSpec

#: InsightFace's ``arcface_dst``: the 112 x 112 alignment of MS1MV3 and of the verification ``.bin`` sets
#: (OpenCV warp, pixel centres at integers).
ARCFACE_POINTS_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
ARCFACE_CROP = CropSpec(
    template=ARCFACE_POINTS_112,
    frame=(112.0, 112.0),
    source="InsightFace arcface_dst, 112 x 112 (MS1MV3 and the verification sets)",
)

#: CelebA's "Align&Cropped" images (178 x 218): a non-reflective similarity puts the eyes and the mouth centre
#: at (70.745, 112), (108.237, 112), (89.432, 153.514), 1-based (the CelebA authors' align_face_celeba.m).
CELEBA_ALIGN_POINTS = ((69.745, 111.0), (107.237, 111.0), (88.432, 152.514))
CELEBA_ALIGN_CROP = CropSpec(
    anchors="eyes_mouth",
    template=CELEBA_ALIGN_POINTS,
    frame=(178.0, 218.0),
    source="CelebA Align&Cropped (178 x 218, align_face_celeba.m), resized to the input",
)


def celeba_hq_points(eyes_mouth: np.ndarray | None = None, size: int = 1024) -> np.ndarray:
    """Where CelebA-HQ's crop rule puts a face whose eyes and mouth centre are ``eyes_mouth`` (default: the
    CelebA alignment template).

    The rule (Karras et al. 2018, ``dataset_tool.py create_celebahq``; FFHQ uses the same): the square of side
    ``2 max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)`` centred at ``eye_avg + 0.1 eye_to_mouth``, oriented along
    ``eye_to_eye - rot90(eye_to_mouth)``, resampled to ``size``. Applied to CelebA's own mean face (its
    alignment template), it gives the mean position of the eyes and mouth in a CelebA-HQ image; in continuous
    coordinates (the rule adds 0.5 to CelebA's pixel indices), returned as pixel indices.
    """
    lm = np.asarray(CELEBA_ALIGN_POINTS if eyes_mouth is None else eyes_mouth, np.float64) + 0.5
    eye_avg, mouth = (lm[0] + lm[1]) / 2, lm[2]
    e2e, e2m = lm[1] - lm[0], mouth - eye_avg
    x = e2e - np.array([-e2m[1], e2m[0]])
    x = x / np.hypot(*x) * max(np.hypot(*e2e) * 2.0, np.hypot(*e2m) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + e2m * 0.1
    origin = c - x - y  # the quad's top-left corner maps to (0, 0); x and y span half the side each
    basis = np.stack([x, y], axis=1) * 2 / size  # crop unit vectors in source pixels
    out = np.linalg.solve(basis, (lm - origin).T).T
    return out - 0.5


CELEBA_HQ_CROP = CropSpec(
    anchors="eyes_mouth",
    template=tuple(map(tuple, np.round(celeba_hq_points(), 3).tolist())),
    frame=(1024.0, 1024.0),
    source="CelebA-HQ's crop rule (Karras et al. 2018) on CelebA's mean face, 1024 x 1024, resized to the input",
)
