"""Reusable task families: a plugin declares a new dataset by calling a factory with its reader.

Each factory returns a :class:`~faceptor_core.spec.TaskSpec` whose ``dataset``, ``transforms``, ``loss`` and
``metrics`` come from the family::

    from faceptor_tasks.families import landmark_task, inter_points
    spec = landmark_task("landmarks_mine", 68, FLIP_68, reader=read_mine,
                         norms={"inter_ocular": inter_points(36, 45)})

A reader is ``reader(root, split, skip_invalid=False) -> FaceDataset`` of raw items
(``{"image": uint8 H x W x 3, "target": ...}``, with ``"box"`` or ``"align_points"`` when the dataset has them);
see :mod:`faceptor_tasks.families.common`. Plugins import these (and the crop / affine / flip / tensor helpers)
from :mod:`faceptor_tasks.kit`. Each factory takes ``crop=`` (a :class:`~faceptor_core.crop.CropSpec`):
the crop its transform cuts and photo inference reproduces.
"""

from .age import AgeMAE, DLDLv2Loss, age_task
from .attributes import AttributeAccuracy, MaskedBCELoss, attribute_task
from .common import DatasetFormatError, FaceDataset, Metric, Sample, build_dataset, load_image
from .crop import FaceCropTransform, item_crop_matrix
from .expression import AccuracyMetric, ClassificationLoss, expression_task
from .landmarks import (
    BOX_NORM,
    DIAG_NORM,
    LandmarkLoss,
    LandmarkTransform,
    NMEMetric,
    Norm,
    inter_points,
    landmark_crop,
    landmark_task,
    permutation_from_pairs,
)
from .parsing import ParsingF1, ParsingLoss, ParsingTransform, parsing_crop, parsing_task
from .recognition import CosFaceLoss, VerificationMetric, recognition_task
from .regression import RegressionLoss, RegressionMAE, RegressionTransform, regression_task
from .weighting import REFERENCE_TYPE_WEIGHTS, combine_losses, task_weights, weighted_loss

__all__ = [
    "BOX_NORM",
    "DIAG_NORM",
    "REFERENCE_TYPE_WEIGHTS",
    "AccuracyMetric",
    "AgeMAE",
    "AttributeAccuracy",
    "ClassificationLoss",
    "CosFaceLoss",
    "DLDLv2Loss",
    "DatasetFormatError",
    "FaceCropTransform",
    "FaceDataset",
    "LandmarkLoss",
    "LandmarkTransform",
    "MaskedBCELoss",
    "Metric",
    "NMEMetric",
    "Norm",
    "ParsingF1",
    "ParsingLoss",
    "ParsingTransform",
    "RegressionLoss",
    "RegressionMAE",
    "RegressionTransform",
    "Sample",
    "VerificationMetric",
    "age_task",
    "attribute_task",
    "build_dataset",
    "combine_losses",
    "expression_task",
    "inter_points",
    "item_crop_matrix",
    "landmark_crop",
    "landmark_task",
    "load_image",
    "parsing_crop",
    "parsing_task",
    "permutation_from_pairs",
    "recognition_task",
    "regression_task",
    "task_weights",
    "weighted_loss",
]
