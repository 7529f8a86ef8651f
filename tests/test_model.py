"""Model behaviour: batched decoding, size groups, parameter counts, weights I/O, Layer-Attention."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import faceptor_core
from faceptor_core import TaskNotFoundError, WeightsMismatchError
from faceptor_core.model.config import EncoderConfig
from faceptor_core.model.encoder import ViTEncoder, resize_pos_grid
from faceptor_tasks.builtin import PAPER_TASKS
from tests.conftest import tiny_build


@pytest.fixture(scope="module")
def paper_model():
    return tiny_build(PAPER_TASKS).eval()


def test_paper_parameter_counts():
    faceptor = faceptor_core.build(PAPER_TASKS)
    assert abs(faceptor.num_parameters() / 1e6 - 103.2) <= 0.1
    del faceptor
    naive = faceptor_core.build(PAPER_TASKS, variant="naive")
    assert abs(naive.num_parameters() / 1e6 - 178.9) / 178.9 <= 0.02


def test_one_batched_pass_equals_each_task_alone(paper_model, images):
    together = paper_model(images)
    assert set(together) == set(PAPER_TASKS)
    for task in PAPER_TASKS:
        torch.testing.assert_close(paper_model(images, [task])[task], together[task], atol=1e-5, rtol=1e-5)


@settings(max_examples=12, deadline=None)
@given(st.sets(st.sampled_from(PAPER_TASKS), min_size=1))
def test_any_subset_decodes_like_each_task_alone(paper_model, subset):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 40, 40, generator=g)
    out = paper_model(x, sorted(subset))
    assert set(out) == subset
    for task in subset:
        torch.testing.assert_close(paper_model(x, [task])[task], out[task], atol=1e-5, rtol=1e-5)


def test_one_encoder_pass_per_input_size(paper_model, images, monkeypatch):
    calls = []
    original = paper_model.encoder.forward

    def counting(x, layers=None):
        calls.append(tuple(x.shape[-2:]))
        return original(x, layers)

    monkeypatch.setattr(paper_model.encoder, "forward", counting)
    decoder_calls = []
    original_dec = paper_model.decoder.forward
    monkeypatch.setattr(
        paper_model.decoder, "forward", lambda *a, **k: decoder_calls.append(1) or original_dec(*a, **k)
    )
    paper_model(images)
    assert sorted(calls) == [(32, 32), (64, 64)]
    assert len(decoder_calls) == 2  # one pass per input size's job, each decoding all of that size's tasks


def test_jobs_of_one_shape_share_a_decoder_pass_and_no_row_is_padded(paper_model, images, monkeypatch):
    """A training step's jobs: rows of one task each. Those of equal query counts share a pass; no pass carries
    more query rows than its jobs ask for."""
    from faceptor_core.model.base import resize_images

    shapes = []
    original_dec = paper_model.decoder.forward
    monkeypatch.setattr(
        paper_model.decoder,
        "forward",
        lambda tgt, *a, **k: shapes.append(tuple(tgt.shape[:2])) or original_dec(tgt, *a, **k),
    )
    x32, x64 = resize_images(images, 32), resize_images(images, 64)
    rows = {"expression_rafdb": slice(0, 1), "attributes_celeba": slice(1, 2), "landmarks_300w": slice(0, 2)}
    out = paper_model.forward_multitask({32: x32, 64: x64}, rows)
    queries = {t: paper_model.select(t)[0].num_queries for t in rows}
    assert sorted(shapes) == sorted(
        [(1, queries["expression_rafdb"]), (1, queries["attributes_celeba"]), (2, queries["landmarks_300w"])]
    )
    full = paper_model(images, list(rows))
    for task, r in rows.items():
        torch.testing.assert_close(out[task], full[task][r], atol=1e-5, rtol=1e-5)
    shapes.clear()
    paper_model.forward_multitask({32: x32}, {"expression_rafdb": slice(0, 1), "age_morph2": slice(1, 2)})
    assert len(shapes) == 2  # 7 and 101 queries: two passes, neither padded

    from faceptor_core.model.base import Job

    expr, attr = paper_model.select("expression_rafdb")[0], paper_model.select("attributes_celeba")[0]
    feats = paper_model.encode(paper_model.prepare(images, [32]))
    shapes.clear()  # equal lengths share one pass, whatever order their tasks come in
    shared = paper_model.run_jobs(feats, [Job(32, (expr, attr), slice(0, 1)), Job(32, (attr, expr), slice(1, 2))])
    assert shapes == [(1 + 1, expr.num_queries + attr.num_queries)]
    # run_jobs keeps each task's last job's rows: here row 1
    alone = paper_model(images, ["expression_rafdb", "attributes_celeba"])
    torch.testing.assert_close(shared["attributes_celeba"], alone["attributes_celeba"][1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared["expression_rafdb"], alone["expression_rafdb"][1:2], atol=1e-5, rtol=1e-5)
    shapes.clear()
    same = paper_model.run_jobs(feats, [Job(32, (expr,), slice(0, 1)), Job(32, (expr,), slice(1, 2))])
    assert shapes == [(2, expr.num_queries)]
    torch.testing.assert_close(same["expression_rafdb"], alone["expression_rafdb"][1:2], atol=1e-5, rtol=1e-5)


def test_other_tasks_of_equal_query_count_share_a_pass_with_their_own_queries(images, monkeypatch):
    """Two datasets of one task (7 expression queries each) in one training step: one decoder pass, and each task's
    rows read its own queries."""
    from faceptor_core.model.base import resize_images

    tasks = ["expression_rafdb", "expression_affectnet"]
    model = tiny_build(tasks).eval()
    shapes = []
    original_dec = model.decoder.forward
    monkeypatch.setattr(
        model.decoder, "forward", lambda tgt, *a, **k: shapes.append(tuple(tgt.shape[:2])) or original_dec(tgt, *a, **k)
    )
    rows = {"expression_rafdb": slice(0, 1), "expression_affectnet": slice(1, 2)}
    out = model.forward_multitask({32: resize_images(images, 32)}, rows)
    assert shapes == [(2, 7)]
    for task, r in rows.items():
        torch.testing.assert_close(out[task], model(images, [task])[task][r], atol=1e-5, rtol=1e-5)


def test_mapping_input_matches_resized_input(paper_model, images):
    from faceptor_core.model.base import resize_images

    direct = paper_model(images)
    mapped = paper_model({32: resize_images(images, 32), 64: resize_images(images, 64)})
    for task in PAPER_TASKS:
        torch.testing.assert_close(mapped[task], direct[task])
    with pytest.raises(ValueError, match="no batch given for input size"):
        paper_model({32: resize_images(images, 32)})


def test_forward_multitask_rows_match_full_batch(paper_model, images):
    full = paper_model(images)
    from faceptor_core.model.base import resize_images

    x32, x64 = resize_images(images, 32), resize_images(images, 64)
    rows = {
        "age_morph2": slice(0, 1),
        "expression_rafdb": slice(1, 2),
        "recognition_ms1mv3": slice(0, 2),
        "landmarks_300w": slice(1, 2),
        "parsing_celebamask_hq": slice(0, 1),
        "attributes_celeba": slice(0, 2),
    }
    out = paper_model.forward_multitask({32: x32, 64: x64}, rows)
    for task, r in rows.items():
        torch.testing.assert_close(out[task], full[task][r], atol=1e-5, rtol=1e-5)


def test_unknown_task_in_forward(paper_model, images):
    with pytest.raises(TaskNotFoundError, match=r"Did you mean: age_morph2\?.* tasks in this model: ") as info:
        paper_model(images, ["age_morph"])
    assert "registered" not in str(info.value)  # the model's tasks, not the registry's


def test_predict_accepts_numpy_uint8(paper_model):
    import numpy as np

    arr = (np.random.default_rng(0).random((2, 50, 60, 3)) * 255).astype(np.uint8)
    pred = paper_model.predict(arr)
    assert pred["parsing_celebamask_hq"].labels.shape == (2, 50, 60)
    assert pred["landmarks_300w"].points.shape == (2, 68, 2)
    age = pred["age_morph2"].age
    assert ((age >= 0) & (age <= 100)).all()
    torch.testing.assert_close(pred["expression_rafdb"].probabilities.sum(-1), torch.ones(2))


def test_predict_in_image_geometry(paper_model, images):
    """Landmarks come back in the pixel frame of the image given, whatever its size."""
    small = paper_model.predict(images)["landmarks_300w"].points
    big = paper_model.predict(torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest"))
    # same content at twice the size (resized to the same network input): coordinates scale by 2 (+0.5 shift)
    torch.testing.assert_close(big["landmarks_300w"].points, (small + 0.5) * 2 - 0.5, atol=0.15, rtol=0)


def test_load_into_model_with_other_tasks_names_them(tmp_path):
    a = tiny_build(["age_morph2", "expression_rafdb"])
    b = tiny_build(["age_morph2", "attributes_celeba"])
    with pytest.raises(WeightsMismatchError) as info:
        b.load_weights(a.state_dict())
    msg = str(info.value)
    assert "attributes_celeba" in msg and "expression_rafdb" in msg
    left = b.load_weights(a.state_dict(), strict=False)
    assert any("expression_rafdb" in k for k in left)
    torch.testing.assert_close(b.queries["age_morph2"].feat, a.queries["age_morph2"].feat)


def test_manifest_and_corrupt_checkpoint(tmp_path):
    model = tiny_build(["age_morph2"])
    model.save_pretrained(tmp_path)
    manifest = json.loads((tmp_path / "faceptor.json").read_text())
    assert manifest["config"]["tasks"][0]["name"] == "age_morph2"
    assert manifest["library_version"] == faceptor_core.__version__
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(faceptor_core.CheckpointError, match="model.safetensors"):
        faceptor_core.load(tmp_path)
    (tmp_path / "faceptor.json").write_text("{broken")
    with pytest.raises(faceptor_core.CheckpointError, match="faceptor.json"):
        faceptor_core.load(tmp_path)


def test_encoder_returns_every_block_as_maps():
    enc = ViTEncoder(EncoderConfig(name="vit_t16", drop_path_rate=0.0))
    feats = enc(torch.rand(1, 3, 48, 32))
    assert len(feats) == 12
    assert all(f.shape == (1, 192, 3, 2) for f in feats)


def test_position_grid_resize_is_bicubic_without_antialias():
    pos = torch.randn(1, 32 * 32, 8)
    out = resize_pos_grid(pos, 7)
    grid = pos.reshape(1, 32, 32, 8).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(grid, size=(7, 7), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, ref.permute(0, 2, 3, 1).reshape(1, 49, 8))
    assert resize_pos_grid(pos, 32) is pos


def test_stage2_layer_attention_and_preference(images):
    model = tiny_build(["expression_rafdb", "landmarks_300w"])
    new = model.add_memory_layers([1, 3, 5, 7, 9])
    assert sorted(new) == sorted(
        [f"layer_attention.proj.{i}.{p}" for i in (1, 3, 5, 7, 9) for p in ("weight", "bias")]
        + [f"layer_attention.level_embed.{i}" for i in (1, 3, 5, 7, 9)]
    )
    assert model.config.memory_layers == (11, 1, 3, 5, 7, 9)
    pref = model.layer_preference(images, "expression_rafdb")
    assert list(pref) == [11, 1, 3, 5, 7, 9]
    assert abs(sum(pref.values()) - 1) < 1e-5
    out = model(images)
    assert out["landmarks_300w"].shape[1] == 68


def test_cross_attention_rows_are_distributions_over_every_memory_token(images):
    model = tiny_build(["expression_rafdb", "age_morph2", "recognition_ms1mv3"])
    model.add_memory_layers([1, 3])
    weights, spans = model.cross_attention(images, "expression_rafdb")
    tokens = spans[-1][2]
    assert weights.shape == (model.config.decoder.num_layers, len(images), 7, tokens)
    assert [layer for layer, _, _ in spans] == [11, 1, 3]
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
    assert model.training  # restored after the eval-mode pass
    with pytest.raises(ValueError, match="bypasses the decoder"):
        model.cross_attention(images, "recognition_ms1mv3")


def test_add_task_for_prompt_tuning(images):
    model = tiny_build(["age_morph2"])
    spec = faceptor_core.get_task("expression_rafdb")
    names = model.add_task(spec.head_config().model_copy(update={"input_size": 32}))
    assert names == ["queries.expression_rafdb.feat", "queries.expression_rafdb.pos"]
    assert model(images)["expression_rafdb"].shape == (2, 7)
    with pytest.raises(ValueError, match="already has"):
        model.add_task(spec.head_config())


def test_naive_add_task_and_key_ownership(images):
    model = tiny_build(["age_morph2"], variant="naive")
    names = model.add_task(
        faceptor_core.get_task("expression_rafdb").head_config().model_copy(update={"input_size": 32})
    )
    assert all(n.startswith("heads.expression.") for n in names)
    assert model.task_of_key("heads.age.classifiers.age_morph2.weight") == "age_morph2"
    assert model(images)["expression_rafdb"].shape == (2, 7)


def test_any_timm_vit_name_is_accepted(images):
    model = faceptor_core.build(
        ["expression_rafdb"],
        encoder="vit_tiny_patch16_224",
        input_sizes=32,
        decoder={"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 1},
    )
    assert model.encoder.embed_dim == 192 and model.encoder.depth == 12
    assert model(images)["expression_rafdb"].shape == (2, 7)
    with pytest.raises(Exception, match="vit_tiny_patch16_2244"):
        faceptor_core.build(["expression_rafdb"], encoder="vit_tiny_patch16_2244")
