"""CPU-preset encoder options: conv stem, depth and patch size; they round-trip through a checkpoint."""

from __future__ import annotations

import pytest
import torch

import faceptor_core
from faceptor_core.model.config import EncoderConfig
from faceptor_core.model.encoder import ConvStem, ViTEncoder
from faceptor_core.model.stems import ResNetStem

#: A small decoder whose pixel decoder gets the conv stem's map.
SKIP_DECODER = {"hidden_dim": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1, "stem_skip": True}


def _skip_model(tasks=("synth_parsing", "synth_age"), **encoder):
    """A one-block conv-stem vit_t16 at 64 px with :data:`SKIP_DECODER` (``encoder``: more EncoderConfig fields)."""
    enc = EncoderConfig(**{"name": "vit_t16", "stem": "conv", "depth": 1, "drop_path_rate": 0, **encoder})
    return faceptor_core.build(list(tasks), encoder=enc, input_sizes=64, decoder=SKIP_DECODER)


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


@pytest.mark.parametrize("patch", [8, 16, 32])
def test_stem_skip_gives_the_pixel_decoders_resolution(patch: int) -> None:
    enc = ViTEncoder(EncoderConfig(name="vit_t16", stem="conv", depth=1, patch_size=patch, drop_path_rate=0))
    outs = enc(torch.randn(2, 3, 128, 128), stem_skip=True)
    grid = 128 // patch
    assert outs.stem.shape == (2, enc.patch_embed.skip_channels(), 4 * grid, 4 * grid)
    assert enc(torch.randn(1, 3, 128, 128)).stem is None  # only when asked for
    plain = ViTEncoder(EncoderConfig(name="vit_t16", depth=1, drop_path_rate=0))
    with pytest.raises(ValueError, match="conv stem with a patch size >= 8 or the ResNet stem"):
        plain(torch.randn(1, 3, 64, 64), stem_skip=True)
    small = ViTEncoder(EncoderConfig(name="vit_t16", stem="conv", depth=1, patch_size=4, drop_path_rate=0))
    assert not small.patch_embed.has_skip
    with pytest.raises(ValueError, match="conv stem with a patch size >= 8"):
        small(torch.randn(1, 3, 64, 64), stem_skip=True)


def test_stem_skip_feeds_dense_tasks_and_round_trips(tmp_path) -> None:
    """The skip reaches the dense outputs (and only those), trains the stem through them, and is saved."""
    model = _skip_model().eval()
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    assert out["synth_parsing"].shape == (2, 11, 16, 16)
    with torch.no_grad():
        model.stem_skip.weight.add_(1.0)
    changed = model(x)
    assert not torch.allclose(changed["synth_parsing"], out["synth_parsing"])
    assert torch.equal(changed["synth_age"], out["synth_age"])
    model.stem_skip.weight.grad = None
    changed["synth_parsing"].square().mean().backward()
    assert model.stem_skip.weight.grad.abs().sum() > 0 and model.encoder.patch_embed[0].weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m")
    assert again.config.decoder.stem_skip
    torch.testing.assert_close(again(x)["synth_parsing"], model(x)["synth_parsing"])


def test_pixel_embeddings_carry_the_stem_skip_and_need_a_dense_task() -> None:
    model = _skip_model().eval()
    with torch.no_grad():
        feats = model.encode(model.prepare(torch.rand(2, 3, 64, 64), [64]))[64]
        pixels = model.pixel_embeddings(feats)
        assert pixels.shape == (2, 32, 16, 16)
        plain = model.pixel_decoder(model.layer_attention.project(feats[-1], model.last_layer))
        torch.testing.assert_close(pixels - plain, model.stem_skip(feats.stem))
    no_dense = _skip_model(["synth_age"])
    with pytest.raises(ValueError, match="no pixel decoder"):
        no_dense.pixel_embeddings(feats)


def test_stem_skip_needs_a_conv_stem() -> None:
    with pytest.raises(ValueError, match="stem_skip needs the conv stem"):
        faceptor_core.build(["synth_parsing"], encoder="vit_t16", input_sizes=64, decoder={"stem_skip": True})


def _bn(i: int) -> set[str]:
    return {f"{i}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def test_plain_conv_stem_keeps_its_parameter_names() -> None:
    """Checkpoints of the plain conv stem (``stem_blocks=0``) stay loadable: its names are the flat layer indices."""
    expected = {"12.weight", "12.bias"} | {f"{3 * i}.weight" for i in range(4)}
    expected |= set().union(*(_bn(3 * i + 1) for i in range(4)))
    assert set(ConvStem(16, 64).state_dict()) == expected


@pytest.mark.parametrize("blocks", [1, 2])
def test_residual_stem_blocks_start_as_the_identity(blocks: int) -> None:
    """A hybrid stem given the plain stem's conv and BatchNorm weights computes the plain stem's tokens and skip
    map at initialisation: each new residual block's last BatchNorm starts at zero."""
    torch.manual_seed(0)
    plain, hybrid = ConvStem(16, 64), ConvStem(16, 64, blocks=blocks)
    with torch.no_grad():  # move the BatchNorm statistics away from their defaults so that eval mode matters
        for bn in (m for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
        for i, layer in enumerate(plain):  # plain index 3s + j sits at (3 + blocks)s + j in the hybrid
            hybrid[(3 + blocks) * (i // 3) + i % 3].load_state_dict(layer.state_dict())
    plain.eval(), hybrid.eval()
    x = torch.randn(2, 3, 64, 64)
    tokens, skip = plain.forward_with_skip(x)
    tokens_h, skip_h = hybrid.forward_with_skip(x)
    torch.testing.assert_close(tokens_h, tokens)
    torch.testing.assert_close(skip_h, skip)
    assert hybrid.stages == plain.stages == 4 and hybrid.skip_channels() == plain.skip_channels() == 16
    assert sum(p.numel() for p in hybrid.parameters()) > sum(p.numel() for p in plain.parameters())


def test_stem_blocks_train_and_round_trip(tmp_path) -> None:
    model = _skip_model(stem_blocks=1)
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    (out["synth_parsing"].square().mean() + out["synth_age"].square().mean()).backward()
    block = model.encoder.patch_embed[3]
    assert block.bn2.weight.grad.abs().sum() > 0  # the zero-started BatchNorm learns
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m").eval()
    assert again.config.encoder.stem_blocks == 1
    torch.testing.assert_close(again(x)["synth_age"], model.eval()(x)["synth_age"])


def test_stem_blocks_need_the_conv_stem() -> None:
    with pytest.raises(ValueError, match="stem_blocks needs the conv stem"):
        ViTEncoder(EncoderConfig(name="vit_t16", stem_blocks=1, depth=1))


def test_resnet_stem_gives_the_token_grid_and_a_stride_4_skip() -> None:
    enc = ViTEncoder(EncoderConfig(name="vit_t16", stem="resnet", stem_width=16, depth=2, drop_path_rate=0))
    assert isinstance(enc.patch_embed, ResNetStem)
    outs = enc(torch.randn(2, 3, 64, 64), stem_skip=True)
    assert len(outs) == 2 and all(o.shape == (2, 192, 4, 4) for o in outs)
    assert outs.stem.shape == (2, 16, 16, 16) == (2, enc.patch_embed.skip_channels(), 16, 16)


def test_resnet_stem_rejects_other_patch_sizes_and_stem_blocks() -> None:
    with pytest.raises(ValueError, match="needs patch size 16"):
        ViTEncoder(EncoderConfig(name="vit_t16", stem="resnet", patch_size=8, depth=1))
    with pytest.raises(ValueError, match="stem_blocks needs the conv stem"):
        ViTEncoder(EncoderConfig(name="vit_t16", stem="resnet", stem_blocks=1, depth=1))


def test_resnet_stem_starts_as_torchvisions_resnet() -> None:
    """Every BatchNorm of the ResNet stem starts at one (the conv stem's residual blocks start theirs at zero)."""
    stem = ResNetStem(16, 32, width=8)
    bns = [m for m in stem.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 6 * 2 + 2 and all(bool((bn.weight == 1).all()) for bn in bns)
    hybrid = ConvStem(16, 64, blocks=1)
    assert all(bool((b.bn2.weight == 0).all()) for b in hybrid.modules() if hasattr(b, "bn2"))


def test_layer_scale_starts_every_block_near_the_identity() -> None:
    """With LayerScale at 1e-6 each block passes its input through almost unchanged; without, it does not."""
    x = torch.randn(2, 3, 64, 64)
    outs = {}
    for scale in (None, 1e-6):
        torch.manual_seed(0)
        enc = ViTEncoder(EncoderConfig(name="vit_t16", stem="conv", depth=3, drop_path_rate=0, layer_scale=scale))
        enc.eval()
        outs[scale] = enc(x)
    near = outs[1e-6]
    assert all(torch.allclose(near[i], near[0], atol=1e-3) for i in range(3))
    assert not torch.allclose(outs[None][2], outs[None][0], atol=1e-1)


def test_resnet_stem_with_layer_scale_trains_and_round_trips(tmp_path) -> None:
    model = _skip_model(stem="resnet", stem_width=8, layer_scale=1e-5)
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    (out["synth_parsing"].square().mean() + out["synth_age"].square().mean()).backward()
    assert model.encoder.patch_embed.entry[0].weight.grad.abs().sum() > 0
    assert model.encoder.blocks[0].ls1.gamma.grad.abs().sum() > 0
    model.eval()
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m").eval()
    assert again.config.encoder.stem == "resnet" and again.config.encoder.layer_scale == 1e-5
    for k, v in model(x).items():
        torch.testing.assert_close(again(x)[k], v)


#: The ResNet stem with a stride-4 skip, a stride-8 skip and the pixel refinement (``DecoderConfig.pixel_fpn``).
FPN_DECODER = {**SKIP_DECODER, "pixel_fpn": True}


def _fpn_model(decoder=FPN_DECODER):
    enc = EncoderConfig(name="vit_t16", stem="resnet", stem_width=8, depth=1, drop_path_rate=0)
    return faceptor_core.build(["synth_parsing", "synth_age"], encoder=enc, input_sizes=64, decoder=decoder)


def test_pixel_fpn_adds_the_stride_8_map_and_a_refinement_that_starts_as_the_identity(tmp_path) -> None:
    """The stem's stride-8 map enters after the first upsampling, the refinement starts at zero, both train from the
    dense outputs (the stem's second stage through the new skip), and the model round-trips."""
    torch.manual_seed(0)
    model = _fpn_model().eval()
    assert model.stem_mid_skip.in_channels == 16 and not model.pixel_refine.conv.weight.any()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.encode(model.prepare(x, [64]))[64]
        assert feats.stem_mid.shape == (2, 16, 8, 8) and feats.stem.shape == (2, 8, 16, 16)
        last = model.layer_attention.project(feats[-1], model.last_layer)
        pd = model.pixel_decoder
        expected = pd.up2(torch.nn.functional.gelu(pd.norm(pd.up1(last) + model.stem_mid_skip(feats.stem_mid))))
        torch.testing.assert_close(model.pixel_embeddings(feats), expected + model.stem_skip(feats.stem))
    out = model(x)
    assert out["synth_parsing"].shape == (2, 11, 16, 16)
    out["synth_parsing"].square().mean().backward()
    stage2 = model.encoder.patch_embed.stage2[1].conv2.weight.grad
    assert model.stem_mid_skip.weight.grad.abs().sum() > 0 and model.pixel_refine.conv.weight.grad.abs().sum() > 0
    assert stage2.abs().sum() > 0
    with torch.no_grad():
        model.pixel_refine.conv.weight.normal_()
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m").eval()
    assert again.config.decoder.pixel_fpn
    torch.testing.assert_close(again(x)["synth_parsing"], model(x)["synth_parsing"])


def test_pixel_fpn_needs_the_stem_skip_and_the_resnet_stem() -> None:
    with pytest.raises(ValueError, match="pixel_fpn needs decoder stem_skip"):
        _fpn_model({**FPN_DECODER, "stem_skip": False})
    enc = EncoderConfig(name="vit_t16", stem="conv", depth=1, drop_path_rate=0)
    with pytest.raises(ValueError, match="pixel_fpn needs the ResNet stem"):
        faceptor_core.build(["synth_parsing"], encoder=enc, input_sizes=64, decoder=FPN_DECODER)


#: ``pixel_fpn`` and the stride-2 output (``DecoderConfig.pixel_stride``).
FINE_DECODER = {**FPN_DECODER, "pixel_stride": 2}


def test_pixel_stride_2_doubles_the_dense_maps_with_the_stems_entry_map(tmp_path) -> None:
    """With ``pixel_stride`` 2 the dense tasks' maps are 8S x 8S: the stride-4 embeddings upsampled, the stem's
    stride-2 map (before the max-pool) added, a residual bottleneck started at zero; the entry convolution trains
    from the dense loss through the new skip, the model round-trips, and the loss and metric take the finer map."""
    torch.manual_seed(0)
    model = _fpn_model(FINE_DECODER).eval()
    fine = model.pixel_fine
    assert fine.lateral.in_channels == 8 and not fine.expand.weight.any()
    assert model.raw_output_shape(model.tasks["synth_parsing"]) == (11, 32, 32)
    x = torch.rand(2, 3, 64, 64)
    seen: list[torch.Tensor] = []  # the entry convolution's map, before the max-pool
    model.encoder.patch_embed.entry[3].register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        feats = model.encode(model.prepare(x, [64]))[64]
        assert feats.stem_fine.shape == (2, 8, 32, 32) and feats.stem_fine is seen[0]
        coarse = model.pixel_refine(
            model.pixel_decoder(
                model.layer_attention.project(feats[-1], model.last_layer), model.stem_mid_skip(feats.stem_mid)
            )
            + model.stem_skip(feats.stem)
        )
        up = torch.nn.functional.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model.pixel_embeddings(feats), up + fine.lateral(feats.stem_fine))
    model.train()
    out = model(x)
    assert out["synth_parsing"].shape == (2, 11, 32, 32)
    out["synth_parsing"].square().mean().backward()
    assert fine.lateral.weight.grad.abs().sum() > 0 and fine.expand.weight.grad.abs().sum() > 0
    assert model.encoder.patch_embed.entry[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        fine.expand.weight.normal_()
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m").eval()
    assert again.config.decoder.pixel_stride == 2
    torch.testing.assert_close(again(x)["synth_parsing"], model(x)["synth_parsing"])


def test_pixel_stride_2_needs_pixel_fpn() -> None:
    with pytest.raises(ValueError, match="pixel_stride 2 needs decoder pixel_fpn"):
        _fpn_model({**FINE_DECODER, "pixel_fpn": False})


def test_the_pixel_decoder_runs_on_the_dense_tasks_rows_only() -> None:
    """In a multi-task step the pixel decoder sees only the dense tasks' images (not every image of the size group),
    and gives each task what it would give on the whole batch."""
    torch.manual_seed(0)
    model = _fpn_model().eval()
    seen: list[int] = []
    model.pixel_decoder.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    x = torch.rand(7, 3, 64, 64)
    rows = {"synth_age": slice(0, 5), "synth_parsing": slice(5, 7)}
    with torch.no_grad():
        out = model.forward_multitask({64: x}, rows)
        assert seen == [2]
        whole = model(x[5:7], ["synth_parsing"])["synth_parsing"]
    torch.testing.assert_close(out["synth_parsing"], whole)


def test_the_stems_taken_rows_give_the_same_values_and_gradients_as_slices() -> None:
    """The ResNet stem hands out rows of its stride-2 map taken with the max-pool (their gradient added in place):
    the same values, and bit for bit the same gradients for the input and every weight, as slices of the map."""
    torch.manual_seed(0)
    stem = ResNetStem(16, 32, width=8).double()
    x = torch.rand(7, 3, 64, 64, dtype=torch.double, requires_grad=True)
    spans = [(5, 7), (1, 3)]
    weights = [torch.rand(2, 8, 32, 32, dtype=torch.double) for _ in spans]

    def grads(taken: bool) -> list[torch.Tensor]:
        stem.zero_grad()
        x.grad = None
        tokens, skip, mid, fine, rows = stem.forward_with_skips(x, spans if taken else ())
        parts = [rows[s] for s in spans] if taken else [fine[a:b] for a, b in spans]
        for (a, b), part in zip(spans, parts, strict=True):
            assert torch.equal(part, fine[a:b])
        loss = tokens.square().sum() + skip.sum() + sum((w * p).sum() for w, p in zip(weights, parts, strict=True))
        loss.backward()
        return [x.grad.clone(), *(p.grad.clone() for p in stem.parameters())]

    for a, b in zip(grads(True), grads(False), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():  # no gradient: views of the map, no copies
        *_, fine, rows = stem.forward_with_skips(x, spans)
        assert rows[(5, 7)]._base is fine or rows[(5, 7)]._base is fine._base


def test_a_training_pass_gives_the_dense_tasks_the_stems_taken_rows() -> None:
    """``forward_multitask`` asks the encoder for the dense tasks' rows at encode time: the outputs and every weight's
    gradient are those of the same pass on slices of the stem's maps."""
    torch.manual_seed(0)
    model = _fpn_model(FINE_DECODER).double().train()
    x = torch.rand(7, 3, 64, 64, dtype=torch.double)
    rows = {"synth_age": slice(0, 5), "synth_parsing": slice(5, 7)}
    taken: list[int] = []

    def step(encode_rows: bool) -> tuple[dict, dict]:
        model.zero_grad()
        encode = model.encode
        if not encode_rows:  # the encoder told nothing: every map sliced
            model.encode = lambda batches, rows=None: encode(batches)
        try:
            torch.manual_seed(1)
            out = model.forward_multitask({64: x}, rows)
        finally:
            model.__dict__.pop("encode", None)
        sum(o.square().mean() for o in out.values()).backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    hook = model.encoder.register_forward_hook(
        lambda mod, args, kw, out: taken.append(len(out.stem_fine_rows or {})), with_kwargs=True
    )
    out_a, grad_a = step(True)
    out_b, grad_b = step(False)
    hook.remove()
    assert taken == [1, 0]
    assert out_a.keys() == out_b.keys() and all(torch.equal(out_a[k], out_b[k]) for k in out_a)
    assert grad_a.keys() == grad_b.keys() and all(torch.equal(grad_a[k], grad_b[k]) for k in grad_a)
