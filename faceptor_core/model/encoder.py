"""The shared ViT encoder: a timm VisionTransformer that returns every block's output as B x C x S x S.

Position embeddings follow the reference: a trained ``pos_grid x pos_grid`` table (32 x 32 for
FaRL at 512 px), resized at run time to the actual token grid with bicubic interpolation and no antialias.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from .config import EncoderConfig
from .stems import ConvStem, ResNetStem


class EncoderPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    timm_name: str
    kwargs: dict = {}
    clip_proj_dim: int = 0  # CLIP's ln_post + proj, kept (frozen, unused) for checkpoint parity


_CLIP = "vit_base_patch16_clip_quickgelu_224"
PRESETS: dict[str, EncoderPreset] = {
    "farl_vit_b16": EncoderPreset(timm_name=_CLIP, clip_proj_dim=512),
    "vit_s16": EncoderPreset(timm_name=_CLIP, kwargs={"embed_dim": 384, "num_heads": 6}),
    "vit_t16": EncoderPreset(timm_name=_CLIP, kwargs={"embed_dim": 192, "num_heads": 3}),
}


def resize_pos_grid(pos: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a ``1 x (G*G) x C`` grid of position embeddings to ``size`` (bicubic, no antialias)."""
    n, c = pos.shape[-2:]
    g = int(round(n**0.5))
    if g * g != n:
        raise ValueError(f"position grid of {n} tokens is not square")
    h, w = (size, size) if isinstance(size, int) else size
    if (h, w) == (g, g):
        return pos
    grid = pos.reshape(1, g, g, c).permute(0, 3, 1, 2)
    work = grid if grid.dtype in (torch.float32, torch.float64) else grid.float()  # half types: in float32
    grid = F.interpolate(work, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    return grid.permute(0, 2, 3, 1).reshape(1, h * w, c).to(pos.dtype)


class EncoderFeatures(list):
    """The blocks' outputs (``B x C x S x S`` each), and ``stem``: the conv stem's map at a quarter of the patch
    size (``B x C' x 4S x 4S``, the pixel decoder's resolution) when it was asked for, else None."""

    stem: torch.Tensor | None = None
    #: The ResNet stem's second stage (stride 8, ``B x C'' x 2S x 2S``), with ``stem`` (``DecoderConfig.pixel_fpn``).
    stem_mid: torch.Tensor | None = None
    #: The ResNet stem's entry convolution (stride 2, ``B x C' x 8S x 8S``), with ``stem``
    #: (``DecoderConfig.pixel_stride``).
    stem_fine: torch.Tensor | None = None
    #: Rows ``start:stop`` of ``stem_fine`` taken at encode time (``forward(..., rows=...)``), whose gradient the stem
    #: adds in place; :meth:`rows` hands them out.
    stem_fine_rows: dict[tuple[int, int], torch.Tensor] | None = None

    def rows(self, rows: slice) -> EncoderFeatures:
        """The same features for the images ``rows`` of the batch."""
        out = EncoderFeatures(t[rows] for t in self)
        out.stem = None if self.stem is None else self.stem[rows]
        out.stem_mid = None if self.stem_mid is None else self.stem_mid[rows]
        out.stem_fine = None if self.stem_fine is None else self.stem_fine[rows]
        if self.stem_fine_rows and out.stem_fine is not None:
            out.stem_fine = self.stem_fine_rows.get(row_span(rows, len(self.stem_fine)), out.stem_fine)
        return out


def row_span(rows: slice, n: int) -> tuple[int, int] | None:
    """``rows`` of a batch of ``n`` as ``(start, stop)``, the key of :attr:`EncoderFeatures.stem_fine_rows`; None
    for a slice with a step."""
    start, stop, step = rows.indices(n)
    return (start, stop) if step == 1 else None


class ViTEncoder(nn.Module):
    """Patch embedding, position embedding, pre-norm and the transformer blocks of a timm ViT."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        preset = PRESETS.get(config.name)
        if preset is None:
            if not timm.is_model(config.name):
                import difflib

                known = [*PRESETS, *timm.list_models("*vit*")]
                close = difflib.get_close_matches(config.name, known, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(
                    f"unknown encoder {config.name!r}: not a preset ({', '.join(PRESETS)}) nor a timm model{hint}"
                )
            preset = EncoderPreset(timm_name=config.name)
        depth = {} if config.depth is None else {"depth": config.depth}
        if config.patch_size is not None:
            depth["patch_size"] = config.patch_size
        if config.layer_scale is not None:
            depth["init_values"] = config.layer_scale
        vit = timm.create_model(
            preset.timm_name,
            pretrained=False,
            num_classes=0,
            drop_path_rate=config.drop_path_rate,
            **{"img_size": config.pos_grid * (config.patch_size or 16), **preset.kwargs, **depth},
        )
        if getattr(vit, "cls_token", None) is None or getattr(vit, "reg_token", None) is not None:
            raise ValueError(f"encoder {config.name!r}: only ViTs with a class token and no registers")
        if getattr(vit, "no_embed_class", False):
            raise ValueError(f"encoder {config.name!r}: position embeddings must include the class token")
        self.patch_size = vit.patch_embed.patch_size[0]
        if vit.patch_embed.patch_size[0] * config.pos_grid != vit.patch_embed.img_size[0]:
            vit = timm.create_model(
                preset.timm_name,
                pretrained=False,
                num_classes=0,
                drop_path_rate=config.drop_path_rate,
                **{**preset.kwargs, **depth, "img_size": config.pos_grid * self.patch_size},
            )
        if config.stem_blocks and config.stem != "conv":
            raise ValueError(f"stem_blocks needs the conv stem (stem='conv'), got stem={config.stem!r}")
        if config.stem == "patch":
            self.patch_embed: nn.Module = vit.patch_embed.proj
        elif config.stem == "resnet":
            self.patch_embed = ResNetStem(self.patch_size, vit.embed_dim, config.stem_width)
        else:
            self.patch_embed = ConvStem(self.patch_size, vit.embed_dim, config.stem_blocks)
        self.cls_token = vit.cls_token
        self.pos_embed = vit.pos_embed
        self.norm_pre = vit.norm_pre
        self.blocks = vit.blocks
        self.embed_dim: int = vit.embed_dim
        self.depth = len(vit.blocks)
        self.ln_post: nn.Module | None = None
        self.proj: nn.Linear | None = None
        if preset.clip_proj_dim:
            self.ln_post = vit.norm
            self.proj = nn.Linear(self.embed_dim, preset.clip_proj_dim, bias=False)
            for p in (*self.ln_post.parameters(), *self.proj.parameters()):
                p.requires_grad_(False)

    def stem_skip_channels(self, option: str = "stem_skip") -> int:
        """Channels of the stem's map at a quarter of the patch size (``forward(..., stem_skip=True).stem``); a
        ValueError naming ``option`` when the stem has no such map."""
        if not getattr(self.patch_embed, "has_skip", False):
            raise ValueError(
                f"{option} needs the conv stem with a patch size >= 8 or the ResNet stem (EncoderConfig "
                "stem='conv' or 'resnet')"
            )
        return self.patch_embed.skip_channels()

    def _resnet_stem(self, option: str) -> ResNetStem:
        if not isinstance(self.patch_embed, ResNetStem):
            raise ValueError(f"{option} needs the ResNet stem (EncoderConfig stem='resnet')")
        return self.patch_embed

    def stem_mid_channels(self, option: str) -> int:
        """Channels of the ResNet stem's stride-8 map (``forward(..., stem_skip=True).stem_mid``); a ValueError
        naming ``option`` for any other stem."""
        return 2 * self._resnet_stem(option).width

    def stem_fine_channels(self, option: str) -> int:
        """Channels of the ResNet stem's stride-2 map (``forward(..., stem_skip=True).stem_fine``); a ValueError
        naming ``option`` for any other stem."""
        return self._resnet_stem(option).width

    def embed_patches(
        self, x: torch.Tensor, stem_skip: bool = False, rows: Sequence[slice] = ()
    ) -> tuple[torch.Tensor, EncoderFeatures]:
        """The patch embedding's ``B x C x S x S`` token map, and an empty :class:`EncoderFeatures` that holds the
        stem's maps when ``stem_skip`` asks for them (:meth:`forward`; the ONNX export's fixed-size encoder)."""
        outs = EncoderFeatures()
        if stem_skip and isinstance(self.patch_embed, ResNetStem):
            spans = [span for span in (row_span(r, len(x)) for r in rows) if span is not None]
            tokens, outs.stem, outs.stem_mid, outs.stem_fine, taken = self.patch_embed.forward_with_skips(x, spans)
            outs.stem_fine_rows = taken or None
        elif stem_skip:
            self.stem_skip_channels()  # the stem must have a skip map
            tokens, outs.stem = self.patch_embed.forward_with_skip(x)
        else:
            tokens = self.patch_embed(x)
        return tokens, outs

    def forward(
        self, x: torch.Tensor, layers: int | None = None, stem_skip: bool = False, rows: Sequence[slice] = ()
    ) -> EncoderFeatures:
        """``B x 3 x H x W`` normalised images -> the outputs of the first ``layers`` blocks (default all); with
        ``stem_skip`` (conv or ResNet stem) also the stem's map at a quarter of the patch size, as ``.stem``, and the
        ResNet stem's stride-8 and stride-2 maps as ``.stem_mid`` and ``.stem_fine``. ``rows``: the slices of the
        batch that :meth:`EncoderFeatures.rows` will be asked for (a faster backward; the same values)."""
        if x.shape[-1] % self.patch_size or x.shape[-2] % self.patch_size:
            raise ValueError(f"input {tuple(x.shape[-2:])} is not a multiple of the patch size {self.patch_size}")
        tokens, outs = self.embed_patches(x, stem_skip, rows)
        b, c, h, w = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2)
        pos = torch.cat((self.pos_embed[:, :1], resize_pos_grid(self.pos_embed[:, 1:], (h, w))), dim=1)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1) + pos
        tokens = self.norm_pre(tokens)
        for block in self.blocks[: layers or self.depth]:
            tokens = block(tokens)
            outs.append(tokens[:, 1:].transpose(1, 2).reshape(b, c, h, w))
        return outs
