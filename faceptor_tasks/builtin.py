"""Declarations of the paper's tasks (and their sibling datasets) on the reusable families."""

from __future__ import annotations

from faceptor_core.crop import CropSpec
from faceptor_core.spec import TaskSpec

from .families.age import age_task
from .families.attributes import attribute_task
from .families.expression import expression_task
from .families.landmarks import (
    BOX_NORM,
    DIAG_NORM,
    inter_points,
    landmark_crop,
    landmark_task,
    permutation_from_pairs,
)
from .families.parsing import parsing_crop, parsing_task
from .families.readers.age import read_morph2, read_utkface
from .families.readers.attributes import CELEBA_ATTRIBUTES, read_celeba_attributes
from .families.readers.expression import EXPRESSIONS as _EXPRESSIONS
from .families.readers.expression import read_affectnet, read_ferplus, read_rafdb
from .families.readers.landmarks import WFLW_SPLITS, read_300w, read_aflw19, read_cofw, read_wflw
from .families.readers.parsing import CELEBAMASK_LABELS, LAPA_LABELS, read_celebamask_hq, read_lapa
from .families.recognition import VERIFICATION_SETS, recognition_task
from .families.templates import CELEBA_ALIGN_CROP, CELEBA_HQ_CROP

#: 112-px datasets whose prepared crops the reference does not document: FaRL's template is assumed.
ASSUMED_CROP = CropSpec(source="not documented by the reference: FaRL's 5-point template (512-px frame) assumed")

# The permutation tables keep one row per face part:
# fmt: off
# Landmark flip permutation of the iBUG 300-W 68-point layout (0-based).
FLIP_68 = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)

# Flip permutations of the other layouts, from the mirrored pairs of HRNet-Facial-Landmark-Detection
# (lib/utils/transforms.py, MATCHED_PARTS; 300W, AFLW and COFW 1-based there, WFLW 0-based).
# WFLW 98: contour 0-32, brows 33-50, nose 51-59, eyes 60-75, mouth 76-95, pupils 96/97.
FLIP_98 = permutation_from_pairs(98, (
    (0, 32), (1, 31), (2, 30), (3, 29), (4, 28), (5, 27), (6, 26), (7, 25), (8, 24), (9, 23), (10, 22),
    (11, 21), (12, 20), (13, 19), (14, 18), (15, 17),
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (55, 59), (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84), (88, 92), (89, 91), (95, 93), (96, 97),
))
# COFW 29 (Burgos-Artizzu et al.): brows 1-8, eyes 9-16, pupils 17/18, nose 19-22, mouth 23-28, chin 29.
FLIP_29 = permutation_from_pairs(29, (
    (1, 2), (5, 7), (3, 4), (6, 8), (9, 10), (11, 12), (13, 15), (17, 18), (14, 16), (19, 20), (23, 24),
), one_based=True)
# AFLW 19 (Zhu et al.): brows 1-6, eyes 7-12, nose 13-15, mouth 16-18, chin 19.
FLIP_19 = permutation_from_pairs(19, ((1, 6), (2, 5), (3, 4), (7, 12), (8, 11), (9, 10), (13, 15), (16, 18)),
                                 one_based=True)
# fmt: on

EXPRESSIONS = _EXPRESSIONS
#: The paper's six tasks (one dataset per task type), in its order.
PAPER_TASKS: tuple[str, ...] = (
    "landmarks_300w",
    "parsing_celebamask_hq",
    "age_morph2",
    "expression_rafdb",
    "attributes_celeba",
    "recognition_ms1mv3",
)
#: The reference's LaPa warp: five-point alignment, then a tanh warp of factor 0.8.
LAPA_WARP_FACTOR = 0.8


_REF = "reference (lxq1000/Faceptor evaluators)"
_NME = "NME per image in original-image coordinates, averaged"
_AUC = "AUC/FR on the reference's grid np.arange(0, t + 1e-4, 1e-4) with Simpson's rule (auc_*_exact: exact integral)"
_SIMPLE = "whole image resized to 112 px (Pillow bilinear)"
#: The evaluation protocol of each built-in task, as ``faceptor eval`` names it (details: docs/datasets.md).
PROTOCOLS = {
    "landmarks_300w": (
        f"{_REF}: CSV coordinates - 2.0; box centre +- 100*scale fills 80% of the 512-px crop; {_NME}; "
        "inter-ocular 36-45 (nme), inter-pupil"
    ),
    "landmarks_wflw": (
        f"{_REF}: box centre +- 100*scale fills 80% of the 512-px crop; {_NME}; inter-ocular 60-72; {_AUC} at 0.1"
    ),
    "landmarks_cofw": (
        f"{_REF}: box = landmarks' extent squared, fills 80% of the 512-px crop; {_NME}; inter-ocular "
        f"8-9; {_AUC} at 0.1"
    ),
    "landmarks_aflw19": (
        f"{_REF}: release box stretched onto the 512-px crop (not squared); {_NME}; box diagonal "
        f"(nme), sqrt(w*h) (nme_box); {_AUC} at 0.07: grid ends at 0.0701, perfect = 1.0014, FR counts "
        "NME > 0.0701"
    ),
    "parsing_celebamask_hq": (
        f"{_REF}: 512-px mask geometry, no alignment; F1 from one confusion matrix over the "
        "split, mean over the 18 non-background classes (NaN if a class is absent from the set)"
    ),
    "parsing_lapa": (
        f"{_REF}: 5-point similarity to FaRL's template + tanh warp 0.8 (512 px); logits warped back "
        "(bilinear) and scored in the original image; F1 from one confusion matrix, mean over the 10 "
        "non-background classes (NaN if a class is absent from the set)"
    ),
    "age_morph2": f"{_REF}: {_SIMPLE}; age = sum k p_k, p the L1-normalised sigmoid over 0..100; MAE",
    "age_utkface": (
        f"{_REF}: {_SIMPLE}; age = sum k p_k, p the L1-normalised sigmoid over 0..100; MAE "
        "(the reference's split with its label/*.csv, else a CRC-32 80/20 split)"
    ),
    "expression_rafdb": f"{_REF}: {_SIMPLE}; top-1 = torch.topk on the logits; accuracy",
    "expression_affectnet": (
        f"{_REF}: {_SIMPLE} (CSV face box when reading the release); top-1 = torch.topk on the logits; accuracy"
    ),
    "expression_ferplus": f"{_REF}: {_SIMPLE}; majority-vote labels; top-1 = torch.topk on the logits; accuracy",
    "attributes_celeba": (
        f"{_REF}: {_SIMPLE}; positive iff sigmoid(logit) > 0.5 (0.5 is negative); mean accuracy over the 40 attributes"
    ),
    "recognition_ms1mv3": (
        "InsightFace verification: embedding(image) + embedding(flip), L2-normalised; squared "
        "distance thresholds 0..4 step 0.01, unshuffled 10-fold CV; mean accuracy"
    ),
}


def builtin_tasks() -> list[TaskSpec]:
    """The paper's tasks and their sibling datasets, declared on the families (``extra["protocol"]`` names
    each one's evaluation protocol)."""
    return [
        spec.model_copy(update={"extra": {**spec.extra, "protocol": PROTOCOLS[spec.name]}}) for spec in _declarations()
    ]


def _declarations() -> list[TaskSpec]:
    return [
        # -- landmarks -----------------------------------------------------------------------------------
        landmark_task(
            "landmarks_300w",
            68,
            FLIP_68,
            reader=read_300w,
            loss_weight=1000.0,
            crop=landmark_crop(
                0.8,
                "300W face boxes (HRNet CSV: side 200 x scale; .pts: the points' extent), "
                "squared, filling 0.8 of the crop",
            ),
            norms={"inter_ocular": inter_points(36, 45), "inter_pupil": inter_points(range(36, 42), range(42, 48))},
            description="300W, 68 points (HRNet CSV layout).",
            extra={"splits": ("train", "valid", "valid_common", "valid_challenge", "test")},
        ),
        landmark_task(
            "landmarks_wflw",
            98,
            FLIP_98,
            reader=read_wflw,
            loss_weight=1000.0,
            crop=landmark_crop(0.8, "WFLW face rectangles (HRNet CSV: side 200 x scale), squared, filling 0.8"),
            norms={"inter_ocular": inter_points(60, 72), "inter_pupil": inter_points(96, 97)},
            auc=(("inter_ocular", 0.1),),
            description="WFLW, 98 points.",
            extra={"splits": WFLW_SPLITS},
        ),
        landmark_task(
            "landmarks_cofw",
            29,
            FLIP_29,
            reader=read_cofw,
            loss_weight=1000.0,
            crop=landmark_crop(0.8, "COFW: the 29 points' extent, squared, filling 0.8 of the crop"),
            norms={"inter_ocular": inter_points(8, 9)},
            auc=(("inter_ocular", 0.1),),
            description="COFW, 29 points (COFW_{train,test}_color.mat).",
            extra={"splits": ("train", "test")},
        ),
        landmark_task(
            "landmarks_aflw19",
            19,
            FLIP_19,
            reader=read_aflw19,
            loss_weight=1000.0,
            crop=landmark_crop(
                1.0,
                "AFLW-19 face boxes (bbox of AFLWinfo_release.mat), stretched onto the crop "
                "(the reference's AFLW-19 crop), filling it",
                square=False,
            ),
            norms={
                "diag": DIAG_NORM,
                "box": BOX_NORM,
                "inter_ocular": inter_points(6, 11),
                "inter_pupil": inter_points(7, 10),
            },
            auc=(("box", 0.07),),
            description="AFLW-19, 19 points (AFLWinfo_release.mat).",
            extra={"splits": ("train", "test", "test_frontal")},
        ),
        # -- parsing -------------------------------------------------------------------------------------
        parsing_task(
            "parsing_celebamask_hq",
            CELEBAMASK_LABELS,
            reader=read_celebamask_hq,
            loss_weight=100.0,
            crop=CELEBA_HQ_CROP,
            description="CelebAMask-HQ, 19 classes.",
            extra={"splits": ("train", "val", "test", "train_val")},
        ),
        parsing_task(
            "parsing_lapa",
            LAPA_LABELS,
            reader=read_lapa,
            loss_weight=100.0,
            crop=parsing_crop(
                1.0,
                "LaPa: the reader's five points aligned to FaRL's template at 512 px, then "
                f"FaRL's tanh warp ({LAPA_WARP_FACTOR})",
                warp_factor=LAPA_WARP_FACTOR,
            ),
            description="LaPa, 11 classes (crops aligned on 5 landmarks, tanh-warped; scored in the original image).",
            extra={"splits": ("train", "val", "test", "train_val")},
        ),
        # -- age -----------------------------------------------------------------------------------------
        age_task(
            "age_morph2",
            reader=read_morph2,
            loss_weight=6.0,
            description="MORPH II, ages 0..100.",
            crop=ASSUMED_CROP,
            extra={"splits": ("train", "test")},
        ),
        age_task(
            "age_utkface",
            reader=read_utkface,
            loss_weight=1.5,
            description="UTKFace, ages 0..100.",
            crop=ASSUMED_CROP,
            extra={"splits": ("train", "test", "all")},
        ),
        # -- expression ----------------------------------------------------------------------------------
        expression_task(
            "expression_rafdb",
            reader=read_rafdb,
            loss_weight=1.0,
            crop=ASSUMED_CROP,
            description="RAF-DB basic, 7 expressions.",
            extra={"splits": ("train", "test")},
        ),
        expression_task(
            "expression_affectnet",
            reader=read_affectnet,
            loss_weight=4.0,
            crop=CropSpec(method="box", source="AffectNet's face boxes, squared, filling the crop"),
            description="AffectNet, 7 expressions (contempt excluded).",
            extra={"splits": ("train", "val", "test")},
        ),
        expression_task(
            "expression_ferplus",
            reader=read_ferplus,
            loss_weight=1.0,
            crop=ASSUMED_CROP,
            description="FERPlus (majority vote), 7 expressions.",
            extra={"splits": ("train", "val", "test", "train_val")},
        ),
        # -- attributes ----------------------------------------------------------------------------------
        attribute_task(
            "attributes_celeba",
            CELEBA_ATTRIBUTES,
            reader=read_celeba_attributes,
            loss_weight=2.0,
            crop=CELEBA_ALIGN_CROP,
            description="CelebA, 40 binary attributes.",
            extra={"splits": ("train", "val", "test", "trainval")},
        ),
        # -- recognition ---------------------------------------------------------------------------------
        recognition_task(
            "recognition_ms1mv3",
            93431,
            loss_weight=5.0,
            verification=VERIFICATION_SETS,
            description="MS1MV3, CosFace.",
            extra={"splits": ("train", *VERIFICATION_SETS)},
        ),
    ]
