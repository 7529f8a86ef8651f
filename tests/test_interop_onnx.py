"""ONNX export: onnxruntime's outputs equal torch's; dynamic batch; one input per size or a single ``images``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from faceptor_core.cli import main
from faceptor_core.interop.onnx_export import adaptive_avg_pool2d_static, export_onnx, verify_onnx
from tests.conftest import tiny_build

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TASKS = ["recognition_ms1mv3", "age_morph2", "expression_rafdb", "attributes_celeba", "parsing_lapa", "landmarks_300w"]


def _graph_io(path):
    graph = onnx.load(str(path)).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.input}
    return dims, [o.name for o in graph.output]


@pytest.mark.parametrize("variant", ["faceptor", "naive"])
def test_export_matches_torch(tmp_path, variant):
    model = tiny_build(TASKS, variant=variant).eval()
    path = tmp_path / "model.onnx"
    info = export_onnx(model, path)
    assert info.inputs == {"images_32": 32, "images_64": 64}
    dims, outputs = _graph_io(path)
    assert dims == {"images_32": ["batch_32", 3, 32, 32], "images_64": ["batch_64", 3, 64, 64]}
    assert sorted(outputs) == sorted(TASKS)
    diffs = verify_onnx(model, path, batch=3)  # traced at batch 2
    assert set(diffs) == set(TASKS)
    assert max(d.max_abs for d in diffs.values()) <= 1e-4, diffs


@pytest.mark.parametrize(("pixel_fpn", "pixel_stride"), [(False, 4), (True, 4), (True, 2)])
def test_export_of_the_demos_resnet_stem_with_its_stem_skips(tmp_path, pixel_fpn, pixel_stride):
    """The demo's model (ResNet stem, the stem's maps into the pixel decoder) exports with its skips, not without."""
    import faceptor_core
    from faceptor_core.model.config import EncoderConfig

    enc = EncoderConfig(name="vit_t16", stem="resnet", stem_width=8, depth=1, drop_path_rate=0)
    decoder = {"hidden_dim": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1, "stem_skip": True}
    tasks = ["synth_parsing", "synth_landmarks", "synth_age"]
    decoder = {**decoder, "pixel_fpn": pixel_fpn, "pixel_stride": pixel_stride}
    model = faceptor_core.build(tasks, encoder=enc, input_sizes=64, decoder=decoder)
    with torch.no_grad():  # not the identity they start as
        for block in (model.pixel_refine and model.pixel_refine.conv, model.pixel_fine and model.pixel_fine.expand):
            if block is not None:
                block.weight.normal_(std=0.1)
    path = tmp_path / "demo.onnx"
    export_onnx(model.eval(), path)
    diffs = verify_onnx(model, path, batch=3)
    assert set(diffs) == set(tasks)
    assert max(d.max_abs for d in diffs.values()) <= 1e-4, diffs


def test_export_of_a_grid_readout_on_a_grid_it_does_not_divide(tmp_path):
    """7 x 7 tokens pooled to 3 x 3 cells (overlapping bins) export through the constant pooling."""
    import faceptor_core

    decoder = {"hidden_dim": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1, "grid_readout": 3}
    model = faceptor_core.build(["synth_attributes"], encoder="vit_t16", input_sizes=112, decoder=decoder)
    with torch.no_grad():  # not the zero it starts at
        model.grid_readout["synth_attributes"].fc.weight.normal_(std=0.1)
    path = tmp_path / "grid.onnx"
    export_onnx(model.eval(), path)
    diffs = verify_onnx(model, path, batch=3)
    assert max(d.max_abs for d in diffs.values()) <= 1e-4, diffs


def test_single_size_and_task_subset(tmp_path):
    model = tiny_build(TASKS, variant="naive").eval()
    path = tmp_path / "sub.onnx"
    info = export_onnx(model, path, tasks=["age_morph2", "parsing_lapa"], image_size=96)  # pyramid pooling 3 -> 2, 6
    assert info.inputs == {"images": 96} and info.outputs == ("age_morph2", "parsing_lapa")
    dims, outputs = _graph_io(path)
    assert dims == {"images": ["batch_96", 3, 96, 96]} and outputs == ["age_morph2", "parsing_lapa"]
    diffs = verify_onnx(model, path, tasks=["age_morph2", "parsing_lapa"], image_size=96, batch=1)
    assert max(d.max_abs for d in diffs.values()) <= 1e-4, diffs


@pytest.mark.parametrize(("size", "out"), [(32, 6), (3, 2), (2, 6), (7, 3), (4, 1)])
def test_static_adaptive_pooling(size, out):
    x = torch.randn(2, 3, size, size)
    assert torch.allclose(adaptive_avg_pool2d_static(x, out), F.adaptive_avg_pool2d(x, out), atol=1e-6)


def test_cli_export(tmp_path, capsys):
    model = tiny_build(["age_morph2", "parsing_lapa"])
    model.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "ckpt"), "--onnx", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "images_32 (B x 3 x 32 x 32)" in text and "parsing_lapa: max |onnxruntime - torch|" in text
    assert (
        main(
            [
                "export",
                str(tmp_path / "ckpt"),
                "--onnx",
                str(out),
                "--tasks",
                "age_morph2",
                "--image-size",
                "48",
                "--verify",
            ]
        )
        == 0
    )
    assert _graph_io(out) == ({"images": ["batch_48", 3, 48, 48]}, ["age_morph2"])
    assert main(["export", str(tmp_path / "ckpt"), "--onnx", str(out), "--tasks", "age_morf2"]) == 2
    assert "age_morf2" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "ckpt"), "--onnx", str(out), "--image-size", "50"]) == 2
    assert "not a multiple of the patch size" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), "--onnx", str(out)]) == 2
