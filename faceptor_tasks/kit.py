"""The plugin kit: what a task plugin needs from Faceptor's task families, in one public module.

Import from here: these names are the public API a plugin relies on (the built-in families use the very same
functions), documented in docs/plugins.md.

Declaring a task
    :class:`TaskSpec`, :class:`CropSpec` (how a face is cut), :class:`FlipRule` (how labels change under a
    horizontal flip; :data:`UNCHANGED` when they do not), and the family factories that return a complete spec:
    :func:`regression_task` (named real values), :func:`landmark_task`, :func:`parsing_task`, :func:`age_task`,
    :func:`expression_task`, :func:`attribute_task`, :func:`recognition_task`.

Reading a dataset
    :class:`Sample`, :class:`Collector` (parse annotation lines; a bad line names file and line, or is skipped with
    ``skip_invalid``), :class:`FaceDataset`, :func:`build_dataset` (``TaskSpec.dataset`` from a reader),
    :func:`read_lines`, :func:`load_image`, :class:`DatasetFormatError`. SynthFaces: :class:`SynthFacesDataset`
    and its crop :data:`SYNTH_CROP`.

Transforms (raw item -> model-ready item)
    crop: :func:`item_crop_matrix` (the task's crop of an item: its ``align_points``, its ``box`` or the whole
    image; the same matrix photo inference computes) and :func:`base_meta` (``meta["affine"]`` and friends);
    affine: :func:`warp_image`, :func:`compose`, :func:`apply_affine`, :func:`invert_affine`,
    :func:`random_affine`, :func:`about_centre`; flip: :func:`random_hflip` (mirror the crop; then
    ``LabelFlip.relabel`` the labels), :func:`hflip_matrix`, :func:`flip_points`; tensors: :func:`to_tensor_image`,
    :func:`float_target`, :func:`long_target`; randomness: :func:`torch_rng` (seeded per item by Faceptor),
    :data:`EVAL_RNG`, :func:`is_train_split`. Ready transforms: :class:`FaceCropTransform` (image-level tasks),
    :class:`RegressionTransform`.

Losses, metrics, baselines
    :class:`Metric` (exact accumulation, refuses NaN predictions), :func:`as_tensor`, :class:`RegressionLoss`,
    :class:`RegressionMAE`, :class:`MeanValueBaseline`, :class:`RegressionMeanBaseline`, :func:`mean_value_baseline`.

A transform that mirrors images applies the task's flip rule to the labels::

    m, flipped = random_hflip(m, size, rng, enabled=self.flip is not None)
    ...
    if flipped:
        target = self.flip.relabel(target)   # self.flip = resolve_flip(rule, output, names, n) or spec.label_flip
"""

from __future__ import annotations

from faceptor_core.crop import CropSpec
from faceptor_core.flip import UNCHANGED, FlipRule, LabelFlip, resolve_flip
from faceptor_core.spec import MetricMeta, TaskSpec

from .families.age import age_task
from .families.attributes import attribute_task
from .families.augment import EVAL_RNG, is_train_split, to_tensor_image, torch_rng
from .families.baselines import MeanValueBaseline, RegressionMeanBaseline, mean_value_baseline
from .families.common import (
    Collector,
    DatasetFormatError,
    FaceDataset,
    Metric,
    Sample,
    as_tensor,
    build_dataset,
    load_image,
    read_lines,
)
from .families.crop import FaceCropTransform, base_meta, float_target, item_crop_matrix, long_target
from .families.expression import expression_task
from .families.geometry import (
    about_centre,
    apply_affine,
    compose,
    flip_points,
    hflip_matrix,
    invert_affine,
    random_affine,
    random_hflip,
    warp_image,
)
from .families.landmarks import landmark_task
from .families.parsing import parsing_task
from .families.recognition import recognition_task
from .families.regression import RegressionLoss, RegressionMAE, RegressionTransform, regression_task
from .synth_tasks import SYNTH_CROP
from .synthfaces.dataset import SynthFacesDataset

__all__ = [
    "EVAL_RNG",
    "SYNTH_CROP",
    "UNCHANGED",
    "Collector",
    "CropSpec",
    "DatasetFormatError",
    "FaceCropTransform",
    "FaceDataset",
    "FlipRule",
    "LabelFlip",
    "MeanValueBaseline",
    "RegressionMeanBaseline",
    "Metric",
    "MetricMeta",
    "RegressionLoss",
    "RegressionMAE",
    "RegressionTransform",
    "Sample",
    "SynthFacesDataset",
    "TaskSpec",
    "about_centre",
    "age_task",
    "apply_affine",
    "as_tensor",
    "attribute_task",
    "base_meta",
    "build_dataset",
    "compose",
    "expression_task",
    "flip_points",
    "float_target",
    "hflip_matrix",
    "invert_affine",
    "is_train_split",
    "item_crop_matrix",
    "landmark_task",
    "load_image",
    "long_target",
    "mean_value_baseline",
    "parsing_task",
    "random_affine",
    "random_hflip",
    "read_lines",
    "recognition_task",
    "regression_task",
    "resolve_flip",
    "to_tensor_image",
    "torch_rng",
    "warp_image",
]
