"""The SynthFaces tasks: every task family on the embedded procedural dataset (112 px, no download).

Each is the real family's declaration with a SynthFaces dataset, so training, evaluation, the demo and the
tests exercise the same transforms, losses and metrics as the real datasets.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np

from faceptor_core.crop import CropSpec
from faceptor_core.spec import TaskSpec

from .builtin import FLIP_68
from .families import age_task, attribute_task, expression_task, inter_points, landmark_task, parsing_task
from .families.landmarks import landmark_crop, landmark_loss
from .families.parsing import parsing_loss
from .families.recognition import recognition_task
from .synthfaces.cache import RenderCache
from .synthfaces.dataset import (
    TRAIN_IDENTITIES,
    SynthFacesDataset,
    pair_is_same,
    verification_generator,
    verification_pair,
)
from .synthfaces.labels import LAPA_CLASSES, SYNTH_ATTRIBUTES

SIZE = 112
#: LaPa's class flip: left/right brows (2, 3) and eyes (4, 5) swap.
LAPA_FLIP = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)
VERIFICATION_PAIRS = 600
#: Models trained from scratch on SynthFaces (no pretrained encoder) learn landmarks through the soft-argmax
#: point loss; the reference's 1:1 heatmap BCE first drives every heatmap to a flat negative and stalls them
#: (measured: no progress in 200 steps), so the synthetic task weights the BCE 0.01 and uses a 12-px radius
#: (at 128 px; 2.6 px on the 28-px heatmaps of 112-px inputs). The real landmark tasks keep the reference's loss.
SYNTH_LANDMARK_LOSS = partial(landmark_loss, radius=12.0, heatmap_weight=0.01)
#: Models trained from scratch on SynthFaces add a soft Dice term to the parsing cross-entropy: the eyes, brows and
#: lips are a few pixels each, and cross-entropy alone leaves them near F1 = 0 for hundreds of steps (demo recipe,
#: 2 seeds: F1 0.34 / 0.39 without, 0.57 / 0.57 with; docs/results.md). The real parsing tasks keep the reference's
#: plain cross-entropy.
SYNTH_PARSING_LOSS = partial(parsing_loss, dice_weight=1.0)
#: Models trained from scratch on SynthFaces train the image-level tasks (age, expression, attributes) on the crop
#: and the flip alone: the reference's RandAugment and random erasing, tuned for pretrained encoders on real photos,
#: hide the few-pixel cues at CPU budgets (ResNet-18, expression from 2,400 images, 2 seeds: accuracy 0.118 / 0.158
#: with them, 0.232 / 0.270 without; the demo, 2 seeds: age MAE 14.9 / 18.3 -> 13.1 / 13.5; docs/results.md). The
#: real tasks keep the reference's pipeline; synth_identity, like every recognition task, never had it.
SYNTH_FACE_AUGMENT = {"randaugment": False, "erasing": 0.0}
#: Mean eye centres, nose tip and mouth corners of 4,000 SynthFaces training images at 112 px
#: (``mean_five_points(4000)``; their spread is about 4-7 px): where the training images put the face, so the
#: crop that the whole-image training resize gives an average face.
SYNTH_POINTS_112 = ((42.312, 50.4), (68.699, 50.375), (55.492, 62.905), (45.523, 72.225), (65.501, 72.2))
SYNTH_CROP = CropSpec(
    template=SYNTH_POINTS_112,
    frame=(112.0, 112.0),
    source="SynthFaces: the mean five points of its 112-px training images",
)
SYNTH_LANDMARK_CROP = landmark_crop(0.8, "SynthFaces: the 68 points' extent, squared, filling 0.8 of the crop")
#: synth_parsing uses absent_classes="skip": a class absent from both the labels and the predictions of a (small)
#: evaluated set is left out of the mean F1, so that smoke evaluations of a few images stay finite. The real
#: parsing datasets keep the reference's rule (the mean F1 is then NaN).
NOTE = "SynthFaces (generated; a smoke dataset: scores say the machinery works, not how a model does on faces)."


def mean_five_points(count: int, size: int = SIZE, split: str = "train") -> np.ndarray:
    """Mean five points (eye centres, nose tip, mouth corners) of the first ``count`` images of a split."""
    from .synthfaces.dataset import split_generator
    from .synthfaces.labels import five_points

    gen, offset = split_generator(split, size)
    return np.mean([five_points(gen.landmarks(offset + i)) for i in range(count)], axis=0)


def _unused_reader(*args: Any, **kw: Any):  # the families' factories take a reader; SynthFaces replaces it
    raise NotImplementedError


def synth_dataset(
    root: Any, split: str, transform=None, skip_invalid: bool = False, *, target: str, length: int | None = None
):
    """``TaskSpec.dataset`` of a SynthFaces task. Images are generated; ``root``, when given, is a folder in which
    they are kept once painted (a render cache, shared by every SynthFaces task that names it)."""
    return SynthFacesDataset(split, size=SIZE, length=length, target=target, transform=transform, cache=root)


class SynthVerificationPairs:
    """Verification pairs on unseen SynthFaces identities, as the evaluation loop scores them (each pair rendered
    when it is read, so that evaluating the first N pairs renders only those)."""

    def __init__(self, transform=None, count: int = VERIFICATION_PAIRS, cache: str | os.PathLike | None = None):
        gen = verification_generator(SIZE)
        self.gen = gen if cache is None else RenderCache(gen, cache)
        self.count = count
        self.issame = pair_is_same(np.arange(count))
        self.transform = transform

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.count:
            raise IndexError(f"pair {i} out of range ({self.count} pairs)")
        image_a, image_b, same = verification_pair(self.gen, i)
        if self.transform is None:
            return {"image": image_a, "image_b": image_b, "target": int(same)}
        a = self.transform({"image": image_a, "target": int(same)})
        b = self.transform({"image": image_b, "target": int(same)})
        return {
            "image_a": a["image"],
            "image_b": b["image"],
            "issame": same,
            "target": a["target"],
            "meta": {"pair": i},
        }


def synth_identity_dataset(root: Any, split: str, transform=None, skip_invalid: bool = False):
    if split == "train":
        return synth_dataset(root, split, transform, target="identity")
    return SynthVerificationPairs(transform, cache=root)


PROTOCOL = (
    "SynthFaces smoke protocol: the family's metric on the generated test split (parsing: a class absent "
    "from the evaluated set is left out of the mean F1)"
)


def _on_synth(spec: TaskSpec, target: str) -> TaskSpec:
    return spec.model_copy(
        update={
            "dataset": partial(synth_dataset, target=target),
            "description": NOTE,
            "license": "Apache-2.0 (generated data)",
            "extra": {**spec.extra, "protocol": PROTOCOL},
        }
    )


def _crop_and_flip_only(spec: TaskSpec) -> TaskSpec:
    """``spec`` with its ``FaceCropTransform`` training pipeline reduced to the crop and the flip
    (:data:`SYNTH_FACE_AUGMENT`)."""
    return spec.model_copy(update={"transforms": partial(spec.transforms, **SYNTH_FACE_AUGMENT)})


def synth_tasks() -> list[TaskSpec]:
    return [
        _on_synth(
            landmark_task(
                "synth_landmarks",
                68,
                FLIP_68,
                reader=_unused_reader,
                input_size=SIZE,
                crop=SYNTH_LANDMARK_CROP,
                norms={"inter_ocular": inter_points(36, 45)},
                auc=[("inter_ocular", 0.1)],
            ),
            "landmarks",
        ).model_copy(update={"loss": SYNTH_LANDMARK_LOSS}),
        _on_synth(
            parsing_task(
                "synth_parsing",
                LAPA_CLASSES,
                reader=_unused_reader,
                input_size=SIZE,
                label_flip=LAPA_FLIP,
                absent_classes="skip",
                crop=SYNTH_CROP,
            ),
            "parsing",
        ).model_copy(update={"loss": SYNTH_PARSING_LOSS}),
        _crop_and_flip_only(
            _on_synth(age_task("synth_age", reader=_unused_reader, input_size=SIZE, crop=SYNTH_CROP), "age")
        ),
        _crop_and_flip_only(
            _on_synth(
                expression_task("synth_expression", reader=_unused_reader, input_size=SIZE, crop=SYNTH_CROP),
                "expression",
            )
        ),
        _crop_and_flip_only(
            _on_synth(
                attribute_task(
                    "synth_attributes", SYNTH_ATTRIBUTES, reader=_unused_reader, input_size=SIZE, crop=SYNTH_CROP
                ),
                "attributes",
            )
        ),
        _on_synth(
            recognition_task(
                "synth_identity",
                TRAIN_IDENTITIES,
                reader=_unused_reader,
                input_size=SIZE,
                verification=("synth_pairs",),
                embedding_dim=512,
                crop=SYNTH_CROP,
            ),
            "identity",
        ).model_copy(update={"dataset": synth_identity_dataset}),
    ]
