"""Conversion of the authors' checkpoints (GitHub ``lxq1000/Faceptor``, ``faceptor_project/``).

The release's ``checkpoint_rank0_iter_50000.pth.tar`` files are ``{"step", "state_dict", "optimizer"}`` dicts
saved from a ``DistributedDataParallel`` model, so every key starts with ``module.`` (stripped first). The mapping
table (``D.`` = ``heads_module.decoder.``, ``I.`` = ``heads_module.interpreters.``, ``H.`` =
``heads_module.heads.<type>.``; ``<task>`` is renamed with :data:`REFERENCE_TASKS`, ``<type>`` becomes our family):

Faceptor (:data:`FACEPTOR_RULES`)
    backbone_module.visual.<CLIP visual key>        -> encoder.<key>  (:func:`faceptor_core.pretrained.clip_key`)
    D.query_feat.<task>.weight / query_embed        -> queries.<task>.feat / .pos
    D.input_proj.<j>.*, D.level_embed.weight[j]     -> layer_attention.proj.<levels[j]>.*, .level_embed.<levels[j]>
    D.new_input_proj.<j>.*, D.new_level_embed[j]    -> the same for Stage 2's new_levels (1, 3, 5, 7, 9)
    D.adapt_pos2d.{0,2}                             -> layer_attention.pos_mlp.{0,2}
    D.transformer_cross_attention_layers.<i>        -> decoder.layers.<i>: multihead_attn -> cross_attn, norm -> norm1
    D.transformer_self_attention_layers.<i>         -> decoder.layers.<i>: self_attn, norm -> norm2
    D.transformer_ffn_layers.<i>                    -> decoder.layers.<i>: linear1, linear2, norm -> norm3
    I.feature_v2.{norm, head.0, head.1, head.2, head.3} -> feature_interpreter.{norm, fc1, bn1, fc2, bn2}
    I.value.fc                                      -> value_interpreter.fc
    I.map_v2.mask_map.{0, 1, 3}                     -> pixel_decoder.{up1, norm, up2}
    I.map_v2.mask_embed.layers.{0, 1, 2}            -> map_interpreter.mask_mlp.{0, 2, 4}
    I.map_v2.mask_map.1.ln.*                        -> skipped: an alias of mask_map.1.* (checked equal)
    losses_module.*                                 -> skipped: training only (the CosFace classifier)
Naive Faceptor (:data:`NAIVE_RULES`)
    heads_module.heads.recog.{norm, head.0..3}      -> identity_head.{norm, fc1, bn1, fc2, bn2}
    H.conv.<i>, H.channel_attention.mlp.{1, 3}      -> heads.<family>.convs.<i>, .gate.mlp.{0, 2}
    H.{norm, feature.0, feature.3}, H.fcs.<task>    -> heads.<family>.{bn, mlp.0, mlp.3}, .classifiers.<task>
    H.fpns.0.{0, 1, 3}, H.fpns.1                    -> heads.<family>.pyramid.up4.{0, 1, 3}, .pyramid.up2
    H.head.psp_modules.<i>.1.{conv, bn}             -> heads.<family>.uper.ppm.<i>.{0, 1}
    H.head.{bottleneck, fpn_bottleneck}.{conv, bn}  -> heads.<family>.uper.{bottleneck, fuse}.{0, 1}
    H.head.{lateral_convs, fpn_convs}.<i>.{conv, bn} -> heads.<family>.uper.{lateral, fpn}.<i>.{0, 1}
    H.head.conv_seg (rows: the head's tasks in order) -> heads.<family>.classifiers.<task>

Adjustments, all reported: BatchNorms whose reference ``eps`` (2e-5) differs from ours get the difference added
to ``running_var`` (exact in eval mode); the reference's bias-free Naive attribute convolutions get zero biases.
Keys matching no rule are *unplaced*; target keys nothing fills are *missing*; ``strict`` turns either into an
error. :func:`reference_differences` lists what this library cannot yet reproduce of the reference's forward pass.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal
from unittest import mock

import torch
from torch import nn

from ..model.base import FaceptorBase
from ..model.config import CLIP_MEAN, CLIP_STD, DecoderConfig, EncoderConfig
from ..pretrained import (
    CLIP_EXTRA_PREFIXES,
    UNUSED_ENCODER_KEYS,
    clip_key,
    clip_value,
    read_state_dict,
    unwrap_state_dict,
)
from ..registry import TaskRegistry, default_registry

#: The reference's task names -> this library's.
REFERENCE_TASKS: dict[str, str] = {
    "recog_ms1mv3": "recognition_ms1mv3",
    "age_morph2": "age_morph2",
    "age_utkface": "age_utkface",
    "biattr_celeba": "attributes_celeba",
    "affect_affectnet": "expression_affectnet",
    "affect_rafdb": "expression_rafdb",
    "affect_ferplus": "expression_ferplus",
    "parsing_celebam": "parsing_celebamask_hq",
    "parsing_lapa": "parsing_lapa",
    "align_300w": "landmarks_300w",
    "align_cofw": "landmarks_cofw",
    "align_wflw": "landmarks_wflw",
    "align_aflw": "landmarks_aflw19",
}

_BASE = (
    "recog_ms1mv3",
    "age_morph2",
    "biattr_celeba",
    "affect_affectnet",
    "affect_rafdb",
    "parsing_celebam",
    "align_300w",
)


@dataclass(frozen=True)
class OfficialVariant:
    """One released model: its architecture and tasks, in the order of the release's YAML config."""

    name: str
    model: Literal["faceptor", "naive"]
    tasks: tuple[str, ...]
    levels: tuple[int, ...] = (11,)  # Stage-1 decoder memory (``levels`` in the YAML)
    new_levels: tuple[int, ...] = (1, 3, 5, 7, 9)  # Stage-2 Layer-Attention additions (``new_levels``)
    attribute_layers: tuple[int, ...] = (5, 7, 9, 11)  # Naive SwinFaceHead ``indices``
    dense_layers: tuple[int, ...] = (3, 5, 7, 11)  # Naive MMSEG_UPerHead ``indices``


VARIANTS: dict[str, OfficialVariant] = {
    "base": OfficialVariant("base", "faceptor", _BASE),
    "full": OfficialVariant("full", "faceptor", tuple(REFERENCE_TASKS)),
    "naive": OfficialVariant("naive", "naive", _BASE),
}

#: Input normalisation of the reference data pipelines, by input size: (x - 0.5) / 0.5 for the 112-px tasks
#: (torchvision ``Normalize``), OpenAI-CLIP mean / std for the 512-px dense tasks.
REFERENCE_NORMALISATION: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    112: ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    512: (CLIP_MEAN, CLIP_STD),
}
REFERENCE_BN_EPS = 2e-5  # identity heads and Naive attribute heads
REFERENCE_NORM2D_EPS = 1e-6  # the pixel decoder's channel LayerNorm

Op = Literal["copy", "clip", "level", "new_level", "level_rows", "new_level_rows", "task_rows", "alias", "skip"]


@dataclass(frozen=True)
class Rule:
    """``source`` (a regex, fully matched) -> ``target`` (a format template).

    Named groups: ``task`` (a reference task, rendered as ours), ``head`` (a reference head type, rendered
    as ``{family}``), ``i`` (an index into the level lists for level ops), anything else verbatim.
    """

    source: str
    target: str
    op: Op = "copy"
    bn_eps: float | None = None
    note: str = ""


_D = r"heads_module\.decoder\."
_I = r"heads_module\.interpreters\."
_H = r"heads_module\.heads\.(?P<head>\w+)\."
_WB = r"(?P<p>weight|bias)"
_BN = r"(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)"
_ENC = Rule(r"backbone_module\.visual\.(?P<rest>.+)", "encoder.{rest}", "clip")
_SKIP = Rule(r"losses_module\..+", "", "skip", note="training-only loss parameters (e.g. the CosFace classifier)")

FACEPTOR_RULES: tuple[Rule, ...] = (
    _ENC,
    Rule(_D + r"query_feat\.(?P<task>\w+)\.weight", "queries.{task}.feat"),
    Rule(_D + r"query_embed\.(?P<task>\w+)\.weight", "queries.{task}.pos"),
    Rule(_D + r"input_proj\.(?P<i>\d+)\." + _WB, "layer_attention.proj.{level}.{p}", "level"),
    Rule(_D + r"level_embed\.weight", "layer_attention.level_embed.{level}", "level_rows"),
    Rule(_D + r"new_input_proj\.(?P<i>\d+)\." + _WB, "layer_attention.proj.{level}.{p}", "new_level"),
    Rule(_D + r"new_level_embed\.weight", "layer_attention.level_embed.{level}", "new_level_rows"),
    Rule(_D + r"adapt_pos2d\.(?P<n>[02])\." + _WB, "layer_attention.pos_mlp.{n}.{p}"),
    Rule(
        _D + r"transformer_cross_attention_layers\.(?P<n>\d+)\.multihead_attn\.(?P<rest>.+)",
        "decoder.layers.{n}.cross_attn.{rest}",
    ),
    Rule(_D + r"transformer_cross_attention_layers\.(?P<n>\d+)\.norm\." + _WB, "decoder.layers.{n}.norm1.{p}"),
    Rule(
        _D + r"transformer_self_attention_layers\.(?P<n>\d+)\.self_attn\.(?P<rest>.+)",
        "decoder.layers.{n}.self_attn.{rest}",
    ),
    Rule(_D + r"transformer_self_attention_layers\.(?P<n>\d+)\.norm\." + _WB, "decoder.layers.{n}.norm2.{p}"),
    Rule(_D + r"transformer_ffn_layers\.(?P<n>\d+)\.(?P<l>linear[12])\." + _WB, "decoder.layers.{n}.{l}.{p}"),
    Rule(_D + r"transformer_ffn_layers\.(?P<n>\d+)\.norm\." + _WB, "decoder.layers.{n}.norm3.{p}"),
    Rule(_I + r"feature_v2\.norm\." + _WB, "feature_interpreter.norm.{p}"),
    Rule(_I + r"feature_v2\.head\.0\.weight", "feature_interpreter.fc1.weight"),
    Rule(_I + r"feature_v2\.head\.1\." + _BN, "feature_interpreter.bn1.{p}", bn_eps=REFERENCE_BN_EPS),
    Rule(_I + r"feature_v2\.head\.2\.weight", "feature_interpreter.fc2.weight"),
    Rule(_I + r"feature_v2\.head\.3\." + _BN, "feature_interpreter.bn2.{p}", bn_eps=REFERENCE_BN_EPS),
    Rule(_I + r"value\.fc\." + _WB, "value_interpreter.fc.{p}"),
    Rule(_I + r"map_v2\.mask_map\.0\." + _WB, "pixel_decoder.up1.{p}"),
    Rule(_I + r"map_v2\.mask_map\.1\." + _WB, "pixel_decoder.norm.{p}"),
    Rule(_I + r"map_v2\.mask_map\.1\.ln\." + _WB, "heads_module.interpreters.map_v2.mask_map.1.{p}", "alias"),
    Rule(_I + r"map_v2\.mask_map\.3\." + _WB, "pixel_decoder.up2.{p}"),
    Rule(_I + r"map_v2\.mask_embed\.layers\.0\." + _WB, "map_interpreter.mask_mlp.0.{p}"),
    Rule(_I + r"map_v2\.mask_embed\.layers\.1\." + _WB, "map_interpreter.mask_mlp.2.{p}"),
    Rule(_I + r"map_v2\.mask_embed\.layers\.2\." + _WB, "map_interpreter.mask_mlp.4.{p}"),
    _SKIP,
)

_CB = r"\.(?P<m>conv|bn)\.(?P<p>\w+)"  # an mmcv ConvModule: conv (no bias) + bn
NAIVE_RULES: tuple[Rule, ...] = (
    _ENC,
    Rule(r"heads_module\.heads\.recog\.norm\." + _WB, "identity_head.norm.{p}"),
    Rule(r"heads_module\.heads\.recog\.head\.0\.weight", "identity_head.fc1.weight"),
    Rule(r"heads_module\.heads\.recog\.head\.1\." + _BN, "identity_head.bn1.{p}", bn_eps=REFERENCE_BN_EPS),
    Rule(r"heads_module\.heads\.recog\.head\.2\.weight", "identity_head.fc2.weight"),
    Rule(r"heads_module\.heads\.recog\.head\.3\." + _BN, "identity_head.bn2.{p}", bn_eps=REFERENCE_BN_EPS),
    Rule(_H + r"conv\.(?P<n>\d+)\.weight", "heads.{family}.convs.{n}.weight"),
    Rule(_H + r"channel_attention\.mlp\.1\." + _WB, "heads.{family}.gate.mlp.0.{p}"),
    Rule(_H + r"channel_attention\.mlp\.3\." + _WB, "heads.{family}.gate.mlp.2.{p}"),
    Rule(_H + r"norm\." + _BN, "heads.{family}.bn.{p}", bn_eps=REFERENCE_BN_EPS),
    Rule(_H + r"feature\.(?P<n>[03])\." + _WB, "heads.{family}.mlp.{n}.{p}"),
    Rule(_H + r"fcs\.(?P<task>\w+)\." + _WB, "heads.{family}.classifiers.{task}.{p}"),
    Rule(_H + r"fpns\.0\.(?P<n>[013])\.(?P<p>\w+)", "heads.{family}.pyramid.up4.{n}.{p}"),
    Rule(_H + r"fpns\.1\." + _WB, "heads.{family}.pyramid.up2.{p}"),
    Rule(_H + r"head\.psp_modules\.(?P<n>\d+)\.1" + _CB, "heads.{family}.uper.ppm.{n}.{m}.{p}"),
    Rule(_H + r"head\.bottleneck" + _CB, "heads.{family}.uper.bottleneck.{m}.{p}"),
    Rule(_H + r"head\.lateral_convs\.(?P<n>\d+)" + _CB, "heads.{family}.uper.lateral.{n}.{m}.{p}"),
    Rule(_H + r"head\.fpn_convs\.(?P<n>\d+)" + _CB, "heads.{family}.uper.fpn.{n}.{m}.{p}"),
    Rule(_H + r"head\.fpn_bottleneck" + _CB, "heads.{family}.uper.fuse.{m}.{p}"),
    Rule(_H + r"head\.conv_seg\." + _WB, "heads.{family}.classifiers.{task}.{p}", "task_rows"),
    _SKIP,
)
_UNUSED_ENCODER = tuple("encoder." + k for k in UNUSED_ENCODER_KEYS)
_CONV_MODULE = {"conv": "0", "bn": "1"}  # mmcv ConvModule children -> our conv_bn_relu Sequential indices


_SHOWN = 20  # keys listed per category in a summary


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message names the file and the keys."""


@dataclass
class ConversionReport:
    """Where every key went. ``ok`` is False when a key was left unplaced or a target key unfilled."""

    source: str
    variant: str
    stage: int
    tasks: list[str]
    placed: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    unplaced: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    synthesized: dict[str, str] = field(default_factory=dict)
    adjusted: dict[str, str] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unplaced and not self.missing

    def summary(self) -> str:
        n_placed = sum(len(v) for v in self.placed.values())
        lines = [
            f"{self.source}: Faceptor {self.variant} (stage {self.stage}), tasks: {', '.join(self.tasks)}",
            f"  {len(self.placed)} reference keys -> {n_placed} of our keys; {len(self.skipped)} skipped; "
            f"{len(self.unplaced)} unplaced; {len(self.missing)} missing; {len(self.synthesized)} synthesized; "
            f"{len(self.adjusted)} adjusted",
        ]
        lines += [f"  unplaced: {k} ({why})" for k, why in list(self.unplaced.items())[:_SHOWN]]
        lines += [f"  missing: {k}" for k in self.missing[:_SHOWN]]
        if len(self.unplaced) > _SHOWN or len(self.missing) > _SHOWN:
            lines.append(f"  ... ({len(self.unplaced)} unplaced, {len(self.missing)} missing: see the JSON report)")
        lines += [f"  synthesized: {k} ({why})" for k, why in self.synthesized.items()]
        reasons = sorted({why for why in self.skipped.values()})
        lines += [f"  skipped {sum(v == r for v in self.skipped.values())} keys: {r}" for r in reasons]
        lines += [f"  differs from the reference: {d}" for d in self.differences]
        lines += [f"  hint: {h}" for h in self.hints]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)


def load_official_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The reference checkpoint's ``state_dict`` (``module.`` stripped), read without unpickling objects."""
    try:
        return read_state_dict(path)
    except (ValueError, FileNotFoundError) as exc:
        raise ConversionError(str(exc)) from exc


@dataclass
class _Context:
    variant: OfficialVariant
    model: FaceptorBase
    own: dict[str, torch.Tensor]
    levels: tuple[int, ...]
    new_levels: tuple[int, ...]
    head_tasks: dict[str, list[str]]  # reference head type -> our tasks, in release order

    def task(self, ref: str) -> str:
        if ref not in REFERENCE_TASKS:
            raise KeyError(f"unknown reference task {ref!r}")
        return REFERENCE_TASKS[ref]

    def family(self, head: str) -> str:
        if head not in self.head_tasks:
            raise KeyError(f"reference head {head!r} has no task in variant {self.variant.name!r}")
        return self.model.tasks[self.head_tasks[head][0]].family


def _detect_stage2(state: Mapping[str, torch.Tensor]) -> int:
    key = "heads_module.decoder.new_level_embed.weight"
    return state[key].shape[0] if key in state else 0


def _infer_structure(
    state: Mapping[str, torch.Tensor], variant: OfficialVariant, source: str
) -> tuple[EncoderConfig, dict]:
    """Encoder preset, position grid, decoder / Naive widths from the checkpoint's shapes."""
    try:
        width = state["backbone_module.visual.conv1.weight"].shape[0]
        rows = state["backbone_module.visual.positional_embedding"].shape[0]
    except KeyError as exc:
        raise ConversionError(f"{source}: no FaRL backbone (backbone_module.visual.*) in the checkpoint") from exc
    presets = {768: "farl_vit_b16", 384: "vit_s16", 192: "vit_t16"}
    if width not in presets:
        raise ConversionError(f"{source}: backbone width {width} matches no encoder preset ({sorted(presets)})")
    grid = math.isqrt(rows - 1)
    if grid * grid != rows - 1:
        raise ConversionError(f"{source}: positional_embedding has {rows} rows, not 1 + a square grid")
    encoder = EncoderConfig(name=presets[width], pos_grid=grid)
    kwargs: dict = {}
    if variant.model == "faceptor":
        ffn = [k for k in state if re.fullmatch(_D + r"transformer_ffn_layers\.\d+\.linear1\.weight", k)]
        if not ffn:
            hint = " (a Naive Faceptor checkpoint? use --variant naive)" if any(".heads." in k for k in state) else ""
            raise ConversionError(f"{source}: no transformer decoder (heads_module.decoder.*) found{hint}")
        w = state[ffn[0]]
        kwargs["decoder"] = {"hidden_dim": w.shape[1], "ffn_dim": w.shape[0], "num_layers": len(ffn)}
    else:
        if any(k.startswith("heads_module.decoder.") for k in state):
            raise ConversionError(f"{source}: this is a Faceptor checkpoint (it has a decoder); use base or full")
        attr = next((v for k, v in state.items() if re.fullmatch(_H + r"conv\.0\.weight", k)), None)
        dense = next((v for k, v in state.items() if re.fullmatch(_H + r"head\.bottleneck\.conv\.weight", k)), None)
        naive = {"attribute_layers": variant.attribute_layers, "dense_layers": variant.dense_layers}
        if attr is not None:
            naive["attribute_channels"] = attr.shape[0]
        if dense is not None:
            naive["dense_channels"] = dense.shape[0]
        kwargs["naive"] = naive
    return encoder, kwargs


def _reference_structure(kwargs: dict) -> dict:
    """Config switches that make this library reproduce the reference, where the library has them."""
    if "decoder" in kwargs and "final_norm" in DecoderConfig.model_fields:
        kwargs["decoder"]["final_norm"] = False
    kwargs["size_normalization"] = dict(REFERENCE_NORMALISATION)
    return kwargs


def build_target(
    variant: OfficialVariant,
    state: Mapping[str, torch.Tensor],
    source: str = "<checkpoint>",
    input_sizes: int | Mapping[str, int] | None = None,
    new_levels: Sequence[int] | None = None,
    registry: TaskRegistry | None = None,
) -> tuple[FaceptorBase, tuple[int, ...]]:
    """Build the model a reference checkpoint describes (random weights); returns it and its Stage-2 levels."""
    from ..build import build

    encoder, kwargs = _infer_structure(state, variant, source)
    n_new = _detect_stage2(state) if variant.model == "faceptor" else 0
    levels2: tuple[int, ...] = ()
    if n_new:
        levels2 = tuple(new_levels) if new_levels is not None else variant.new_levels
        if len(levels2) != n_new:
            raise ConversionError(
                f"{source}: new_level_embed has {n_new} rows but {len(levels2)} Stage-2 levels were given {levels2}"
            )
        kwargs["memory_layers"] = (*variant.levels, *levels2)
    elif variant.model == "faceptor":
        kwargs["memory_layers"] = variant.levels
    tasks = [REFERENCE_TASKS[t] for t in variant.tasks]
    model = build(
        tasks,
        variant=variant.model,
        encoder=encoder,
        input_sizes=input_sizes,
        registry=registry,
        **_reference_structure(kwargs),
    )
    return model.eval(), levels2


def effective_normalisation(model: FaceptorBase, size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean / std ``model`` applies to ``size``-px inputs, measured by probing its ``encode`` step."""
    captured: list[torch.Tensor] = []

    class _Capture(nn.Module):
        def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            captured.append(x.detach())
            return x

    probe = torch.zeros(1, 3, size, size, device=model.pixel_mean.device)
    probe[..., 0, 1] = 1.0
    with mock.patch.object(model, "encoder", _Capture()), torch.no_grad():
        model.encode({size: probe})
    y0, y1 = captured[0][0, :, 0, 0].double(), captured[0][0, :, 0, 1].double()
    std = 1.0 / (y1 - y0)
    return tuple((-y0 * std).tolist()), tuple(std.tolist())


def reference_differences(model: FaceptorBase) -> list[str]:
    """What this library's model does differently from the reference forward pass (empty when it matches)."""
    out = []
    decoder = getattr(model, "decoder", None)
    if decoder is not None and isinstance(getattr(decoder, "norm", None), nn.LayerNorm):
        out.append(
            "this library's transformer decoder ends with a LayerNorm (decoder.norm); the reference's "
            "does not (converted with weight 1, bias 0, which is not the identity)"
        )
    pixel = getattr(model, "pixel_decoder", None)
    if pixel is not None and not math.isclose(pixel.norm.eps, REFERENCE_NORM2D_EPS):
        out.append(
            f"pixel decoder channel LayerNorm eps {pixel.norm.eps:g}; the reference's Norm2d uses "
            f"{REFERENCE_NORM2D_EPS:g}"
        )
    for size in sorted({h.input_size for h in model.config.tasks}):
        if size not in REFERENCE_NORMALISATION:
            continue
        mean, std = effective_normalisation(model, size)
        ref_mean, ref_std = REFERENCE_NORMALISATION[size]
        if not (_close(mean, ref_mean) and _close(std, ref_std)):
            out.append(
                f"{size}-px inputs are normalised with mean {_fmt(mean)} / std {_fmt(std)}; the reference "
                f"uses mean {_fmt(ref_mean)} / std {_fmt(ref_std)}"
            )
    return out


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5) for x, y in zip(a, b, strict=True))


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _map_key(rule: Rule, m: re.Match, value: torch.Tensor, ctx: _Context) -> list[tuple[str, torch.Tensor]]:
    groups = {k: v for k, v in m.groupdict().items() if v is not None}
    if "task" in groups:
        groups["task"] = ctx.task(groups["task"])
    if "head" in groups:
        groups["family"] = ctx.family(groups.pop("head"))
    if "m" in groups:
        groups["m"] = _CONV_MODULE[groups["m"]]
    op = rule.op
    if op == "clip":
        target = clip_key(groups["rest"])
        if target is None:
            raise KeyError("not an OpenAI-CLIP visual key")
        return [("encoder." + target, clip_value(target, value))]
    if op in ("level", "new_level"):
        levels = ctx.levels if op == "level" else ctx.new_levels
        i = int(groups.pop("i"))
        if i >= len(levels):
            raise KeyError(f"level index {i} beyond the {len(levels)} levels {levels}")
        return [(rule.target.format(level=levels[i], **groups), value)]
    if op in ("level_rows", "new_level_rows"):
        levels = ctx.levels if op == "level_rows" else ctx.new_levels
        if value.shape[0] != len(levels):
            raise KeyError(f"{value.shape[0]} level embeddings for {len(levels)} levels {levels}")
        return [(rule.target.format(level=lv, **groups), value[j]) for j, lv in enumerate(levels)]
    if op == "task_rows":
        head = m.group("head")
        out, start = [], 0
        for task in ctx.head_tasks.get(head, []):
            key = rule.target.format(task=task, **groups)
            n = ctx.own[key].shape[0] if key in ctx.own else 0
            out.append((key, value[start : start + n]))
            start += n
        if start != value.shape[0]:
            raise KeyError(f"{value.shape[0]} output channels, but the tasks of head {head!r} need {start}")
        return out
    return [(rule.target.format(**groups), value)]


def convert_state(
    state: Mapping[str, torch.Tensor],
    model: FaceptorBase,
    variant: OfficialVariant,
    new_levels: Sequence[int] = (),
    source: str = "<checkpoint>",
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map a reference state dict (``module.`` stripped) onto ``model``'s keys; nothing is dropped silently."""
    own = model.state_dict()
    head_tasks: dict[str, list[str]] = {}
    for ref in variant.tasks:
        head_tasks.setdefault(ref.split("_")[0], []).append(REFERENCE_TASKS[ref])
    ctx = _Context(variant, model, own, variant.levels, tuple(new_levels), head_tasks)
    rules = FACEPTOR_RULES if variant.model == "faceptor" else NAIVE_RULES
    compiled = [(re.compile(r.source), r) for r in rules]
    report = ConversionReport(str(source), variant.name, 2 if new_levels else 1, list(model.task_names))
    out: dict[str, torch.Tensor] = {}
    aliases: list[tuple[str, str]] = []
    for key, value in state.items():
        rule, match = next(((r, m) for c, r in compiled if (m := c.fullmatch(key))), (None, None))
        if rule is None:
            report.unplaced[key] = "matches no rule of the mapping table"
            continue
        if rule.op == "skip":
            report.skipped[key] = rule.note
            continue
        if rule.op == "clip" and match.group("rest").startswith(CLIP_EXTRA_PREFIXES):
            report.skipped[key] = "FaRL's masked-image-modeling / pooling head: not part of the encoder"
            continue
        if rule.op == "alias":
            aliases.append((key, rule.target.format(**match.groupdict())))
            continue
        try:
            mapped = _map_key(rule, match, value, ctx)
        except KeyError as exc:
            report.unplaced[key] = str(exc.args[0])
            continue
        for target, tensor in mapped:
            if target not in own and target.startswith(_UNUSED_ENCODER):
                report.skipped[key] = "CLIP's ln_post / proj: unused, and this encoder preset does not keep them"
                continue
            if target not in own:
                report.unplaced[key] = f"{target} is not in the target model"
                continue
            if tuple(tensor.shape) != tuple(own[target].shape):
                raise ConversionError(
                    f"{source}: {key} {tuple(tensor.shape)} does not fit {target} {tuple(own[target].shape)}"
                )
            if rule.bn_eps is not None and target.endswith("running_var"):
                eps = model.get_submodule(target.rsplit(".", 1)[0]).eps
                if not math.isclose(eps, rule.bn_eps):
                    tensor = tensor + (rule.bn_eps - eps)
                    report.adjusted[target] = (
                        f"running_var + {rule.bn_eps - eps:g} (reference BatchNorm eps {rule.bn_eps:g}, ours {eps:g})"
                    )
            out[target] = tensor.to(own[target].dtype)
            report.placed.setdefault(key, []).append(target)
    for key, original in aliases:
        same = original in state and torch.equal(state[key], state[original])
        report.skipped[key] = "alias of mask_map.1.* (equal)" if same else "alias of mask_map.1.* (VALUES DIFFER)"
    for target in own:
        if target in out:
            continue
        if re.fullmatch(r"heads\.\w+\.convs\.\d+\.bias", target):
            out[target] = torch.zeros_like(own[target])
            report.synthesized[target] = "zeros: the reference convolution has no bias"
        elif target in ("decoder.norm.weight", "decoder.norm.bias"):
            out[target] = torch.ones_like(own[target]) if target.endswith("weight") else torch.zeros_like(own[target])
            report.synthesized[target] = "no reference counterpart: the reference decoder has no final LayerNorm"
        else:
            report.missing.append(target)
    report.differences = reference_differences(model)
    empty = sorted({t for k in report.missing if (t := model.task_of_key(k))})
    if empty:
        others = [v for v in VARIANTS if v != variant.name and VARIANTS[v].model == variant.model]
        report.hints.append(
            f"no weights for tasks {', '.join(empty)}: is this checkpoint another variant ({', '.join(others)})?"
        )
    return out, report


def convert_official(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    variant: str = "base",
    strict: bool = False,
    input_sizes: int | Mapping[str, int] | None = None,
    new_levels: Sequence[int] | None = None,
    registry: TaskRegistry | None = None,
) -> tuple[FaceptorBase, ConversionReport]:
    """Convert one of the authors' checkpoints (a path, or its state dict) into a model of this library.

    ``variant``: ``base`` / ``full`` (Faceptor; Stage-2 checkpoints are detected by their ``new_level_embed``)
    or ``naive``. ``strict`` raises :class:`ConversionError` when any key is unplaced or missing.
    ``input_sizes`` overrides the tasks' input sizes (as in :func:`faceptor_core.build`).
    """
    if variant not in VARIANTS:
        raise ConversionError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    spec = VARIANTS[variant]
    if isinstance(checkpoint, Mapping):
        source, state = "<state dict>", unwrap_state_dict(dict(checkpoint))
        if all(k.startswith("module.") for k in state):
            state = {k[len("module.") :]: v for k, v in state.items()}
    else:
        source, state = str(checkpoint), load_official_state(checkpoint)
    reg = registry or default_registry()
    model, levels2 = build_target(spec, state, source, input_sizes, new_levels, reg)
    converted, report = convert_state(state, model, spec, levels2, source)
    if strict and not report.ok:
        raise ConversionError(f"{source}: strict conversion failed\n{report.summary()}")
    model.load_weights(converted, strict=False)
    return model, report


def save_converted(model: FaceptorBase, report: ConversionReport, out_dir: str | os.PathLike) -> Path:
    """Write the converted model (``model.safetensors`` + manifest) and ``conversion.json`` into ``out_dir``."""
    out = Path(out_dir)
    model.save_pretrained(out)
    (out / "conversion.json").write_text(report.to_json())
    return out
