"""One table from output kind to (decode, prediction class), and predictions that know their own forms: metric
tensor, per-face results in photo pixels, caption and drawing."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch

from faceptor_core import predictions as P
from faceptor_core.crop import CropSpec
from faceptor_core.crop_frames import CropFrames
from faceptor_core.outputs import OUTPUTS, decode_output
from faceptor_core.spec import HEAD_OF_OUTPUT, OutputKind, TaskHead
from faceptor_core.viz import prediction_card

B, S = 2, 32
NAMES = {
    "landmarks": ("a", "b", "c"),
    "segmentation": ("background", "skin", "hair"),
    "classification": ("x", "y", "z"),
    "multilabel": ("p", "q", "r"),
    "regression": ("pitch", "yaw", "roll"),
}


def _head(kind: str) -> TaskHead:
    identity = HEAD_OF_OUTPUT[kind] == "identity"
    return TaskHead(
        name=f"t_{kind}",
        family="f",
        head_type=HEAD_OF_OUTPUT[kind],
        output=kind,
        num_queries=0 if identity else (101 if kind == "age_distribution" else 3),
        input_size=S,
        embedding_dim=8,
        label_names=NAMES.get(kind, ()),
    )


def _raw(head: TaskHead) -> torch.Tensor:
    torch.manual_seed(0)
    if head.head_type == "dense":
        return torch.randn(B, head.num_queries, S // 4, S // 4)
    return torch.randn(B, head.embedding_dim if head.head_type == "identity" else head.num_queries)


def _identity_frames(head: TaskHead, logits: torch.Tensor | None = None) -> CropFrames:
    """Crops that are the photos themselves (identity affine, no warp)."""
    return CropFrames(np.repeat(np.eye(2, 3)[None], B, axis=0), CropSpec(), S, [(S, S)] * B, head.label_names, logits)


def test_the_table_covers_every_output_kind() -> None:
    assert set(OUTPUTS) == set(get_args(OutputKind)) == set(HEAD_OF_OUTPUT)
    assert all(o.kind == k for k, o in OUTPUTS.items())


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
def test_each_kind_decodes_to_its_class_with_its_forms(kind: str) -> None:
    head = _head(kind)
    raw = _raw(head)
    pred = decode_output(head, raw, (S, S))
    assert type(pred) is OUTPUTS[kind].prediction and pred.task == head.name
    assert pred.tensor().shape[0] == B
    results = pred.face_results(_identity_frames(head, raw if kind == "segmentation" else None))
    assert len(results) == B and all(r.kind != "custom" for r in results)
    assert all(isinstance(r.to_json(), dict) and r.to_json()["kind"] == r.kind for r in results)
    assert all(isinstance(r.summary(), str) for r in results)


def test_identity_crops_map_landmarks_and_parsing_back_unchanged() -> None:
    head = _head("landmarks")
    pred = decode_output(head, _raw(head), (S, S))
    back = pred.face_results(_identity_frames(head))
    assert np.allclose(np.stack([r.points for r in back]), pred.points.numpy(), atol=1e-6)
    assert back[0].names == head.label_names
    head = _head("segmentation")
    raw = _raw(head)
    pred = decode_output(head, raw, (S, S))
    from_logits = pred.face_results(_identity_frames(head, raw))
    from_labels = pred.face_results(_identity_frames(head))  # a plugin's label maps: nearest
    for k in range(B):
        assert from_logits[k].region == from_labels[k].region == (0, 0, S, S)
        assert np.array_equal(from_logits[k].labels, pred.labels[k].numpy())
        assert np.array_equal(from_labels[k].labels, pred.labels[k].numpy())


def test_a_plugin_prediction_is_a_custom_result_in_crop_coordinates() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Colour(P.Prediction):
        name: str = "red"

        def item(self, i: int) -> dict:
            return {"colour": self.name}

    results = Colour("t").face_results(_identity_frames(_head("regression")))
    assert [r.to_json() for r in results] == [{"kind": "custom", "frame": "crop", "value": {"colour": "red"}}] * B
    with pytest.raises(TypeError, match="'t'.*no metric tensor"):
        Colour("t").tensor()


def test_cards_draw_area_fills_under_points_whatever_the_order() -> None:
    image = np.full((S, S, 3), 128, np.uint8)
    labels = torch.ones(1, S, S, dtype=torch.int64)  # every pixel class 1: coloured
    points = torch.tensor([[[10.0, 20.0]]])
    parsing = P.ParsingPrediction("parse", labels, ("background", "skin"))
    marks = P.LandmarkPrediction("marks", points)
    age = P.AgePrediction("age", torch.tensor([31.25]), torch.zeros(1, 101))
    for preds in ({"marks": marks, "parse": parsing, "age": age}, {"parse": parsing, "marks": marks, "age": age}):
        card = np.asarray(prediction_card(image, preds, scale=2))
        assert tuple(card[41, 21]) == (0, 255, 0)  # the point (10, 20) at scale 2, drawn last
        assert tuple(card[4, 4]) != (128, 128, 128)  # the parsing colour under it
        assert card.shape[0] > 2 * S  # a caption line for the age


def test_loss_curves_mark_where_a_stage_starts():
    from faceptor_core.viz import MARK_GREY, plot_curves

    series = {"loss": [(0.0, 2.0), (10.0, 1.0), (20.0, 0.5)]}
    plain = np.asarray(plot_curves(series))
    marked = np.asarray(plot_curves(series, marks={"stage 2": 10.0, "outside": 99.0}))
    grey = (marked == MARK_GREY).all(-1) & ~(plain == MARK_GREY).all(-1)
    cols = np.flatnonzero(grey.sum(0) > 30)  # a dashed vertical line, not the label's text
    left, right = 60, 720 - 170  # the plot's frame at the default size
    assert len(cols) == 1 and abs(cols[0] - (left + right) / 2) <= 1
    line_top = np.flatnonzero(grey[:, cols[0]]).min()
    text = (marked != np.asarray(plot_curves(series, marks={"outside": 99.0}))).any(-1)  # the same frame, no mark
    text[line_top:, cols[0]] = False
    rows, xs = np.nonzero(text)
    assert len(rows) > 10 and rows.max() < line_top  # the label sits above the frame, where no curve can run
    assert abs(xs.mean() - cols[0]) < 6  # ... centred on its line
