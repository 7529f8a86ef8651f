"""``build`` and ``load``: the entry points that turn task names or a checkpoint into a model."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .checkpoint import (
    MANIFEST,
    WEIGHTS,
    CheckpointError,
    check_shapes,
    read_header,
    read_manifest,
    read_weights,
    verify_digest,
)
from .model.base import FaceptorBase
from .model.config import DecoderConfig, EncoderConfig, ModelConfig, NaiveConfig
from .model.faceptor import Faceptor
from .model.naive import NaiveFaceptor
from .registry import TaskRegistry, default_registry
from .spec import TaskHead, TaskSpec, head_contradictions

VARIANTS = {"faceptor": Faceptor, "naive": NaiveFaceptor}


def from_config(config: ModelConfig, registry: TaskRegistry | None = None) -> FaceptorBase:
    """Instantiate the model a config describes (random weights)."""
    model = VARIANTS[config.variant](config)
    _attach_output_decoders(model, registry)
    return model


def _attach_output_decoders(model: FaceptorBase, registry: TaskRegistry | None) -> None:
    reg = registry or default_registry()
    known = set(reg.task_names())
    for name in model.task_names:
        if name in known:
            spec = reg.get_task(name)
            if spec.decode is not None:
                model.output_decoders[name] = spec.decode
                model.output_decoder_plugins[name] = spec.plugin


def build(
    tasks: Sequence[str | TaskSpec],
    variant: str = "faceptor",
    encoder: str | EncoderConfig = "farl_vit_b16",
    input_sizes: int | Mapping[str, int] | None = None,
    decoder: DecoderConfig | Mapping | None = None,
    memory_layers: Sequence[int] = (-1,),
    naive: NaiveConfig | Mapping | None = None,
    encoder_weights: str | os.PathLike | None = None,
    registry: TaskRegistry | None = None,
    size_normalization: Mapping[int, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> FaceptorBase:
    """Build a model for ``tasks`` (registered names or TaskSpecs).

    ``input_sizes`` overrides each task's input size: one int for every task, or ``{task: size}``.
    ``memory_layers`` are the encoder layers of Layer-Attention (-1 = last; Stage 1 default).
    ``encoder_weights`` loads a pretrained encoder (timm or OpenAI-CLIP/FaRL layout).
    ``size_normalization`` sets ``{input size: (mean, std)}`` where it differs from CLIP's (default for all).
    """
    if isinstance(tasks, (str, TaskSpec)):
        tasks = [tasks]
    if not tasks:
        raise ValueError("build() needs at least one task")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    reg = registry or default_registry()
    heads: list[TaskHead] = []
    for t in tasks:
        spec = t if isinstance(t, TaskSpec) else reg.get_task(t)
        head = spec.head_config()
        size = input_sizes if isinstance(input_sizes, int) else (input_sizes or {}).get(spec.name)
        if size is not None:
            head = head.model_copy(update={"input_size": int(size)})
        heads.append(head)
    if isinstance(input_sizes, Mapping):
        unknown = sorted(set(input_sizes) - {h.name for h in heads})
        if unknown:
            raise ValueError(f"input_sizes names tasks that are not built: {unknown}")
    enc = encoder if isinstance(encoder, EncoderConfig) else EncoderConfig(name=encoder)
    config = ModelConfig(
        variant=variant,
        encoder=enc,
        decoder=DecoderConfig.model_validate(decoder or {}),
        naive=NaiveConfig.model_validate(naive or {}),
        memory_layers=tuple(memory_layers),
        tasks=tuple(heads),
        size_normalization={int(k): (tuple(m), tuple(s)) for k, (m, s) in (size_normalization or {}).items()},
    )
    model = VARIANTS[variant](config)
    for t in tasks:
        if isinstance(t, TaskSpec) and t.decode is not None:
            model.output_decoders[t.name] = t.decode
            model.output_decoder_plugins[t.name] = t.plugin
    _attach_output_decoders(model, registry)
    if encoder_weights is not None:
        from .pretrained import load_encoder_weights

        load_encoder_weights(model.encoder, encoder_weights)
    return model


def load(
    directory: str | os.PathLike,
    map_location: str = "cpu",
    registry: TaskRegistry | None = None,
    addons: Sequence[str | os.PathLike] = (),
) -> FaceptorBase:
    """Rebuild a model saved with ``save_pretrained`` (structure from the manifest, weights from safetensors),
    then add the tasks of any prompt-tuning ``addons`` on top.

    Before anything is allocated, the manifest is validated (bounded sizes, each task consistent with the
    registered task of that name) and the weights' header is compared with the shapes the manifest implies;
    then the weights' SHA-256 is checked against the manifest and non-finite weights are refused. Every
    error is a :class:`CheckpointError` naming the file.

    The model comes back in eval mode, ready for inference (dropout and drop-path off); training code switches
    modes itself (``Trainer`` calls ``model.train()`` each step)."""
    directory = Path(directory)
    config, manifest = read_manifest(directory)
    manifest_path, weights_path = directory / MANIFEST, directory / WEIGHTS
    check_against_registry(config, manifest_path, registry)
    check_shapes(weights_path, expected_shapes(config, manifest_path), read_header(weights_path), manifest_path)
    digest = verify_digest(weights_path, manifest.get("weights_sha256"), manifest_path)
    model = from_config(config, registry)
    model.load_weights(read_weights(weights_path), strict=True)
    if addons:
        from .addons import load_addon

        for addon in addons:
            load_addon(model, addon, base_dir=directory, base_digest=digest)
        _attach_output_decoders(model, registry)
    return model.to(map_location).eval()


def check_against_registry(config: ModelConfig, manifest: Path, registry: TaskRegistry | None = None) -> None:
    """Each task of ``config`` agrees with the registered task of that name (unknown names are fine: a model
    runs without its plugin)."""
    reg = registry or default_registry()
    known = set(reg.task_names())
    for head in config.tasks:
        if head.name not in known:
            continue
        diffs = head_contradictions(head, reg.get_task(head.name))
        if diffs:
            raise CheckpointError(
                f"{manifest}: task {head.name!r} contradicts the registered task of that name: " + ", ".join(diffs)
            )


def expected_shapes(config: ModelConfig, manifest: Path) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes the config implies, from a model built on the meta device (nothing allocated)."""
    try:
        with torch.device("meta"):
            model = VARIANTS[config.variant](config)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{manifest}: the model config cannot be built: {exc}") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
