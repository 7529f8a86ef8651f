"""Contract tests run over every registered task, the way timm tests every registered model."""

from __future__ import annotations

import pytest
import torch

import faceptor_core
from faceptor_core import predictions as P
from tests.conftest import tiny_build

TASKS = [t.name for t in faceptor_core.list_tasks()]
EXPECTED = {
    "landmarks": P.LandmarkPrediction,
    "segmentation": P.ParsingPrediction,
    "age_distribution": P.AgePrediction,
    "classification": P.ClassificationPrediction,
    "multilabel": P.MultilabelPrediction,
    "regression": P.RegressionPrediction,
    "embedding": P.EmbeddingPrediction,
}


@pytest.mark.parametrize("variant", ["faceptor", "naive"])
@pytest.mark.parametrize("task", TASKS)
def test_task_contract(task, variant, images, tmp_path):
    spec = faceptor_core.get_task(task)
    model = tiny_build([task], variant).eval()
    size = 64 if spec.head_type == "dense" else 32
    raw = model(images)[task]
    b = images.shape[0]
    if spec.head_type == "dense":
        assert raw.shape == (b, spec.num_queries, size // 4, size // 4)
    elif spec.head_type == "attribute":
        assert raw.shape == (b, spec.num_queries)
    else:
        assert raw.shape == (b, spec.embedding_dim)
    assert torch.isfinite(raw).all()

    pred = model.predict(images)[task]
    assert isinstance(pred, EXPECTED[spec.output])
    h, w = images.shape[-2:]
    if spec.output == "landmarks":
        assert pred.points.shape == (b, spec.num_queries, 2)
        assert (pred.points >= -0.5).all() and (pred.points[..., 0] <= w - 0.5).all()
    if spec.output == "segmentation":
        assert pred.labels.shape == (b, h, w)
        assert int(pred.labels.max()) < spec.num_queries
    if spec.output == "embedding":
        torch.testing.assert_close(pred.embedding.norm(dim=-1), torch.ones(b))
    assert isinstance(pred.item(0), dict)

    model.save_pretrained(tmp_path)
    loaded = faceptor_core.load(tmp_path).eval()
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(images)[task], raw, rtol=0, atol=0)
