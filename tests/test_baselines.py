"""Trivial baselines: each family's answer on hand-computed fixtures, evaluation beside the model, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from faceptor_core import get_task
from faceptor_core import predictions as P
from faceptor_core.cli import main
from faceptor_core.evaluate import BaselineUnavailable, evaluate_task, evaluate_with_baseline
from faceptor_core.spec import Baseline
from faceptor_tasks.families import inter_points
from faceptor_tasks.families.age import AgeMAE
from faceptor_tasks.families.attributes import AttributeAccuracy
from faceptor_tasks.families.baselines import (
    AttributeMajorityBaseline,
    ConstantEmbeddingBaseline,
    MajorityClassBaseline,
    MeanShapeBaseline,
    MeanValueBaseline,
    PixelMajorityBaseline,
)
from faceptor_tasks.families.expression import AccuracyMetric
from faceptor_tasks.families.landmarks import NMEMetric
from faceptor_tasks.families.parsing import ParsingF1
from faceptor_tasks.families.recognition import VerificationMetric
from tests.conftest import tiny_build


def _batch(target, size: int = 10, **extra) -> dict:
    target = torch.as_tensor(target)
    return {"image": torch.zeros(len(target), 3, size, size), "target": target, **extra}


def _score(baseline: Baseline, metric, eval_batch: dict) -> dict[str, float]:
    metric.update(baseline.predict(eval_batch), eval_batch["target"], eval_batch.get("meta"))
    return metric.compute()


def test_landmarks_mean_shape_hand_computed() -> None:
    b = MeanShapeBaseline()
    b.fit([_batch([[[1.0, 1.0], [3.0, 1.0]]]), _batch([[[3.0, 3.0], [5.0, 3.0]]])])
    # mean (2, 2), (4, 2) in crop pixels of a 10-px crop -> normalised (x + 0.5) / 10
    torch.testing.assert_close(b.mean_shape, torch.tensor([[0.25, 0.25], [0.45, 0.25]], dtype=torch.float64))
    out = _score(b, NMEMetric({"io": inter_points(0, 1)}), _batch([[[2.0, 2.0], [6.0, 2.0]]]))
    assert out["nme"] == pytest.approx((0 + 2) / 2 / 4)  # errors 0 and 2, inter-ocular 4
    assert "2 training items" in b.describe()


def test_landmarks_mean_shape_is_in_the_normalised_frame() -> None:
    b = MeanShapeBaseline()
    b.fit([_batch([[[4.5, 9.5]]], size=20), _batch([[[float("nan"), 0.0]]], size=20)])
    torch.testing.assert_close(b.mean_shape, torch.tensor([[0.25, (0.5 + 0.025) / 2]], dtype=torch.float64))  # NaN
    # left out of x's mean
    torch.testing.assert_close(
        b.predict(_batch([[[0.0, 0.0]]], size=40)), torch.tensor([[[9.5, 40 * 0.2625 - 0.5]]], dtype=torch.float64)
    )


def test_parsing_pixel_majority_hand_computed() -> None:
    b = PixelMajorityBaseline(("bg", "a", "b"))
    b.fit([_batch([[[0, 1], [1, 1]], [[0, 2], [2, 255]]], size=2)])
    # (0, 1): a vs b tie -> a (lower index); (1, 0): a vs b tie -> a; (1, 1): a (255 ignored)
    assert b.majority_map.tolist() == [[0, 1], [1, 1]]
    out = _score(b, ParsingF1(("bg", "a", "b")), _batch([[[0, 1], [2, 2]]], size=2))
    # a: TP 1, predicted 3, true 1 -> 0.5; b: TP 0 -> 0
    assert out["f1_a"] == pytest.approx(0.5) and out["f1_b"] == 0.0 and out["f1"] == pytest.approx(0.25)


def test_age_mean_hand_computed() -> None:
    b = MeanValueBaseline("years")
    b.fit([_batch([20.0, 30.0]), _batch([40.0])])
    assert float(b.mean) == 30.0
    assert _score(b, AgeMAE(), _batch([25.0, 45.0]))["mae"] == pytest.approx(10.0)
    assert "30 years" in b.describe()


def test_regression_mean_per_output() -> None:
    b = MeanValueBaseline()
    b.fit([_batch([[1.0, -2.0], [3.0, 2.0]])])
    assert b.predict(_batch([[0.0, 0.0]] * 3)).tolist() == [[2.0, 0.0]] * 3


def test_expression_majority_hand_computed() -> None:
    b = MajorityClassBaseline(("x", "y", "z"))
    b.fit([_batch([1, 1, 2, 0])])
    assert b.majority == 1 and "'y' (50.0% of 4" in b.describe()
    out = _score(b, AccuracyMetric(3), _batch([1, 2, 1, 1]))
    assert out["accuracy"] == 0.75 and out["mean_class_accuracy"] == pytest.approx(0.5)


def test_attribute_majority_hand_computed() -> None:
    b = AttributeMajorityBaseline(("p", "q"))
    b.fit([_batch([[1, 0], [1, 1], [0, -1]])])  # p: 2 of 3 positive; q: 1 of 2 known -> tie -> negative
    assert b.majority.tolist() == [True, False]
    out = _score(b, AttributeAccuracy(("p", "q")), _batch([[1, 1], [0, 0]]))
    assert out["acc_p"] == 0.5 and out["acc_q"] == 0.5 and out["macc"] == 0.5


def test_verification_constant_embedding_is_chance() -> None:
    b = ConstantEmbeddingBaseline(8)
    assert not b.needs_training
    issame = torch.tensor([True, True, True, False] * 5)  # 15 same of 20
    metric = VerificationMetric()
    emb = b.predict({"issame": issame})
    metric.update_pairs(emb, emb, issame)
    # every training fold is mostly "same": the chosen threshold says "same" to all, right on 75%
    assert metric.compute()["verification_accuracy"] == pytest.approx(0.75)


def test_predict_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        MeanValueBaseline().predict(_batch([1.0]))


# -- a model giving exactly the trivial answer scores exactly the baseline ------------------------------------
SYNTH = ("synth_landmarks", "synth_parsing", "synth_age", "synth_expression", "synth_attributes")


@pytest.mark.parametrize("task", SYNTH)
def test_model_giving_the_trivial_answer_scores_the_baseline(task: str, monkeypatch) -> None:
    from faceptor_core.evaluate import fit_baseline

    spec = get_task(task)
    model = tiny_build([task])
    size = model.tasks[task].input_size
    trivial = fit_baseline(spec, None, size, limit=12)
    forward = model.forward

    def constant(images, tasks=None):  # the model's outputs, replaced by the trivial answer in raw form
        raw = forward(images, tasks)
        n = next(iter(images.values())).shape[0]
        if task == "synth_expression":
            raw[task] = 5.0 * trivial.predict({"image": torch.zeros(n)})
        elif task == "synth_parsing":
            major = trivial.majority_map.expand(n, -1, -1)
            raw[task] = torch.nn.functional.one_hot(major, spec.num_queries).permute(0, 3, 1, 2).float()
        return raw

    monkeypatch.setattr(model, "forward", constant)
    decoded = {
        "synth_landmarks": lambda raw, hw: P.LandmarkPrediction(
            task, trivial.predict({"image": torch.zeros(len(raw), 3, *hw)})
        ),
        "synth_age": lambda raw, hw: P.AgePrediction(task, trivial.predict({"image": raw}), raw),
        "synth_attributes": lambda raw, hw: P.MultilabelPrediction(task, trivial.predict({"image": raw})),
    }
    if task in decoded:
        model.output_decoders[task] = decoded[task]
    result = evaluate_with_baseline(model, spec, None, "test", batch_size=4, limit=8, baseline_limit=12)
    assert result.baseline is not None and result.baseline_answer == trivial.describe()
    assert result.metrics == result.baseline


def test_verification_model_giving_a_constant_embedding_scores_the_baseline(tmp_path: Path, monkeypatch) -> None:
    from tests.test_families_recognition import write_bin

    write_bin(tmp_path / "lfw.bin", 20)
    spec = get_task("recognition_ms1mv3")
    model = tiny_build([spec.name])
    monkeypatch.setattr(
        model,
        "forward",
        lambda images, tasks=None: {spec.name: torch.ones(next(iter(images.values())).shape[0], spec.embedding_dim)},
    )
    result = evaluate_with_baseline(model, spec, str(tmp_path), "lfw", batch_size=8)
    assert result.metrics == result.baseline and result.metrics["verification_accuracy"] == pytest.approx(0.5)


def test_evaluate_task_flat_keys_and_unavailable_baseline(tmp_path: Path) -> None:
    model = tiny_build(["synth_age"])
    out = evaluate_task(model, get_task("synth_age"), None, "test", 4, limit=4, baseline=True, baseline_limit=8)
    assert set(out) == {"mae", "baseline/mae"} and out["baseline/mae"] >= 0
    assert set(evaluate_task(model, get_task("synth_age"), None, "test", 4, limit=4)) == {"mae"}
    spec = get_task("synth_age").model_copy(update={"baseline": None})
    with pytest.raises(BaselineUnavailable, match="declares no baseline"):
        evaluate_task(model, spec, None, "test", 4, limit=4, baseline=True)
    result = evaluate_with_baseline(model, spec, None, "test", 4, limit=4)
    assert result.baseline is None and "declares no baseline" in result.baseline_error


def test_missing_training_split_is_reported_not_raised(tmp_path: Path) -> None:
    from tests.test_families_age import write_image

    (tmp_path / "label" / "RANDOM_80_20").mkdir(parents=True)
    for i in range(3):
        write_image(tmp_path / "data" / f"t{i}.jpg")
    (tmp_path / "label" / "RANDOM_80_20" / "test.txt").write_text("".join(f"t{i}.jpg {30 + i}\n" for i in range(3)))
    model = tiny_build(["age_morph2"])
    result = evaluate_with_baseline(model, get_task("age_morph2"), str(tmp_path), "test", 4)
    assert result.baseline is None and "'train' split" in result.baseline_error and "mae" in result.metrics
    (tmp_path / "data" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "label" / "RANDOM_80_20" / "train.txt").write_text("bad.jpg 40\n")
    result = evaluate_with_baseline(model, get_task("age_morph2"), str(tmp_path), "test", 4)
    assert result.baseline is None and "bad.jpg" in result.baseline_error and "cannot decode" in result.baseline_error


def test_cli_eval_prints_metrics_beside_baselines_and_the_protocol(tmp_path: Path, capsys) -> None:
    model = tiny_build(["synth_expression", "synth_age"])
    model.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "m.json"
    assert main(["eval", str(tmp_path / "ckpt"), "--limit", "8", "--baseline-limit", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "baseline: majority training class" in text and "baseline: mean training value" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("accuracy"))
    assert "baseline" in line
    data = json.loads(out.read_text())
    assert {"accuracy", "baseline/accuracy"} <= set(data["synth_expression"])
    assert data["_about"]["synth_age"]["baseline"].startswith("mean training value")
    assert "protocol" in data["_about"]["synth_age"]
    assert "no error bars: 8 items are too few for error bars" in text  # 8 items: said, not guessed
    assert data["_about"]["synth_age"]["error_bars_error"] == "8 items are too few for error bars"
    assert main(["eval", str(tmp_path / "ckpt"), "--limit", "20", "--baseline-limit", "8", "--json", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("mae"))
    assert "beats it? " in line and "±" in line  # lower is better: the verdict follows the metric's direction
    data = json.loads(out.read_text())
    assert data["synth_age"]["margin_se/mae"] >= 0 and data["_about"]["synth_age"]["error_bars_error"] is None
