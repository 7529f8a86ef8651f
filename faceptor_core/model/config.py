"""Pydantic configuration of a model: enough to rebuild it exactly from a checkpoint manifest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..spec import TaskHead

#: OpenAI-CLIP normalisation, used by FaRL.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class EncoderConfig(BaseModel):
    """A ViT encoder: a preset name (``farl_vit_b16``, ``vit_s16``, ``vit_t16``) or any timm ViT name."""

    model_config = ConfigDict(extra="forbid")

    name: str = "farl_vit_b16"
    drop_path_rate: float = Field(default=0.2, ge=0.0, lt=1.0)
    pos_grid: int = Field(default=32, ge=1, le=256, description="Side of the trained position-embedding grid.")
    depth: int | None = Field(default=None, ge=1, le=48, description="Transformer blocks (default: the preset's).")
    patch_size: int | None = Field(default=None, ge=2, le=64, description="Patch size (default: the preset's).")
    stem: Literal["patch", "conv", "resnet"] = Field(
        default="patch",
        description="Patch embedding: one strided conv (ViT, FaRL), a stack of 3x3 stride-2 convs, or ResNet-18's "
        "first three stages (patch size 16) (the last two for training from scratch on little data; CPU presets).",
    )
    stem_width: int = Field(
        default=64, ge=8, le=1024, description="Channels of the ResNet stem's first stage (then 2x, 4x)."
    )
    layer_scale: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="LayerScale on every block's two branches, starting at this value (CaiT; timm's init_values): "
        "the blocks start near the identity, so a from-scratch ResNet stem's features reach the heads from the "
        "first step. None: no LayerScale (the reference).",
    )
    stem_blocks: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Residual 3x3 blocks after each stride-2 conv of the conv stem (a hybrid CNN-ViT front end for "
        "from-scratch CPU presets; 0: the plain conv stem).",
    )


class DecoderConfig(BaseModel):
    """The transformer decoder (reference: 256 hidden, 8 heads, FFN 2048, 9 layers, post-norm)."""

    model_config = ConfigDict(extra="forbid")

    hidden_dim: int = Field(default=256, ge=8, le=4096)
    num_heads: int = Field(default=8, ge=1, le=256)
    ffn_dim: int = Field(default=2048, ge=8, le=65536)
    num_layers: int = Field(default=9, ge=1, le=64)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    final_norm: bool = Field(default=False, description="A LayerNorm after the last layer (the reference has none).")
    stem_skip: bool = Field(
        default=False,
        description="Add the conv stem's map at a quarter of the patch size (1x1-projected) to the pixel decoder's "
        "output: fine detail for dense tasks of small from-scratch models (CPU presets; the paper's model has none).",
    )
    pixel_fpn: bool = Field(
        default=False,
        description="With stem_skip and the ResNet stem: also add the stem's stride-8 map (1x1-projected) after the "
        "pixel decoder's first upsampling, and refine its output with a residual 3x3 convolution started at zero "
        "(FPN-style detail for dense tasks: parsing F1 0.644-0.662 -> 0.703-0.718 in the demo, docs/results.md; the "
        "paper's model has none).",
    )
    pixel_stride: Literal[2, 4] = Field(
        default=4,
        description="Output stride of the dense tasks' maps with patch size 16: 4 (the paper's, 4S x 4S) or 2 (needs "
        "pixel_fpn: the pixel embeddings upsampled once more, the ResNet stem's stride-2 map added, and a residual "
        "bottleneck; CPU presets, the paper's model has none).",
    )
    output_prior: tuple[Literal["dense", "attribute"], ...] = Field(
        default=(),
        max_length=2,
        description="Head types whose tasks get a learnable bias on the raw output (per query and pixel for dense "
        "tasks, per query for attribute tasks), which training starts at the task's trivial answer (its baseline's "
        "raw output): a from-scratch model then starts at the mean shape and the majority map instead of noise "
        "(CPU presets; the paper's model has none).",
    )
    grid_readout: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Attribute-type tasks also read the last encoder layer average-pooled to this many cells a side, "
        "through a LayerNorm and a Linear started at zero, added to what their queries give (a readout of where "
        "things are that needs fewer images: the demo's stage 2 adds one, with the attributes' weight raised, for "
        'attributes mAcc +0.004 on 6 paired seeds; docs/results.md, "The grid readout and a larger share together"); '
        "0: none, as the paper's model. Training adds one to a trained model with train.add_grid_readout.",
    )

    memory_grad: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of the gradient that attribute-type tasks' queries send back to the encoder through the "
        "decoder's memory, in training (the forward pass is unchanged; dense tasks keep all of theirs). Below 1, a "
        "from-scratch encoder learns those tasks mostly from the trainer's pooled heads (TrainSection.pooled_heads), "
        "which read it directly (CPU presets; the paper's model: 1).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DecoderConfig:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.pixel_fpn and not self.stem_skip:
            raise ValueError("decoder pixel_fpn needs decoder stem_skip")
        if self.pixel_stride == 2 and not self.pixel_fpn:
            raise ValueError("decoder pixel_stride 2 needs decoder pixel_fpn")
        return self


class NaiveConfig(BaseModel):
    """Naive Faceptor's standardized heads (reference layer choices, 0-based)."""

    model_config = ConfigDict(extra="forbid")

    attribute_layers: tuple[int, ...] = Field(default=(5, 7, 9, 11), max_length=64)
    attribute_channels: int = Field(default=128, ge=1, le=8192)
    dense_layers: tuple[int, ...] = Field(default=(3, 5, 7, 11), max_length=64)
    dense_channels: int = Field(default=512, ge=1, le=8192)


class ModelConfig(BaseModel):
    """Everything that decides a model's structure."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal["faceptor", "naive"] = "faceptor"
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    naive: NaiveConfig = Field(default_factory=NaiveConfig)
    memory_layers: tuple[int, ...] = Field(
        default=(-1,), max_length=64, description="Encoder layers the decoder attends to (Layer-Attention); -1 = last."
    )
    tasks: tuple[TaskHead, ...] = Field(max_length=1024)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    size_normalization: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = Field(
        default_factory=dict,
        description="Per input size (mean, std) overriding mean/std; the reference uses 0.5/0.5 at 112 px.",
    )

    @model_validator(mode="after")
    def _unique_tasks(self) -> ModelConfig:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tasks listed twice: {dupes}")
        if not names:
            raise ValueError("a model needs at least one task")
        return self
