"""Run configuration: pydantic models loaded from YAML; unknown keys and wrong types name the field path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import FaceptorError
from ..model.config import DecoderConfig, NaiveConfig
from .precision import Precision

PositiveWeight = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: A pooled head's share of its task's weight (``train.pooled_heads``).
PooledFraction = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
#: Learned queries of a pooled head's attention readout (``train.pooled_head_queries``; 0: the mean token).
PooledQueries = Annotated[int, Field(ge=0, le=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    variant: Literal["faceptor", "naive"] = "faceptor"
    encoder: str = "vit_t16"
    drop_path_rate: float = Field(default=0.1, ge=0, lt=1)
    stem: Literal["patch", "conv", "resnet"] = Field(
        default="patch", description="Encoder patch embedding (see EncoderConfig)."
    )
    stem_blocks: int = Field(default=0, ge=0, le=4, description="Residual blocks per conv-stem stage (EncoderConfig).")
    stem_width: int = Field(default=64, ge=8, le=1024, description="ResNet stem's first-stage width (EncoderConfig).")
    layer_scale: float | None = Field(default=None, gt=0, le=1, description="Encoder LayerScale (EncoderConfig).")
    depth: int | None = Field(default=None, ge=1, le=48, description="Encoder blocks (default: the preset's).")
    patch_size: int | None = Field(default=None, ge=2, le=64, description="Encoder patch size (default: preset's).")
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    naive: NaiveConfig = Field(default_factory=NaiveConfig)
    memory_layers: list[int] = Field(default_factory=lambda: [-1])
    input_size: int | None = Field(default=None, ge=16, description="One input size for every task.")
    input_sizes: dict[str, int] = Field(default_factory=dict)
    encoder_weights: str | None = None


class TaskEntry(_Strict):
    name: str
    root: str | None = None
    batch_size: int = Field(default=16, ge=1)
    loss_weight: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Overrides the task's default weight."
    )
    train_split: str = "train"
    eval_split: str = "test"
    eval_limit: int | None = Field(default=None, ge=1, description="Evaluate on the first N items only.")
    train_limit: int | None = Field(default=None, ge=1, description="Train on the first N items only.")
    skip_invalid: bool = Field(
        default=False, description="Leave unusable records out (each one reported) instead of stopping at the first."
    )


class OptimizerSection(_Strict):
    lr: float = Field(default=5e-5, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    head_lr_multiplier: float = Field(default=10.0, gt=0, description="Decoder, interpreters, queries, losses.")
    grad_clip: float | None = Field(default=5.0, gt=0)


class ScheduleSection(_Strict):
    steps: int = Field(default=1000, ge=1)
    warmup_steps: int = Field(default=100, ge=0)
    warmup_start_lr: float = Field(default=1e-6, ge=0)


class TrainSection(_Strict):
    """What trains. ``full``: everything (Stage 1, multi-task, auxiliary). ``layer_attention``: Stage 2 on a
    frozen model: new Layer-Attention layers (+ the tasks' queries). ``prompt``: only new tasks' queries.
    ``heads``: everything but the encoder, which stays frozen (in eval mode, its batch-norm statistics held): the
    decoders catch up with a trained encoder's features."""

    mode: Literal["full", "layer_attention", "prompt", "heads"] = "full"
    add_memory_layers: list[int] = Field(
        default_factory=list, description="Encoder layers Layer-Attention adds as memory (mode layer_attention only)."
    )
    add_grid_readout: int = Field(
        default=0,
        ge=0,
        le=8,
        description="With init_from: give the trained Faceptor's attribute-type tasks a grid readout of this many "
        "cells a side (model decoder.grid_readout), started at zero, which trains with them (modes full, heads and "
        "layer_attention); 0: none.",
    )
    train_queries: bool = Field(
        default=True, description="Also train the tasks' queries (modes layer_attention and prompt; the others do)."
    )
    output_affine: bool = Field(
        default=True,
        description="Attribute-type tasks added onto a trained Faceptor (init_from) start at their trivial answer: "
        "a per-query gain (from zero) and bias (from the trivial answer) on their raw output (TaskHead.output_affine). "
        "False: only their queries, as the paper's prompt tuning.",
    )
    pooled_heads: PooledFraction | dict[str, PooledFraction] = Field(
        default=0.0,
        description="Mode full only: attribute-type tasks also train a pooled head (LayerNorm and Linear on the mean "
        "of the last encoder layer's tokens) on their own loss, at this fraction of the task's weight: one number for "
        "every attribute-type task of the run, or {task: fraction} for some of them. Training only (the model has no "
        "such head); it supervises a from-scratch encoder as a specialist's head does (CPU presets; 0: none, as the "
        "reference).",
    )
    pooled_head_hidden: int = Field(
        default=0,
        ge=0,
        le=8192,
        description="With pooled heads: each token of the last encoder layer goes through LayerNorm, Linear to this "
        "width and GELU before the mean, which a Linear reads (a readout of the heads' own; measured in "
        'docs/results.md, "A readout of the pooled heads\' own"); 0: LayerNorm and Linear on the mean token.',
    )
    pooled_head_queries: PooledQueries | dict[str, PooledQueries] = Field(
        default=0,
        description="With pooled heads: this many learned queries pool the last encoder layer's LayerNorm-ed tokens by "
        "attention (4 heads), and a Linear reads them, instead of the mean token (a local readout: its gradient "
        "reaches the tokens it attends to); one number for every pooled head, or {task: queries} for some of them "
        "(the others read the mean); 0: the mean. Not with pooled_head_hidden.",
    )
    pooled_head_mean: bool = Field(
        default=False,
        description="With pooled_head_queries: the attention readout's Linear also reads the mean token (through a "
        "LayerNorm of its own), so each such head sums the mean head's readout and the attention's.",
    )

    @model_validator(mode="after")
    def _options_of_the_mode(self) -> TrainSection:
        """An option that the chosen mode would ignore is an error, not a silent no-op."""
        if self.add_memory_layers and self.mode != "layer_attention":
            raise ValueError(f"train.add_memory_layers is used by mode 'layer_attention' only, not {self.mode!r}")
        if self.add_grid_readout and self.mode == "prompt":
            raise ValueError(
                "train.add_grid_readout would stay frozen in mode 'prompt' (only new tasks' queries train)"
            )
        if self.wants_pooled_heads() and self.mode != "full":
            raise ValueError(
                f"train.pooled_heads supervises the encoder, which mode {self.mode!r} keeps frozen: use it in mode "
                "'full' only"
            )
        if self.pooled_head_hidden and not self.wants_pooled_heads():
            raise ValueError("train.pooled_head_hidden shapes the pooled heads, and train.pooled_heads asks for none")
        if self.wants_pooled_queries() and not self.wants_pooled_heads():
            raise ValueError("train.pooled_head_queries shapes the pooled heads, and train.pooled_heads asks for none")
        if self.pooled_head_mean and not self.wants_pooled_queries():
            raise ValueError(
                "train.pooled_head_mean adds the mean token to an attention readout, and train.pooled_head_queries "
                "asks for none"
            )
        if self.wants_pooled_queries() and self.pooled_head_hidden:
            raise ValueError(
                "train.pooled_head_queries and train.pooled_head_hidden are two readouts of the pooled heads: set one"
            )
        if not self.train_queries and self.mode in ("full", "heads"):
            raise ValueError(
                f"train.train_queries: false has no effect in mode {self.mode!r}, which trains the queries"
            )
        return self

    def wants_pooled_queries(self) -> bool:
        """Whether ``pooled_head_queries`` asks for an attention readout for any pooled head."""
        queries = self.pooled_head_queries
        return any(q > 0 for q in (queries.values() if isinstance(queries, dict) else [queries]))

    def wants_pooled_heads(self) -> bool:
        """Whether ``pooled_heads`` asks for any pooled head."""
        fractions = self.pooled_heads.values() if isinstance(self.pooled_heads, dict) else [self.pooled_heads]
        return any(f > 0 for f in fractions)


class RunConfig(_Strict):
    output_dir: str = "runs/faceptor"
    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    init_from: str | None = Field(default=None, description="Checkpoint directory to start from.")
    tasks: list[TaskEntry]
    type_weights: dict[str, PositiveWeight] = Field(
        default_factory=dict, description="Per task family weight (positive); each key must be a family of the tasks."
    )
    main_task: str | None = Field(default=None, description="Model selection and report use this task.")
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval_every: int = Field(default=500, ge=1)
    checkpoint_every: int = Field(default=500, ge=1)
    log_every: int = Field(default=10, ge=1)
    eval_batch_size: int = Field(default=32, ge=1)
    eval_baselines: bool = Field(
        default=True, description="Score each task's trivial baseline beside it (fitted once, on the training split)."
    )
    baseline_limit: int = Field(default=500, ge=0, description="Training items the baselines are fitted on (0: all).")
    num_workers: int = Field(default=0, ge=0)
    precision: Precision = Field(
        default="fp32",
        description="Training forward pass: fp32, bf16 (autocast; weights, losses and evaluation stay fp32), or auto "
        "(bf16 where the device computes it natively: CUDA with bf16, CPUs with AVX512-BF16 or AMX).",
    )
    progress: bool = True

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        names = [t.name for t in self.tasks]
        if not names:
            raise ValueError("tasks: at least one task is needed")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tasks: listed twice: {dupes}")
        if self.main_task is not None and self.main_task not in names:
            raise ValueError(f"main_task {self.main_task!r} is not one of the tasks {names}")
        if self.train.mode != "full" and self.init_from is None:
            raise ValueError(f"train.mode {self.train.mode!r} needs init_from (a trained checkpoint)")
        if self.train.add_grid_readout and self.init_from is None:
            raise ValueError(
                "train.add_grid_readout adds to a trained model (init_from); a model trained from scratch takes "
                "model.decoder.grid_readout"
            )
        return self


class ConfigError(FaceptorError, ValueError):
    """A run configuration that cannot be used; names the file and the field path."""


def load_run_config(path: str | os.PathLike, overrides: dict | None = None) -> RunConfig:
    """Read a YAML run configuration; errors name the file and each bad field's path."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data.update(overrides or {})
    return validate_run_config(data, path)


def validate_run_config(data: object, source: str | os.PathLike) -> RunConfig:
    """``data`` as a :class:`RunConfig`; errors name ``source`` and each bad field's path."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(f"{source}: invalid run configuration:\n" + "\n".join(lines)) from None
