"""benchmarks/attribute_ranking.py: the ROC AUC and the per-attribute rows it reports."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
ranking = pytest.importorskip("attribute_ranking")


def _pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40).filter(
        lambda items: len({label for _, label in items}) == 2
    )
)
def test_the_auc_is_the_share_of_positive_negative_pairs_ranked_right_ties_half(items):
    scores = np.array([s for s, _ in items], np.float64) / 7  # few distinct values: many ties
    labels = np.array([label for _, label in items])
    assert ranking.roc_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    assert ranking.roc_auc(np.exp(3 * scores), labels) == pytest.approx(ranking.roc_auc(scores, labels), abs=1e-12)
    assert ranking.roc_auc(-scores, labels) == pytest.approx(1 - ranking.roc_auc(scores, labels), abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40))
def test_the_best_threshold_is_the_best_of_every_threshold_and_never_splits_ties(items):
    scores = np.array([s for s, _ in items], np.float64) / 7
    labels = np.array([label for _, label in items])
    cuts = np.concatenate([[-1.0], np.unique(scores)])  # "scores > cut": nothing called, then each distinct value
    brute = max(float(((scores > cut) == labels).mean()) for cut in cuts)
    assert ranking.best_threshold_accuracy(scores, labels) == pytest.approx(brute, abs=1e-12)
    assert ranking.best_threshold_accuracy(scores, labels) >= max(labels.mean(), 1 - labels.mean()) - 1e-12


def test_the_auc_of_one_class_is_undefined():
    assert np.isnan(ranking.roc_auc(np.array([0.2, 0.7]), np.array([True, True])))


def test_rows_tell_a_well_ranked_attribute_read_at_its_majority_from_one_read_right():
    targets = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], np.float64)
    probs = np.array([[0.4, 0.1], [0.1, 0.2], [0.2, 0.9], [0.3, 0.3]])  # first: ranked right, never over 0.5
    rows = ranking.attribute_rows(["A", "B"], probs, targets, np.array([0, 0]))
    assert rows[0] == {
        "attribute": "A",
        "majority": 0.75,
        "above_majority": 0.0,
        "best_threshold_above_majority": 0.25,  # a threshold under 0.4 would call it right
        "auc": 1.0,
    }
    assert rows[1]["above_majority"] == 0.25 and rows[1]["auc"] == 1.0
    flipped = ranking.attribute_rows(["A", "B"], probs, targets, np.array([1, 0]))
    assert flipped[0]["majority"] == 0.25 and flipped[0]["above_majority"] == 0.5
