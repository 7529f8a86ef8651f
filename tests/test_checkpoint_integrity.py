"""What loading validates: bounded manifests checked against the weights before anything is allocated, heads
consistent with the registered tasks, checksums, finite weights, and add-ons tied to their base."""

from __future__ import annotations

import importlib
import json
import warnings

import pytest
import torch
from safetensors.torch import save_file

import faceptor_core
from faceptor_core import CheckpointError
from faceptor_core.addons import ADDON_MANIFEST, ADDON_WEIGHTS, save_addon
from faceptor_core.checkpoint import ChecksumWarning
from tests.conftest import tiny_build


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    model = tiny_build(["age_morph2"])
    model.save_pretrained(root / "base")
    tuned = faceptor_core.load(root / "base")
    tuned.add_task(faceptor_core.get_task("expression_rafdb").head_config().model_copy(update={"input_size": 32}))
    save_addon(tuned, ["expression_rafdb"], root / "base", root / "addon")
    return root, model


def copy_of(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def edit_manifest(directory, edit):
    path = directory / "faceptor.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def no_allocation(monkeypatch):
    """Fail the test if a real (non-meta) model is built."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was allocated before the manifest was validated")

    monkeypatch.setattr(importlib.import_module("faceptor_core.build"), "from_config", refuse)


def test_round_trip_records_and_verifies_the_checksum(saved):
    root, model = saved
    manifest = json.loads((root / "base" / "faceptor.json").read_text())
    assert len(manifest["weights_sha256"]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = faceptor_core.load(root / "base")
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_absurd_sizes_are_refused_by_the_manifest_bounds(saved, tmp_path, monkeypatch):
    ckpt = copy_of(saved[0] / "base", tmp_path / "c")
    edit_manifest(ckpt, lambda m: m["config"]["tasks"][0].update(num_queries=400_000_000))
    no_allocation(monkeypatch)
    with pytest.raises(CheckpointError, match=r"faceptor.json: invalid model config: tasks\.0\.num_queries"):
        faceptor_core.load(ckpt)


def test_sizes_the_weights_do_not_have_are_refused_before_allocating(saved, tmp_path, monkeypatch):
    ckpt = copy_of(saved[0] / "base", tmp_path / "c")
    # within the bounds, but 64 layers x 65536-wide FFNs would be ~9 GB of decoder
    edit_manifest(ckpt, lambda m: m["config"]["decoder"].update(ffn_dim=65536, num_layers=64))
    no_allocation(monkeypatch)
    with pytest.raises(CheckpointError) as info:
        faceptor_core.load(ckpt)
    msg = str(info.value)
    assert "model.safetensors" in msg and "faceptor.json" in msg and "decoder.layers" in msg


def test_a_head_that_contradicts_the_registered_task_is_refused(saved, tmp_path):
    ckpt = copy_of(saved[0] / "base", tmp_path / "c")
    # same tensor shapes (101 queries), but a classifier is not an age distribution
    edit_manifest(ckpt, lambda m: m["config"]["tasks"][0].update(output="classification"))
    contradiction = r"faceptor.json: task 'age_morph2' contradicts .*output 'classification'"
    with pytest.raises(CheckpointError, match=contradiction):
        faceptor_core.load(ckpt)
    edit_manifest(ckpt, lambda m: m["config"]["tasks"][0].update(output="regression", head_type="dense"))
    with pytest.raises(CheckpointError, match="needs head 'attribute'"):
        faceptor_core.load(ckpt)


def test_damaged_weights_fail_the_checksum(saved, tmp_path):
    ckpt = copy_of(saved[0] / "base", tmp_path / "c")
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF  # a byte inside the last tensor: the file still parses
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors: SHA-256 .* differs .*faceptor.json"):
        faceptor_core.load(ckpt)


def test_old_checkpoints_without_a_checksum_load_with_a_warning(saved, tmp_path):
    ckpt = copy_of(saved[0] / "base", tmp_path / "c")
    edit_manifest(ckpt, lambda m: m.pop("weights_sha256"))
    with pytest.warns(ChecksumWarning, match="no weights_sha256"):
        model = faceptor_core.load(ckpt)
    assert model.task_names == ["age_morph2"]


def test_non_finite_weights_are_never_written_nor_loaded(saved, tmp_path):
    root, model = saved
    broken = tiny_build(["age_morph2"])
    with torch.no_grad():
        broken.queries["age_morph2"].feat[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"refusing to write .*queries.age_morph2.feat"):
        broken.save_pretrained(tmp_path / "nan")
    assert not (tmp_path / "nan" / "model.safetensors").exists()
    ckpt = copy_of(root / "base", tmp_path / "c")
    state = {k: v.contiguous() for k, v in broken.state_dict().items()}
    save_file(state, str(ckpt / "model.safetensors"))
    edit_manifest(ckpt, lambda m: m.pop("weights_sha256"))
    with pytest.warns(ChecksumWarning), pytest.raises(CheckpointError, match="NaN or infinite values in queries"):
        faceptor_core.load(ckpt)


def test_addon_loads_onto_its_base_only(saved, tmp_path):
    root, _ = saved
    model = faceptor_core.load(root / "base", addons=[root / "addon"])
    assert model.task_names == ["age_morph2", "expression_rafdb"]
    other = tmp_path / "other"
    retrained = tiny_build(["age_morph2"])
    with torch.no_grad():
        retrained.queries["age_morph2"].feat.add_(0.01)
    retrained.save_pretrained(other)
    with pytest.raises(CheckpointError, match=r"addon.json: this add-on was tuned on another base"):
        faceptor_core.load(other, addons=[root / "addon"])


def test_addon_without_base_sha256_is_refused(saved, tmp_path):
    root, _ = saved
    addon = copy_of(root / "addon", tmp_path / "a")
    manifest = json.loads((addon / ADDON_MANIFEST).read_text())
    manifest["base_sha256"] = None
    (addon / ADDON_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"addon.json: base_sha256 must be"):
        faceptor_core.load(root / "base", addons=[addon])


@pytest.mark.parametrize(
    "damage, where",
    [
        (lambda a: (a / ADDON_MANIFEST).write_text("{not json"), ADDON_MANIFEST),
        (lambda a: (a / ADDON_MANIFEST).write_text("[1, 2]"), ADDON_MANIFEST),
        (lambda a: (a / ADDON_MANIFEST).unlink(), ADDON_MANIFEST),
        (lambda a: (a / ADDON_WEIGHTS).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"), ADDON_WEIGHTS),
        (lambda a: (a / ADDON_WEIGHTS).unlink(), ADDON_WEIGHTS),
    ],
)
def test_every_addon_error_names_the_file(saved, tmp_path, damage, where):
    root, _ = saved
    addon = copy_of(root / "addon", tmp_path / "a")
    damage(addon)
    with pytest.raises(CheckpointError) as info:
        faceptor_core.load(root / "base", addons=[addon])
    assert str(addon / where) in str(info.value)


def test_addon_task_heads_are_validated_with_the_file_named(saved, tmp_path):
    root, _ = saved
    addon = copy_of(root / "addon", tmp_path / "a")
    manifest = json.loads((addon / ADDON_MANIFEST).read_text())
    manifest["tasks"][0]["num_queries"] = 10**9
    (addon / ADDON_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"addon.json: tasks\.0: num_queries"):
        faceptor_core.load(root / "base", addons=[addon])
