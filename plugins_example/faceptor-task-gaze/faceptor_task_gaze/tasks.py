"""The gaze tasks: the regression family with two outputs (pitch, yaw in radians) and the gaze flip rule."""

from __future__ import annotations

from functools import partial
from typing import Any

from faceptor_tasks.kit import SYNTH_CROP, CropSpec, SynthFacesDataset, TaskSpec, build_dataset, regression_task

from .loss_metric import gaze_metrics
from .mpiifacegaze import read_mpiifacegaze
from .transforms import GAZE_FLIP, GAZE_LABELS

MPII_CITATION = (
    "Zhang, Sugano, Fritz, Bulling. It's Written All Over Your Face: Full-Face Appearance-Based Gaze "
    "Estimation. CVPRW 2017."
)


def synth_gaze_dataset(root: Any, split: str, transform=None, length: int | None = None, size: int = 112):
    """SynthFaces with its gaze labels (generated; ``root``, when given, keeps the painted images: a render cache)."""
    return SynthFacesDataset(split, size=size, length=length, target="gaze", transform=transform, cache=root)


#: MPIIFaceGaze's face boxes (2.4 x the six landmarks' extent, see ``mpiifacegaze.face_box``) are cropped whole;
#: at inference the detector's box stands in for them.
MPII_CROP = CropSpec(method="box", source="MPIIFaceGaze: a box 2.4 x the six landmarks' extent, filling the crop")


def gaze_task(name: str, dataset, description: str, crop: CropSpec, **fields: Any) -> TaskSpec:
    return regression_task(
        name,
        GAZE_LABELS,
        flip=GAZE_FLIP,
        dataset=dataset,
        units="rad",
        crop=crop,
        family="gaze",
        primary_metric="angular_error",
        metrics=gaze_metrics,
        description=description,
        **fields,
    )


def gaze_tasks() -> list[TaskSpec]:
    return [
        gaze_task(
            "gaze_synth",
            synth_gaze_dataset,
            "SynthFaces gaze (pitch, yaw) shown by the pupils; generated, no download.",
            SYNTH_CROP,
            license="Apache-2.0 (generated data)",
        ),
        gaze_task(
            "gaze_mpiifacegaze",
            partial(build_dataset, read_mpiifacegaze),
            "MPIIFaceGaze, full-face gaze; leave-one-person-out splits (default test person p14).",
            MPII_CROP,
            license="CC BY-NC-SA 4.0 (the dataset; obtain it from its authors)",
            citation=MPII_CITATION,
        ),
    ]
