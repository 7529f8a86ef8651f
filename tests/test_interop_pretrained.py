"""Pretrained encoders: OpenAI-CLIP / FaRL layout, timm layout, position resizing, refusing pickled objects."""

from __future__ import annotations

import argparse
from collections import OrderedDict

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import faceptor_core
from faceptor_core.model.config import EncoderConfig
from faceptor_core.model.encoder import ViTEncoder
from faceptor_core.pretrained import load_encoder_weights, read_state_dict, safe_torch_load

WIDTH, HEADS, LAYERS, PATCH, GRID = 192, 3, 12, 16, 14


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualBlock(nn.Module):
    """A CLIP residual attention block, sequence first (L x N x D), as in OpenAI's code layout."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, h)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(d, 4 * d)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * d, d))])
        )
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d: int, layers: int, h: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(d, h) for _ in range(layers))


class ClipVisual(nn.Module):
    """A small OpenAI-CLIP visual transformer that returns every block's patch tokens as B x C x S x S.

    At a grid other than the trained one the position table is resized (bicubic, no antialias), as FaRL's
    feature extractor in the reference code does.
    """

    def __init__(self, width=WIDTH, layers=LAYERS, heads=HEADS, patch=PATCH, grid=GRID, out_dim=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * width**-0.5)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, out_dim) * width**-0.5)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1(x)
        n, c, s, _ = x.shape
        x = x.flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(n, 1, c), x], dim=1)
        pos = self.positional_embedding
        g = int(round((pos.shape[0] - 1) ** 0.5))
        if g != s:
            grid = pos[1:].reshape(1, g, g, c).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(s, s), mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:1], grid.reshape(c, s * s).t()])
        x = self.ln_pre(x + pos).permute(1, 0, 2)
        outs = []
        for block in self.transformer.resblocks:
            x = block(x)
            outs.append(x[1:].permute(1, 2, 0).reshape(n, c, s, s))
        return outs


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight")):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    clip = _randomise(ClipVisual())
    state = {"visual." + k: v for k, v in clip.state_dict().items()}
    state["transformer.resblocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)  # a text-tower key: ignored
    state["token_embedding.weight"] = torch.zeros(4, 3)
    state["visual.mask_token"] = torch.zeros(WIDTH)  # FaRL's masked-image-modeling head: ignored
    state["visual.lm_head.weight"] = torch.zeros(8, WIDTH)
    path = tmp_path_factory.mktemp("farl") / "FaRL-tiny.pth"
    torch.save({"state_dict": state, "epoch": 64}, path)
    return clip, path


def _encoder(pos_grid: int) -> ViTEncoder:
    torch.manual_seed(1)
    return ViTEncoder(EncoderConfig(name="vit_t16", pos_grid=pos_grid, drop_path_rate=0.0)).eval()


@pytest.mark.parametrize("size", [224, 112])
def test_clip_layout_matches_clip_blocks(clip_file, size):
    clip, path = clip_file
    enc = _encoder(GRID)
    missing = load_encoder_weights(enc, path)
    assert missing == []
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, theirs = enc(x), clip.features(x)
    assert len(ours) == len(theirs) == LAYERS
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (2, WIDTH, size // PATCH, size // PATCH)
        assert (a - b).abs().max().item() <= 1e-4


def test_build_with_encoder_weights(clip_file):
    clip, path = clip_file
    model = faceptor_core.build(
        ["age_morph2"],
        encoder=EncoderConfig(name="vit_t16", pos_grid=GRID),
        input_sizes=224,
        decoder={"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 1},
        encoder_weights=path,
    ).eval()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model.encoder(model.normalise(x))[-1]
        theirs = clip.features(model.normalise(x))[-1]
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_position_table_resized_to_grid(clip_file):
    clip, path = clip_file
    enc = _encoder(32)
    load_encoder_weights(enc, path)
    pos = clip.positional_embedding.detach()
    grid = pos[1:].reshape(1, GRID, GRID, WIDTH).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(32, 32), mode="bicubic", align_corners=False)
    expect = expect.permute(0, 2, 3, 1).reshape(32 * 32, WIDTH)
    assert enc.pos_embed.shape == (1, 32 * 32 + 1, WIDTH)
    assert torch.equal(enc.pos_embed[0, 0], pos[0])
    assert torch.allclose(enc.pos_embed[0, 1:], expect, atol=1e-6)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_refused(tmp_path, clip_file, capsys):
    _, good = clip_file
    state = torch.load(good, weights_only=True)["state_dict"]
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "payload": Evil()}, bad)
    with pytest.raises(ValueError, match="evil.pth"):
        load_encoder_weights(_encoder(GRID), bad)
    assert "must never run" not in capsys.readouterr().out


def test_namespace_is_admitted_but_nothing_else(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    obj = safe_torch_load(path)
    assert obj["args"].lr == 0.1
    assert list(read_state_dict(path)) == ["w"]


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "absent.pth")


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_timm_layout_round_trip(tmp_path, fmt):
    torch.manual_seed(4)
    vit = timm.create_model(
        "vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=0, embed_dim=WIDTH, num_heads=HEADS
    )
    _randomise(vit, seed=5)
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    state = {k: v.contiguous() for k, v in vit.state_dict().items()}
    path = tmp_path / f"vit.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    enc = _encoder(GRID)
    assert load_encoder_weights(enc, path) == []
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours = enc(x)
        theirs = vit.forward_intermediates(x, indices=LAYERS, output_fmt="NCHW", intermediates_only=True)
    for a, b in zip(ours, theirs, strict=True):
        assert (a - b).abs().max().item() <= 1e-4
    big = _encoder(32)
    load_encoder_weights(big, path)  # 14 -> 32 resize
    assert torch.equal(big.pos_embed[0, 0], vit.pos_embed[0, 0].detach())


def test_timm_layout_shape_mismatch_names_file(tmp_path):
    vit = timm.create_model(
        "vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=0, embed_dim=96, num_heads=3, depth=2
    )
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="small.safetensors: shape mismatches"):
        load_encoder_weights(_encoder(GRID), path)
