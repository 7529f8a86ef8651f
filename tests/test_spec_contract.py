"""The task contract declared in faceptor_core.spec: the callables' exact signatures (the same in docs/plugins.md),
the Metric protocol with its meta, and pair scoring declared by the metric."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from faceptor_core import TaskSpec
from faceptor_core import spec as S
from faceptor_core.errors import PluginContractError
from faceptor_core.evaluate import evaluate_task, primary_value
from faceptor_tasks.families.age import AgeMAE
from faceptor_tasks.families.attributes import AttributeAccuracy
from faceptor_tasks.families.expression import AccuracyMetric
from faceptor_tasks.families.landmarks import NMEMetric, inter_points
from faceptor_tasks.families.parsing import ParsingF1
from faceptor_tasks.families.recognition import VerificationMetric
from tests.conftest import tiny_build
from tests.toytasks import toy_specs

DOCS = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")

#: TaskSpec field (or method) -> the protocol method that declares its signature.
DECLARED = {
    "dataset": S.DatasetFactory.__call__,
    "transform": S.Transform.__call__,
    "transforms": S.TransformsFactory.__call__,
    "loss": S.LossFactory.__call__,
    "metrics": S.MetricsFactory.__call__,
    "decode": S.DecodeFn.__call__,
    "baseline": S.BaselineFactory.__call__,
    "Metric.update": S.Metric.update,
    "Metric.compute": S.Metric.compute,
    "Metric.reset": S.Metric.reset,
    "PairMetric.update_pairs": S.PairMetric.update_pairs,
    "PriorBaseline.raw_output": S.PriorBaseline.raw_output,
}


def signature_line(name: str, fn) -> str:
    """``name(a: T, b: U = d) -> R`` from the protocol's own (string) annotations."""
    sig = inspect.signature(fn)
    params = []
    for p in list(sig.parameters.values())[1:]:  # without self
        text = f"{p.name}: {p.annotation}"
        params.append(text if p.default is inspect.Parameter.empty else f"{text} = {p.default!r}")
    return f"{name}({', '.join(params)}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", list(DECLARED))
def test_docs_state_each_declared_signature_exactly(name: str) -> None:
    line = signature_line(name, DECLARED[name])
    assert line in DOCS, f"docs/plugins.md lacks {line!r}"


def test_taskspec_fields_are_typed_with_the_protocols() -> None:
    fields = TaskSpec.model_fields
    for field, proto in [
        ("dataset", S.DatasetFactory),
        ("transforms", S.TransformsFactory),
        ("loss", S.LossFactory),
        ("metrics", S.MetricsFactory),
        ("decode", S.DecodeFn),
        ("baseline", S.BaselineFactory),
    ]:
        assert fields[field].annotation == proto | None
    with pytest.raises(ValidationError, match="metrics"):
        TaskSpec(
            name="x",
            family="x",
            head_type="attribute",
            output="regression",
            num_queries=1,
            input_size=32,
            metrics="accuracy",
        )


FAMILY_METRICS = [
    AgeMAE(),
    AttributeAccuracy(("smiling", "glasses")),
    AccuracyMetric(3),
    NMEMetric({"inter_ocular": inter_points(0, 1), "p": inter_points(1, 2)}, auc=[("inter_ocular", 0.1)]),
    ParsingF1(("background", "skin", "hair")),
    VerificationMetric(),
]


@pytest.mark.parametrize("metric", FAMILY_METRICS, ids=lambda m: type(m).__name__)
def test_every_family_metric_is_a_metric_with_meta_for_each_value(metric) -> None:
    assert isinstance(metric, S.Metric)
    assert isinstance(metric, S.PairMetric) == metric.pairs == isinstance(metric, VerificationMetric)
    torch.manual_seed(0)
    if isinstance(metric, VerificationMetric):
        e = torch.nn.functional.normalize(torch.randn(20, 8), dim=-1)
        metric.update_pairs(e[:10], e[10:], torch.arange(10) % 2 == 0)
    elif isinstance(metric, NMEMetric):
        metric.update(torch.rand(4, 3, 2) * 10, torch.rand(4, 3, 2) * 10)
    elif isinstance(metric, ParsingF1):
        metric.update(torch.randint(0, 3, (2, 8, 8)), torch.randint(0, 3, (2, 8, 8)))
    elif isinstance(metric, AccuracyMetric):
        metric.update(torch.randn(6, 3), torch.arange(6) % 3)
    elif isinstance(metric, AttributeAccuracy):
        metric.update(torch.rand(5, 2), torch.randint(0, 2, (5, 2)).float())
    else:
        metric.update(torch.rand(5) * 80, torch.rand(5) * 80)
    values = metric.compute()
    assert set(values) <= set(metric.meta)
    for key, v in values.items():
        m = metric.meta[key]
        assert m.description and m.better in ("higher", "lower", None)
        if m.unit == "fraction":
            assert 0 <= v <= 1


def test_the_primary_metric_direction_comes_from_meta() -> None:
    spec = toy_specs()[1]  # toy_bright: MAE, declared lower-is-better by its meta
    meta = {"mae": S.MetricMeta(better="lower", unit="", description="")}
    assert primary_value(spec, {"mae": 2.0}, meta) == -2.0
    flipped = {"mae": S.MetricMeta(better="higher", unit="", description="")}
    assert primary_value(spec, {"mae": 2.0}, flipped) == 2.0
    with pytest.raises(ValueError, match="no score"):
        primary_value(spec, {"mae": 2.0}, {"mae": S.MetricMeta(better=None)})


class _PairItems(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {
            "image_a": torch.rand(3, 32, 32),
            "image_b": torch.rand(3, 32, 32),
            "issame": bool(i % 2),
            "target": i % 3,
        }


def test_pair_scoring_is_declared_by_the_metric_not_guessed_from_the_items() -> None:
    toy = toy_specs()[0]
    pairs_for_an_image_metric = toy.model_copy(
        update={"dataset": lambda root, split, transform=None: _PairItems(), "transforms": None}
    )
    model = tiny_build([toy])
    with pytest.raises(PluginContractError, match=r"'toy_channel'.*without 'image'.*pairs = True"):
        evaluate_task(model, pairs_for_an_image_metric, None, "test")
    image_items_for_a_pair_metric = toy.model_copy(update={"metrics": lambda spec: VerificationMetric()})
    with pytest.raises(PluginContractError, match=r"'toy_channel'.*without image_a, image_b, issame"):
        evaluate_task(model, image_items_for_a_pair_metric, None, "test")


def test_head_type_is_the_field_and_the_old_name_still_reads():
    """Manifests and plugins written before the rename (``head``) still load; reading ``.head`` warns."""
    from faceptor_core.spec import TaskHead

    old = {
        "name": "a",
        "family": "age",
        "head": "attribute",
        "output": "regression",
        "num_queries": 1,
        "input_size": 32,
    }
    head = TaskHead.model_validate(old)
    assert head.head_type == "attribute" and "head_type" in head.model_dump() and "head" not in head.model_dump()
    with pytest.warns(DeprecationWarning, match="head_type"):
        assert head.head == "attribute"
