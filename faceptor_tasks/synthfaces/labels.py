"""Label vocabularies of SynthFaces: expressions, LaPa parsing classes, CelebA attribute names."""

from __future__ import annotations

import numpy as np

# The shared expression order and CelebA's attribute names are the real readers' (one definition each).
from ..families.readers.attributes import CELEBA_ATTRIBUTES
from ..families.readers.expression import EXPRESSIONS

__all__ = ["CELEBA_ATTRIBUTES", "EXPRESSIONS", "LAPA_CLASSES", "SYNTH_ATTRIBUTES"]

#: LaPa's 11 parsing classes, in LaPa's order. "left"/"right" are as seen in the image (image left = the
#: subject's right), matching the 68-point layout: brow 17-21 and eye 36-41 are the image-left ones.
LAPA_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
(BACKGROUND, SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP, HAIR) = range(
    11
)


#: The CelebA attributes SynthFaces draws (a subset of :data:`CELEBA_ATTRIBUTES`, in CelebA's order).
SYNTH_ATTRIBUTES: tuple[str, ...] = (
    "Arched_Eyebrows",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Pale_Skin",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Smiling",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Young",
)
assert all(a in CELEBA_ATTRIBUTES for a in SYNTH_ATTRIBUTES)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """Eye centres (means of 36-41 and 42-47), nose tip (30) and mouth corners (48, 54) of 68 iBUG points."""
    lm = np.asarray(landmarks68, np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])
