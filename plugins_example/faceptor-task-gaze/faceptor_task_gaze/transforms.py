"""Gaze crop and augmentation: the regression family's transform with the gaze flip rule (yaw negated, pitch
kept). The crop is the task's :class:`~faceptor_core.crop.CropSpec` (MPIIFaceGaze: the face box; SynthFaces: its
five-point template); training adds a small random shift and scale (no rotation: it would move the gaze
angles), the flip and brightness/contrast jitter, drawn from torch's RNG."""

from __future__ import annotations

from functools import partial

from faceptor_tasks.kit import CropSpec, FlipRule, RegressionTransform, resolve_flip

GAZE_LABELS = ("pitch", "yaw")
#: Mirroring a face left-right turns its gaze to the other side: yaw changes sign, pitch does not.
GAZE_FLIP = FlipRule(negate=("yaw",))

#: ``GazeTransform(split, input_size, crop=...)``: the transform of the gaze tasks (default crop: the item's box).
GazeTransform = partial(
    RegressionTransform,
    crop=CropSpec(method="box"),
    flip=resolve_flip(GAZE_FLIP, "regression", GAZE_LABELS, len(GAZE_LABELS)),
)
