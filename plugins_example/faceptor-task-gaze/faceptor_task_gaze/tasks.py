"""The gaze tasks: an attribute-type head with two queries (pitch, yaw), regression output."""

from __future__ import annotations

from functools import partial
from typing import Any

from faceptor_core import TaskSpec
from faceptor_core.crop import CropSpec
from faceptor_tasks.families.baselines import mean_value_baseline
from faceptor_tasks.families.common import build_dataset
from faceptor_tasks.synth_tasks import SYNTH_CROP
from faceptor_tasks.synthfaces.dataset import SynthFacesDataset

from .loss_metric import gaze_loss, gaze_metrics
from .mpiifacegaze import read_mpiifacegaze
from .transforms import GazeTransform

GAZE_LABELS = ("pitch", "yaw")
MPII_CITATION = (
    "Zhang, Sugano, Fritz, Bulling. It's Written All Over Your Face: Full-Face Appearance-Based Gaze "
    "Estimation. CVPRW 2017."
)


def synth_gaze_dataset(root: Any, split: str, transform=None, length: int | None = None, size: int = 112):
    """SynthFaces with its gaze labels (``root`` is unused: the data is generated)."""
    return SynthFacesDataset(split, size=size, length=length, target="gaze", transform=transform)


#: MPIIFaceGaze's face boxes (2.4 x the six landmarks' extent, see ``mpiifacegaze.face_box``) are cropped whole;
#: at inference the detector's box stands in for them.
MPII_CROP = CropSpec(method="box", source="MPIIFaceGaze: a box 2.4 x the six landmarks' extent, filling the crop")


def gaze_task(name: str, dataset, description: str, crop: CropSpec, **fields: Any) -> TaskSpec:
    return TaskSpec(
        name=name, family="gaze", head="attribute", output="regression", num_queries=2, input_size=112,
        label_names=GAZE_LABELS, primary_metric="angular_error", higher_is_better=False, crop=crop,
        dataset=dataset, transforms=partial(GazeTransform, crop=crop), loss=gaze_loss, metrics=gaze_metrics,
        baseline=partial(mean_value_baseline, unit="rad (pitch, yaw)"),
        description=description, **fields,
    )


def gaze_tasks() -> list[TaskSpec]:
    return [
        gaze_task("gaze_synth", synth_gaze_dataset,
                  "SynthFaces gaze (pitch, yaw) shown by the pupils; generated, no download.", SYNTH_CROP,
                  license="Apache-2.0 (generated data)"),
        gaze_task("gaze_mpiifacegaze", partial(build_dataset, read_mpiifacegaze),
                  "MPIIFaceGaze, full-face gaze; leave-one-person-out splits (default test person p14).", MPII_CROP,
                  license="CC BY-NC-SA 4.0 (the dataset; obtain it from its authors)", citation=MPII_CITATION),
    ]
