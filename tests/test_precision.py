"""A loaded model is ready for inference; the model runs in float64, float16 and bfloat16 as well as float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import faceptor_core
from faceptor_core.photo import analyze, photo_record
from tests.conftest import tiny_build

TASKS = ["landmarks_300w", "parsing_lapa", "age_morph2", "expression_rafdb", "attributes_celeba", "recognition_ms1mv3"]


def test_load_returns_a_model_in_eval_mode(tmp_path):
    model = tiny_build(["age_morph2", "expression_rafdb"])
    assert model.training  # built models train by default, as any nn.Module
    model.save_pretrained(tmp_path)
    loaded = faceptor_core.load(tmp_path)
    assert not loaded.training
    assert not any(m.training for m in loaded.modules())
    x = torch.rand(2, 3, 32, 32)
    a, b = loaded(x), loaded(x)  # no dropout or drop-path: the same input gives the same output
    for name in a:
        assert torch.equal(a[name], b[name])


@pytest.mark.parametrize("variant", ["faceptor", "naive"])
def test_float64_forward_matches_float32(variant, images):
    model32 = tiny_build(TASKS, variant=variant).eval()
    model64 = tiny_build(TASKS, variant=variant).eval().double()
    assert model64.dtype == torch.float64
    out32, out64 = model32(images), model64(images)  # float32 images are cast to the model's type
    assert out32.keys() == out64.keys()
    for name in out32:
        assert out64[name].dtype == torch.float64, name
        torch.testing.assert_close(out64[name].float(), out32[name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_predict_and_analyze_in_other_precisions(dtype):
    model32 = tiny_build(TASKS).eval()
    model = tiny_build(TASKS).eval().to(dtype)
    assert model.dtype == dtype
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    ref, preds = model32.predict(x), model.predict(x)
    tol = 1e-4 if dtype == torch.float64 else 0.1
    # decoded values come back as float32 whatever the model's type (docs/architecture.md, "Precision")
    torch.testing.assert_close(preds["landmarks_300w"].points, ref["landmarks_300w"].points, rtol=0, atol=tol * 48)
    torch.testing.assert_close(
        preds["expression_rafdb"].probabilities, ref["expression_rafdb"].probabilities, rtol=0, atol=tol
    )
    torch.testing.assert_close(preds["age_morph2"].age, ref["age_morph2"].age, rtol=0, atol=tol * 100)
    assert preds["parsing_lapa"].labels.shape == ref["parsing_lapa"].labels.shape
    for name in ("landmarks_300w", "age_morph2", "expression_rafdb", "attributes_celeba"):
        for field in vars(preds[name]).values():
            if isinstance(field, torch.Tensor) and field.is_floating_point():
                assert field.dtype == torch.float32, name
    photo = (np.random.default_rng(0).random((80, 64, 3)) * 255).astype(np.uint8)
    record = photo_record(analyze(model, [photo], detector=None)[0], model=model)
    assert len(record["faces"]) == 1 and set(TASKS) <= set(record["faces"][0]["tasks"])
