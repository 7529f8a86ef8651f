"""Error bars on a model's margin over the trivial answer: every item in one group, the batch-means standard
error, and verdicts that say "within noise" instead of a win the test set cannot show."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faceptor_core import get_task
from faceptor_core.evaluate import evaluate_with_baseline
from faceptor_core.margins import (
    MAX_GROUPS,
    GroupedScores,
    group_count,
    margin_se,
    practical_margin,
    take_items,
    verdict,
)
from faceptor_core.train.commands import format_evaluation
from tests.conftest import tiny_build


class Accuracy:
    """An averaging metric: the share of predictions equal to their targets."""

    def __init__(self):
        self.hits, self.n = 0, 0

    def update(self, prediction, target, meta=None):
        prediction = torch.as_tensor(prediction)
        if prediction.ndim > 1:  # class probabilities
            prediction = prediction.argmax(-1)
        self.hits += int((prediction == torch.as_tensor(target)).sum())
        self.n += len(target)

    def compute(self):
        return {"accuracy": self.hits / self.n if self.n else math.nan}


def test_group_count_needs_two_items_a_group_and_five_groups():
    assert group_count(4) == 0 and group_count(9) == 0
    assert group_count(10) == 5 and group_count(64) == MAX_GROUPS and group_count(10_000) == MAX_GROUPS


def test_take_items_picks_rows_of_every_kind_of_batch_part():
    index = torch.tensor([2, 0])
    batch = {
        "t": torch.arange(8).view(4, 2),
        "a": np.arange(4) * 10,
        "l": ["w", "x", "y", "z"],
        "d": {"inner": torch.tensor([5, 6, 7, 8])},
        "shared": torch.tensor(3.0),
        "none": None,
    }
    out = take_items(batch, index)
    assert out["t"].tolist() == [[4, 5], [0, 1]] and out["a"].tolist() == [20, 0]
    assert out["l"] == ["y", "w"] and out["d"]["inner"].tolist() == [7, 5]
    assert float(out["shared"]) == 3.0 and out["none"] is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=8),
    st.integers(0, 2**31 - 1),
)
def test_every_item_lands_in_exactly_one_group(batch_sizes, seed):
    """Whatever the batches, the groups partition the items: their counts sum to the whole, and their hits to the
    whole set's (so an averaging metric's groups average to its value)."""
    items = sum(batch_sizes)
    rng = np.random.default_rng(seed)
    whole, grouped = Accuracy(), GroupedScores(Accuracy, items)
    for size in batch_sizes:
        pred, target = torch.as_tensor(rng.integers(0, 2, size)), torch.as_tensor(rng.integers(0, 2, size))
        whole.update(pred, target)
        grouped.feed("update", pred, target, None)
    if not grouped.k:
        assert grouped.compute() == [] and "too few" in grouped.error
        return
    assert sum(m.n for m in grouped.metrics) == whole.n == items
    assert sum(m.hits for m in grouped.metrics) == whole.hits
    assert max(m.n for m in grouped.metrics) - min(m.n for m in grouped.metrics) <= 1  # dealt round-robin


def test_margin_se_is_the_spread_of_the_paired_group_margins():
    groups = [{"accuracy": a, "f1": math.nan if i == 0 else 0.5} for i, a in enumerate([0.6, 0.7, 0.8, 0.5, 0.9])]
    base = [{"accuracy": b, "f1": 0.1} for b in [0.5, 0.5, 0.6, 0.5, 0.6]]
    se = margin_se(groups, base)
    margins = [0.1, 0.2, 0.2, 0.0, 0.3]
    assert se["accuracy"] == pytest.approx(np.std(margins, ddof=1) / math.sqrt(5))
    assert "f1" not in se  # not finite in every group: no error bar rather than a wrong one
    assert margin_se(groups, base[:4]) == {} and margin_se([], []) == {}


@pytest.mark.parametrize(
    ("value", "baseline", "se", "higher", "fraction", "said"),
    [
        (0.30, 0.16, 0.02, True, True, "yes (+0.1400 ± 0.0400)"),
        (0.17, 0.16, 0.02, True, True, "within noise (+0.0100 ± 0.0400)"),
        (0.17, 0.16, 0.001, True, True, "barely (+0.0100 ± 0.0020)"),  # consistent, but 1% of the way to 1
        (0.10, 0.16, 0.02, True, True, "**no** (-0.0600 ± 0.0400)"),
        (11.0, 23.9, 1.0, False, False, "yes (+12.9000 ± 2.0000)"),  # an error: lower is better
        (24.5, 23.9, 1.0, False, False, "within noise (-0.6000 ± 2.0000)"),
        (0.1174, 0.1175, 0.00002, False, False, "barely (+0.0001 ± 0.0000)"),  # a model still at the mean shape
        (0.30, 0.16, None, True, True, "yes (no error bar)"),
        (0.161, 0.16, None, True, True, "barely (no error bar)"),
        (0.30, None, 0.02, True, True, "-"),
        (0.30, 0.16, 0.02, None, False, "-"),  # no score (e.g. a threshold)
        (math.nan, 0.16, 0.02, True, True, "-"),
    ],
)
def test_verdict_counts_a_win_only_beyond_two_standard_errors_and_a_twentieth_of_the_way(
    value, baseline, se, higher, fraction, said
):
    assert verdict(value, baseline, se, higher, fraction) == said


def test_practical_margin_is_a_twentieth_of_the_way_to_a_perfect_score():
    assert practical_margin(0.16, True, fraction=True) == pytest.approx(0.042)
    assert practical_margin(23.9, False) == pytest.approx(1.195)  # an error: the way to 0
    assert practical_margin(18.7, True) == pytest.approx(0.935)  # no known perfect score: the baseline's own size


def test_evaluation_gives_each_metric_an_error_bar_and_the_cli_a_verdict():
    model = tiny_build(["synth_expression"])
    spec = get_task("synth_expression")
    result = evaluate_with_baseline(model, spec, None, "test", batch_size=8, limit=40, baseline_limit=40)
    assert len(result.groups) == len(result.baseline_groups) == 10 and not result.groups_error
    se = result.margin_se()
    assert set(se) == set(result.metrics) and all(v >= 0 for v in se.values())
    assert {f"margin_se/{k}" for k in result.metrics} <= set(result.flat())
    text = format_evaluation(result, spec)
    assert "beats it? " in text and "±" in text and "**" not in text
    quiet = evaluate_with_baseline(model, spec, None, "test", batch_size=8, limit=40, error_bars=False)
    assert quiet.metrics == result.metrics and quiet.groups == [] and quiet.groups_error == "not asked for"


class NeedsWholeBatches(Accuracy):
    """A third-party metric that cannot score fewer than 8 items at once."""

    def update(self, prediction, target, meta=None):
        if len(target) < 8:
            raise ValueError("needs batches of 8")
        super().update(prediction, target, meta)


def test_a_metric_that_cannot_score_a_group_leaves_no_error_bar_and_the_evaluation_goes_on():
    spec = get_task("synth_expression")
    model = tiny_build([spec.name])
    spec = spec.model_copy(update={"metrics": lambda spec: NeedsWholeBatches()})
    result = evaluate_with_baseline(model, spec, None, "test", batch_size=8, limit=40, baseline_limit=40)
    assert "accuracy" in result.metrics and result.groups == [] and "needs batches of 8" in result.groups_error
    assert result.margin_se() == {} and "margin_se/accuracy" not in result.flat()
    assert "no error bars: a group of items could not be scored (needs batches of 8)" in format_evaluation(result)
