"""Grid readouts (``DecoderConfig.grid_readout``, ``train.add_grid_readout``): an attribute-type task's linear reading
of the last encoder layer on a coarse grid, added to a trained model in stage 2 without moving its outputs."""

from __future__ import annotations

import pytest
import torch

import faceptor_core
from faceptor_core.train.config import ConfigError
from faceptor_core.train.engine import Trainer
from tests.conftest import TINY_DECODER, tiny_build
from tests.test_train import run_config

TOY = ["toy_channel", "toy_brightness"]


def _build(tasks: list[str], size: int, **decoder) -> faceptor_core.FaceptorBase:
    torch.manual_seed(0)
    return faceptor_core.build(tasks, encoder="vit_t16", input_sizes=size, decoder={**TINY_DECODER, **decoder})


def _perturb(model, std: float = 0.5) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for readout in model.grid_readout.values():
            readout.fc.weight.copy_(torch.randn(readout.fc.weight.shape, generator=gen) * std)


def test_an_added_readout_starts_where_the_model_was_and_round_trips(registry, tmp_path) -> None:
    model = tiny_build(TOY, registry=registry).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = model(images, TOY)
    names = model.add_grid_readout(3)
    assert names and all(n.startswith(("grid_readout.toy_channel.", "grid_readout.toy_brightness.")) for n in names)
    assert model.config.decoder.grid_readout == 3
    after = model(images, TOY)
    for task in TOY:
        assert torch.equal(after[task], before[task])  # the Linear starts at zero
    _perturb(model)
    moved = model(images, TOY)
    assert not torch.allclose(moved["toy_channel"], before["toy_channel"])
    model.save_pretrained(tmp_path / "ckpt")
    loaded = faceptor_core.load(tmp_path / "ckpt", registry=registry).eval()
    assert loaded.config.decoder.grid_readout == 3
    for task in TOY:
        assert torch.equal(loaded(images, TOY)[task], moved[task])
    with pytest.raises(ValueError, match="already has a grid readout"):
        model.add_grid_readout(2)
    with pytest.raises(ValueError, match="less than or equal to 8"):
        tiny_build(TOY, registry=registry).add_grid_readout(9)


def test_a_readout_reads_for_attribute_tasks_only() -> None:
    """A dense task's outputs do not move with the readout, and only attribute-type tasks get one."""
    tasks = ["synth_attributes", "synth_landmarks"]
    model = _build(tasks, 32, grid_readout=2).eval()
    assert list(model.grid_readout) == ["synth_attributes"]
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = model(images, tasks)
    _perturb(model)
    after = model(images, tasks)
    assert torch.equal(after["synth_landmarks"], before["synth_landmarks"])
    assert not torch.allclose(after["synth_attributes"], before["synth_attributes"])


@pytest.mark.parametrize("cells", [1, 3])
def test_the_readout_is_a_linear_map_of_the_pooled_cells(cells) -> None:
    """Against a hand computation: each cell's tokens averaged, LayerNorm-ed over channels, then one Linear."""
    model = _build(["synth_attributes"], 112, grid_readout=cells).eval()
    _perturb(model)
    readout = model.grid_readout["synth_attributes"]
    last = torch.randn(2, model.encoder.embed_dim, 7, 7, generator=torch.Generator().manual_seed(2))
    bins = [(0, 7)] if cells == 1 else [(0, 3), (2, 5), (4, 7)]  # adaptive pooling's bins of 7 into 3
    cols = [last[:, :, r0:r1, c0:c1].mean(dim=(2, 3)) for r0, r1 in bins for c0, c1 in bins]
    normed = [torch.nn.functional.layer_norm(c, c.shape[-1:], readout.norm.weight, readout.norm.bias) for c in cols]
    expected = torch.cat(normed, dim=1) @ readout.fc.weight.T + readout.fc.bias
    torch.testing.assert_close(readout(last), expected, rtol=1e-5, atol=1e-5)


def test_memory_grad_scales_what_the_readout_sends_to_the_encoder() -> None:
    """The readout reads the encoder as the task's queries do: with ``memory_grad`` 0.1 the encoder gets a tenth of
    the gradient of an attribute-only batch, the readout's included."""
    grads = {}
    for share in (1.0, 0.1):
        model = _build(["synth_attributes"], 32, grid_readout=2, memory_grad=share)
        _perturb(model, std=2.0)
        model.train()
        torch.manual_seed(0)  # the same drop-path draws
        out = model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)), ["synth_attributes"])
        out["synth_attributes"].square().sum().backward()
        grads[share] = model.encoder.blocks[-1].mlp.fc2.weight.grad.clone()
    scale = grads[1.0].abs().max().item()
    torch.testing.assert_close(grads[0.1], 0.1 * grads[1.0], rtol=0, atol=1e-4 * scale)


def _stage1(registry, tmp_path, variant: str = "faceptor", **kw):
    model = {
        "encoder": "vit_t16",
        "decoder": TINY_DECODER,
        "variant": variant,
        "depth": 12 if variant == "naive" else 2,
    }
    Trainer(run_config(tmp_path / "s1", model=model, **kw), registry=registry).fit()
    return model, tmp_path / "s1" / "run" / "checkpoints" / "last"


def test_stage_2_adds_a_readout_that_trains_on_the_frozen_encoder(registry, tmp_path) -> None:
    model, s1 = _stage1(registry, tmp_path)
    cfg = run_config(tmp_path / "s2", model=model, init_from=str(s1), train={"mode": "heads", "add_grid_readout": 3})
    trainer = Trainer(cfg, registry=registry)
    assert "grid_readout.toy_channel.fc.weight" in trainer.trainable_names
    encoder = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    trainer.fit()
    assert trainer.model.grid_readout["toy_channel"].fc.weight.abs().sum() > 0  # it learned from zero
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(v, encoder[k])
    saved = faceptor_core.load(tmp_path / "s2" / "run" / "checkpoints" / "last", registry=registry).eval()
    assert saved.config.decoder.grid_readout == 3
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    trainer.model.eval()
    torch.testing.assert_close(saved(images, TOY)["toy_channel"], trainer.model(images, TOY)["toy_channel"])
    again = run_config(tmp_path / "s3", model=model, init_from=str(tmp_path / "s2" / "run" / "checkpoints" / "last"))
    again = again.model_copy(update={"train": cfg.train})
    with pytest.raises(ConfigError, match="train.add_grid_readout: .*already has a grid readout"):
        Trainer(again, registry=registry)


def test_add_grid_readout_refuses_what_it_cannot_do(registry, tmp_path) -> None:
    with pytest.raises(ValueError, match="init_from"):
        run_config(tmp_path, train={"add_grid_readout": 3})
    with pytest.raises(ValueError, match="frozen in mode 'prompt'"):
        run_config(tmp_path, init_from="x", train={"mode": "prompt", "add_grid_readout": 3})
    model, s1 = _stage1(registry, tmp_path / "naive", variant="naive")
    naive = run_config(tmp_path / "n", model=model, init_from=str(s1), train={"add_grid_readout": 3})
    with pytest.raises(ConfigError, match="Naive Faceptor"):
        Trainer(naive, registry=registry)
    model, s1 = _stage1(registry, tmp_path / "one", tasks=[{"name": "toy_channel", "batch_size": 8}])
    adds = run_config(tmp_path / "a", model=model, init_from=str(s1), train={"add_grid_readout": 3})
    with pytest.raises(ConfigError, match=r"adds tasks \(toy_brightness\)"):  # an add-on on the unchanged model
        Trainer(adds, registry=registry)


def test_a_task_prompt_tuned_onto_a_model_with_readouts_gets_its_own_in_the_add_on(registry, tmp_path) -> None:
    """A model trained with ``decoder.grid_readout`` from scratch: a task added by prompt tuning gets a readout of
    its own, which trains with its queries and travels in its add-on; the base stays as it was."""
    model = {"encoder": "vit_t16", "decoder": {**TINY_DECODER, "grid_readout": 2}, "depth": 2}
    Trainer(
        run_config(tmp_path / "base", model=model, tasks=[{"name": "toy_brightness", "batch_size": 4}]),
        registry=registry,
    ).fit()
    base_dir = tmp_path / "base" / "run" / "checkpoints" / "last"
    base = faceptor_core.load(base_dir, registry=registry)
    assert list(base.grid_readout) == ["toy_brightness"]
    cfg = run_config(
        tmp_path / "tune",
        model=model,
        init_from=str(base_dir),
        tasks=[{"name": "toy_channel", "batch_size": 8}],
        train={"mode": "prompt"},
        optimizer={"lr": 1e-2},
    )
    trainer = Trainer(cfg, registry=registry)
    assert {"grid_readout.toy_channel.fc.weight", "grid_readout.toy_channel.norm.weight"} <= set(
        trainer.trainable_names
    )
    trainer.fit()
    assert trainer.model.grid_readout["toy_channel"].fc.weight.abs().sum() > 0
    for k, v in base.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[k], v), k
    restored = faceptor_core.load(base_dir, registry=registry, addons=[tmp_path / "tune" / "run" / "addon"]).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(restored(x, ["toy_channel"])["toy_channel"], trainer.model.eval()(x)["toy_channel"])
