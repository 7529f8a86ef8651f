"""CPU-preset encoder options: conv stem, depth and patch size; they round-trip through a checkpoint."""

from __future__ import annotations

import pytest
import torch

import faceptor_core
from faceptor_core.model.config import EncoderConfig
from faceptor_core.model.encoder import ConvStem, ViTEncoder


@pytest.mark.parametrize(("stem", "depth", "patch"), [("conv", 2, None), ("conv", 3, 8), ("patch", 2, 8)])
def test_encoder_options_shape_the_token_grid(stem: str, depth: int, patch: int | None) -> None:
    enc = ViTEncoder(EncoderConfig(name="vit_t16", stem=stem, depth=depth, patch_size=patch, drop_path_rate=0))
    outs = enc(torch.randn(2, 3, 64, 64))
    grid = 64 // (patch or 16)
    assert len(outs) == depth == enc.depth
    assert all(o.shape == (2, 192, grid, grid) for o in outs)
    assert isinstance(enc.patch_embed, ConvStem) == (stem == "conv")


def test_conv_stem_needs_a_power_of_two_patch() -> None:
    with pytest.raises(ValueError, match="power-of-two"):
        ConvStem(12, 64)


def test_conv_stem_model_round_trips_through_save_and_load(tmp_path) -> None:
    enc = EncoderConfig(name="vit_t16", stem="conv", depth=2, drop_path_rate=0)
    model = faceptor_core.build(
        ["synth_expression", "synth_landmarks"],
        encoder=enc,
        input_sizes=64,
        decoder={"hidden_dim": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1},
    )
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    before = model(x)
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m")
    again.eval()
    assert again.config.encoder.stem == "conv" and again.encoder.depth == 2
    after = again(x)
    for k in before:
        torch.testing.assert_close(after[k], before[k])
