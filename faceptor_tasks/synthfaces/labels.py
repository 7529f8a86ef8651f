"""Label vocabularies of SynthFaces: expressions, LaPa parsing classes, CelebA attribute names."""

from __future__ import annotations

#: The shared expression order (RAF-DB's, 0-based): RAF-DB label k is index k - 1.
EXPRESSIONS: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")

#: LaPa's 11 parsing classes, in LaPa's order. "left"/"right" are as seen in the image (image left = the
#: subject's right), matching the 68-point layout: brow 17-21 and eye 36-41 are the image-left ones.
LAPA_CLASSES: tuple[str, ...] = ("background", "skin", "left_brow", "right_brow", "left_eye", "right_eye",
                                 "nose", "upper_lip", "inner_mouth", "lower_lip", "hair")
(BACKGROUND, SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP,
 HAIR) = range(11)

#: CelebA's 40 attribute names, in ``list_attr_celeba.txt`` order.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

#: The CelebA attributes SynthFaces draws (a subset of :data:`CELEBA_ATTRIBUTES`, in CelebA's order).
SYNTH_ATTRIBUTES: tuple[str, ...] = (
    "Arched_Eyebrows", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses", "Goatee", "Gray_Hair", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Pale_Skin", "Receding_Hairline",
    "Rosy_Cheeks", "Smiling", "Wearing_Hat", "Wearing_Lipstick", "Young",
)
assert all(a in CELEBA_ATTRIBUTES for a in SYNTH_ATTRIBUTES)
