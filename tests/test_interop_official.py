"""Converting the authors' checkpoints: a state dict laid out like the release, built here from a tiny model.

``release_layout`` is written independently of the converter's mapping table (it inverts it by hand), so
the round trip checks the table, the level / task bookkeeping and the BatchNorm eps folding.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import faceptor_core
from faceptor_core.cli import main
from faceptor_core.interop.official import (
    REFERENCE_TASKS,
    VARIANTS,
    ConversionError,
    convert_official,
    effective_normalisation,
    reference_differences,
)

DECODER = {"hidden_dim": 32, "num_heads": 8, "ffn_dim": 64, "num_layers": 2}  # the reference uses 8 heads
OURS_TO_REF = {v: k for k, v in REFERENCE_TASKS.items()}
REF_BN_EPS = 2e-5
CLIP_BLOCK = {
    "norm1": "ln_1",
    "norm2": "ln_2",
    "attn.qkv.weight": "attn.in_proj_weight",
    "attn.qkv.bias": "attn.in_proj_bias",
    "attn.proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _sizes(tasks):
    reg = faceptor_core.default_registry()
    return {t: 64 if reg.get_task(t).head_type == "dense" else 32 for t in tasks}


def _source(variant: str, memory_layers=(-1,)):
    tasks = [REFERENCE_TASKS[t] for t in VARIANTS[variant].tasks]
    model_kind = VARIANTS[variant].model
    torch.manual_seed(0)
    model = faceptor_core.build(
        tasks,
        variant=model_kind,
        encoder="vit_t16",
        input_sizes=_sizes(tasks),
        decoder=DECODER,
        naive={"attribute_channels": 8, "dense_channels": 16},
        memory_layers=memory_layers,
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.01 + 0.05 * torch.rand(b.shape, generator=g))  # small: the eps folding matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            if model_kind == "naive" and ".convs." in name and name.endswith("bias"):
                p.zero_()  # the reference's attribute convolutions have no bias
            if name.startswith("decoder.norm."):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    return model.eval()


def _bn_unfold(model, key: str, value: torch.Tensor) -> torch.Tensor:
    if key.endswith("running_var"):
        return value - (REF_BN_EPS - model.get_submodule(key.rsplit(".", 1)[0]).eps)
    return value


def _encoder_key(k: str, v: torch.Tensor) -> tuple[str, torch.Tensor]:
    simple = {
        "patch_embed.weight": "conv1.weight",
        "cls_token": "class_embedding",
        "pos_embed": "positional_embedding",
        "norm_pre.weight": "ln_pre.weight",
        "norm_pre.bias": "ln_pre.bias",
    }
    if k in simple:
        if k in ("cls_token", "pos_embed"):
            v = v[0, 0] if k == "cls_token" else v[0]
        return "backbone_module.visual." + simple[k], v
    _, n, rest = k.split(".", 2)
    for ours, theirs in CLIP_BLOCK.items():
        if rest.startswith(ours):
            return f"backbone_module.visual.transformer.resblocks.{n}.{theirs}{rest[len(ours) :]}", v
    raise AssertionError(k)


def release_layout(model, variant: str, new_levels=()) -> dict[str, torch.Tensor]:
    """The reference's DDP state dict for ``model`` (the inverse of the documented mapping)."""
    spec = VARIANTS[variant]
    out: dict[str, torch.Tensor] = {}
    levels = {lv: ("", j) for j, lv in enumerate(spec.levels)}
    levels.update({lv: ("new_", j) for j, lv in enumerate(new_levels)})
    level_rows: dict[str, dict[int, torch.Tensor]] = {"": {}, "new_": {}}
    seg: dict[str, dict[str, torch.Tensor]] = {}
    dec, itp = "heads_module.decoder.", "heads_module.interpreters."
    ffn = {"linear1": "linear1", "linear2": "linear2"}
    for k, v in model.state_dict().items():
        part = k.split(".")
        if k.startswith("encoder."):
            key, v = _encoder_key(k[len("encoder.") :], v)
            out[key] = v
        elif k.startswith("queries."):
            kind = "query_feat" if part[2] == "feat" else "query_embed"
            out[f"{dec}{kind}.{OURS_TO_REF[part[1]]}.weight"] = v
        elif k.startswith("layer_attention.proj."):
            prefix, j = levels[int(part[2])]
            out[f"{dec}{prefix}input_proj.{j}.{part[3]}"] = v
        elif k.startswith("layer_attention.level_embed."):
            prefix, j = levels[int(part[2])]
            level_rows[prefix][j] = v
        elif k.startswith("layer_attention.pos_mlp."):
            out[f"{dec}adapt_pos2d.{part[2]}.{part[3]}"] = v
        elif k.startswith("decoder.layers."):
            n, sub, rest = part[2], part[3], ".".join(part[4:])
            if sub == "cross_attn":
                out[f"{dec}transformer_cross_attention_layers.{n}.multihead_attn.{rest}"] = v
            elif sub == "self_attn":
                out[f"{dec}transformer_self_attention_layers.{n}.self_attn.{rest}"] = v
            elif sub in ffn:
                out[f"{dec}transformer_ffn_layers.{n}.{ffn[sub]}.{rest}"] = v
            else:
                layer = {
                    "norm1": "transformer_cross_attention_layers",
                    "norm2": "transformer_self_attention_layers",
                    "norm3": "transformer_ffn_layers",
                }[sub]
                out[f"{dec}{layer}.{n}.norm.{rest}"] = v
        elif k.startswith("decoder.norm."):
            continue  # the reference decoder has no final norm
        elif k.startswith(("feature_interpreter.", "identity_head.")):
            sub = {"norm": "norm", "fc1": "head.0", "bn1": "head.1", "fc2": "head.2", "bn2": "head.3"}[part[1]]
            base = f"{itp}feature_v2." if k.startswith("feature_") else "heads_module.heads.recog."
            out[f"{base}{sub}.{'.'.join(part[2:])}"] = _bn_unfold(model, k, v)
        elif k.startswith("value_interpreter."):
            out[f"{itp}value.fc.{part[2]}"] = v
        elif k.startswith("pixel_decoder."):
            idx = {"up1": "0", "norm": "1", "up2": "3"}[part[1]]
            out[f"{itp}map_v2.mask_map.{idx}.{part[2]}"] = v
            if part[1] == "norm":
                out[f"{itp}map_v2.mask_map.1.ln.{part[2]}"] = v
        elif k.startswith("map_interpreter."):
            out[f"{itp}map_v2.mask_embed.layers.{int(part[2]) // 2}.{part[3]}"] = v
        elif k.startswith("heads."):
            family, sub, rest = part[1], part[2], part[3:]
            ref = next(OURS_TO_REF[t.name] for t in model.config.tasks if t.family == family).split("_")[0]
            hd = f"heads_module.heads.{ref}."
            cb = {"0": "conv", "1": "bn"}
            if sub == "convs":
                if rest[1] == "weight":
                    out[f"{hd}conv.{rest[0]}.weight"] = v
            elif sub == "gate":
                out[f"{hd}channel_attention.mlp.{int(rest[1]) + 1}.{rest[2]}"] = v
            elif sub == "bn":
                out[f"{hd}norm.{rest[0]}"] = _bn_unfold(model, k, v)
            elif sub == "mlp":
                out[f"{hd}feature.{rest[0]}.{rest[1]}"] = v
            elif sub == "classifiers" and family in ("parsing", "landmarks"):
                seg.setdefault(hd, {})[f"{rest[0]}.{rest[1]}"] = v
            elif sub == "classifiers":
                out[f"{hd}fcs.{OURS_TO_REF[rest[0]]}.{rest[1]}"] = v
            elif sub == "pyramid":
                out[f"{hd}fpns.0.{rest[1]}.{rest[2]}" if rest[0] == "up4" else f"{hd}fpns.1.{rest[1]}"] = v
            elif sub == "uper":
                what = rest[0]
                if what in ("ppm", "lateral", "fpn"):
                    name = {"ppm": "psp_modules", "lateral": "lateral_convs", "fpn": "fpn_convs"}[what]
                    mid = f"{rest[1]}.1" if what == "ppm" else rest[1]
                    out[f"{hd}head.{name}.{mid}.{cb[rest[2]]}.{rest[3]}"] = v
                else:
                    name = {"bottleneck": "bottleneck", "fuse": "fpn_bottleneck"}[what]
                    out[f"{hd}head.{name}.{cb[rest[1]]}.{rest[2]}"] = v
            else:
                raise AssertionError(k)
        else:
            raise AssertionError(f"test layout does not know {k}")
    for prefix, rows in level_rows.items():
        if rows:
            out[f"{dec}{prefix}level_embed.weight"] = torch.stack([rows[j] for j in range(len(rows))])
    for hd, parts in seg.items():
        order = [REFERENCE_TASKS[t] for t in spec.tasks if t.startswith(hd.split(".")[2] + "_")]
        for p in ("weight", "bias"):
            out[f"{hd}head.conv_seg.{p}"] = torch.cat([parts[f"{t}.{p}"] for t in order])
    out["losses_module.losses.recog_ms1mv3.classifier"] = torch.randn(10, 512)
    return {"module." + k: v for k, v in out.items()}


def _images(seed=3):
    g = torch.Generator().manual_seed(seed)
    return {32: torch.rand(2, 3, 32, 32, generator=g), 64: torch.rand(2, 3, 64, 64, generator=g)}


def _check_same(source, converted):
    own, new = source.state_dict(), converted.state_dict()
    assert set(own) == set(new)
    for k in own:
        assert own[k].shape == new[k].shape, k
        assert torch.allclose(own[k].float(), new[k].float(), atol=1e-6, rtol=0), k
    with torch.no_grad():
        a, b = source(_images()), converted.eval()(_images())
    assert set(a) == set(b) == set(source.task_names)
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, name


@pytest.mark.parametrize("variant", ["base", "naive"])
def test_release_layout_converts_completely(variant):
    source = _source(variant)
    state = release_layout(source, variant)
    model, report = convert_official(state, variant, strict=True, input_sizes=_sizes(source.task_names))
    assert report.ok and not report.unplaced and not report.missing
    assert set(report.placed) | set(report.skipped) == {k[len("module.") :] for k in state}
    assert "losses_module.losses.recog_ms1mv3.classifier" in report.skipped
    assert model.task_names == source.task_names == [REFERENCE_TASKS[t] for t in VARIANTS[variant].tasks]
    assert not [k for k in report.adjusted if k.endswith("running_var")]  # BatchNorm eps is the reference's
    assert reference_differences(model) == []  # normalisation per size, no final norm, eps: as the reference
    if variant == "naive":
        assert set(report.synthesized) == {k for k in model.state_dict() if ".convs." in k and k.endswith("bias")}
    else:
        assert all(k.startswith("decoder.norm.") for k in report.synthesized)
        assert report.skipped["heads_module.interpreters.map_v2.mask_map.1.ln.weight"].endswith("(equal)")
    _check_same(source, model)


def test_stage2_full_checkpoint():
    source = _source("full", memory_layers=(-1, 1, 3, 5, 7, 9))
    state = release_layout(source, "full", new_levels=(1, 3, 5, 7, 9))
    assert state["module.heads_module.decoder.new_level_embed.weight"].shape == (5, DECODER["hidden_dim"])
    model, report = convert_official(state, "full", strict=True, input_sizes=_sizes(source.task_names))
    assert report.stage == 2 and report.ok
    assert model.layer_attention.layers == [11, 1, 3, 5, 7, 9]
    assert len(model.task_names) == 13
    _check_same(source, model)
    with pytest.raises(ConversionError, match="5 rows"):
        convert_official(state, "full", new_levels=(1, 3), input_sizes=_sizes(source.task_names))


def test_unplaced_and_missing_keys_are_reported():
    source = _source("base")
    state = release_layout(source, "base")
    del state["module.heads_module.interpreters.value.fc.bias"]
    state["module.heads_module.decoder.query_feat.age_imdb.weight"] = torch.zeros(3, 32)
    state["module.heads_module.something_new.weight"] = torch.zeros(2)
    state["module.backbone_module.visual.mask_token"] = torch.zeros(192)
    sizes = _sizes(source.task_names)
    _, report = convert_official(state, "base", input_sizes=sizes)
    assert not report.ok
    assert report.missing == ["value_interpreter.fc.bias"]
    assert "unknown reference task 'age_imdb'" in report.unplaced["heads_module.decoder.query_feat.age_imdb.weight"]
    assert "heads_module.something_new.weight" in report.unplaced
    assert "masked-image-modeling" in report.skipped["backbone_module.visual.mask_token"]
    with pytest.raises(ConversionError, match="value_interpreter.fc.bias"):
        convert_official(state, "base", strict=True, input_sizes=sizes)


def test_wrong_variant_and_shape_errors():
    naive = release_layout(_source("naive"), "naive")
    with pytest.raises(ConversionError, match="--variant naive"):
        convert_official(naive, "base")
    source = _source("base")
    base = release_layout(source, "base")
    with pytest.raises(ConversionError, match="use base or full"):
        convert_official(base, "naive")
    with pytest.raises(ConversionError, match="unknown variant"):
        convert_official(base, "large")
    base["module.heads_module.interpreters.value.fc.weight"] = torch.zeros(1, 7)
    with pytest.raises(ConversionError, match=r"value\.fc\.weight \(1, 7\)"):
        convert_official(base, "base", input_sizes=_sizes(source.task_names))


def test_reference_differences_are_listed():
    model = _source("base")
    mean, std = effective_normalisation(model, 32)
    assert mean == pytest.approx(model.config.mean, abs=1e-5) and std == pytest.approx(model.config.std, abs=1e-5)
    m112 = faceptor_core.build(["age_morph2"], encoder="vit_t16", decoder=DECODER, input_sizes=112)
    mean, std = effective_normalisation(m112, 112)
    as_reference = mean == pytest.approx((0.5,) * 3, abs=1e-5) and std == pytest.approx((0.5,) * 3, abs=1e-5)
    assert any("112-px inputs" in d for d in reference_differences(m112)) != as_reference
    final_norm = isinstance(getattr(model.decoder, "norm", None), torch.nn.LayerNorm)
    assert any("decoder.norm" in d for d in reference_differences(model)) == final_norm


def test_cli_convert(tmp_path, capsys):
    source = _source("base")
    ckpt = tmp_path / "checkpoint_rank0_iter_50000.pth.tar"
    torch.save(
        {
            "step": 50000,
            "state_dict": release_layout(source, "base"),
            "args": argparse.Namespace(seed=2048),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "betas": (0.9, 0.999), "params": [0]}]},
        },
        ckpt,
    )
    out = tmp_path / "converted"
    assert main(["convert", "official", str(ckpt), str(out), "--variant", "base", "--strict"]) == 0
    text = capsys.readouterr().out
    assert "0 unplaced; 0 missing" in text and "Faceptor base (stage 1)" in text
    report = json.loads((out / "conversion.json").read_text())
    assert report["ok"] and report["variant"] == "base"
    model = faceptor_core.load(out)
    assert model.task_names == source.task_names
    assert {h.input_size for h in model.config.tasks} == {112, 512}  # the reference's input sizes
    for k, v in source.state_dict().items():
        assert torch.allclose(v.float(), model.state_dict()[k].float(), atol=1e-6), k


class Payload:
    """Any class at all: a checkpoint must not make the converter unpickle it."""


def test_cli_convert_errors(tmp_path, capsys):
    bad = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"module.x": torch.zeros(1)}, "payload": Payload()}, bad)
    assert main(["convert", "official", str(bad), str(tmp_path / "o"), "--variant", "base"]) == 2
    assert "refusing to unpickle" in capsys.readouterr().err
    assert (
        main(["convert", "official", str(tmp_path / "absent.pth.tar"), str(tmp_path / "o"), "--variant", "base"]) == 2
    )
    state = release_layout(_source("base"), "base")
    del state["module.heads_module.decoder.adapt_pos2d.0.bias"]
    ckpt = tmp_path / "partial.pth.tar"
    torch.save({"state_dict": state}, ckpt)
    assert main(["convert", "official", str(ckpt), str(tmp_path / "o2"), "--variant", "base", "--strict"]) == 2
    assert "layer_attention.pos_mlp.0.bias" in capsys.readouterr().err
    assert main(["convert", "official", str(ckpt), str(tmp_path / "o3"), "--variant", "base"]) == 1
    assert "missing: layer_attention.pos_mlp.0.bias" in capsys.readouterr().out


def test_cli_variant_names_match():
    from faceptor_core.interop.commands import VARIANT_NAMES

    assert sorted(VARIANT_NAMES) == sorted(VARIANTS)


def test_base_checkpoint_as_full_hints_at_the_variant():
    source = _source("base")
    reg = faceptor_core.default_registry()
    sizes = {
        REFERENCE_TASKS[t]: 64 if reg.get_task(REFERENCE_TASKS[t]).head_type == "dense" else 32
        for t in VARIANTS["full"].tasks
    }
    _, report = convert_official(release_layout(source, "base"), "full", input_sizes=sizes)
    assert not report.ok and "queries.parsing_lapa.feat" in report.missing
    assert report.hints and "base" in report.hints[0] and "parsing_lapa" in report.hints[0]
