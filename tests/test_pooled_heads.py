"""Encoder supervision for from-scratch CPU presets: the trainer's pooled heads (``train.pooled_heads``) and the
decoder's memory gradient share (``DecoderConfig.memory_grad``). The paper's model and recipe have neither."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import faceptor_core
from faceptor_core.checkpoint import CheckpointError, read_weights
from faceptor_core.model.config import DecoderConfig, EncoderConfig
from faceptor_core.train import NonFiniteLossError, RunConfig, Trainer
from faceptor_core.train.config import ConfigError, TrainSection
from faceptor_core.train.engine import POOLED_HEADS
from faceptor_core.train.pooled_heads import PooledHeads
from tests.conftest import TINY_DECODER
from tests.test_train import run_config, weights_of

POOLED = {"mode": "full", "pooled_heads": 0.5}


def _last_linear(head: nn.Module) -> nn.Linear:
    return [m for m in head.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize(
    "readout",
    [{}, {"pooled_head_hidden": 16}, {"pooled_head_queries": 2}, {"pooled_head_queries": 2, "pooled_head_mean": True}],
)
def test_pooled_heads_train_beside_the_model_and_resume_exactly(registry, tmp_path, readout):
    train = {**POOLED, **readout}
    full = Trainer(run_config(tmp_path / "a", train=train), registry=registry)
    assert set(full.pooled.heads) == {"toy_channel", "toy_brightness"}  # every attribute-type task
    assert _last_linear(full.pooled.heads["toy_channel"]).out_features == 3  # the task's raw output: a logit a query
    start = {k: v.clone() for k, v in full.pooled.state_dict().items()}
    full.fit()
    moved = {k for k, v in full.pooled.state_dict().items() if not torch.equal(v, start[k])}
    assert moved == set(start)  # trained with the run
    interrupted = Trainer(run_config(tmp_path / "b", train=train), registry=registry)
    interrupted.fit(stop_after=4)
    del interrupted
    resumed = Trainer(run_config(tmp_path / "b", train=train), registry=registry, resume=True)
    resumed.fit()
    for a, b in (
        (weights_of(full.model), weights_of(resumed.model)),
        (full.pooled.state_dict(), resumed.pooled.state_dict()),
    ):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    a = full.pooled.state_dict()
    last = tmp_path / "a" / "run" / "checkpoints" / "last"
    assert set(read_weights(last / POOLED_HEADS)) == set(a)  # kept with the trainer's state
    model = faceptor_core.load(last, registry=registry)  # ... and not in the model
    assert not any("pooled" in k for k in model.state_dict())
    log = (tmp_path / "a" / "run" / "log.jsonl").read_text()
    assert '"pooled/toy_channel"' in log


def test_the_pooled_loss_joins_the_total_at_its_share(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path, train=POOLED), registry=registry)
    stats = trainer.train_step()
    w = trainer.weights
    tasks = ("toy_channel", "toy_brightness")
    main = sum(w[t] * stats[f"loss/{t}"] for t in tasks) / sum(w[t] for t in tasks)
    pooled = sum(w[t] * stats[f"pooled/{t}"] for t in tasks) / sum(w[t] for t in tasks)
    assert stats["loss"] == pytest.approx(main + 0.5 * pooled, rel=1e-5)
    assert pooled > 0


def test_a_token_wise_pooled_head_reads_more_than_the_mean_token():
    torch.manual_seed(0)
    tokens = torch.randn(2, 8, 4, 4)  # B x C x S x S
    flat = tokens.mean((2, 3), keepdim=True).expand_as(tokens)  # every token is the mean: the same mean token
    rows = {"t": slice(0, 2)}
    mean_head = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0})
    torch.testing.assert_close(mean_head({32: tokens}, rows)["t"], mean_head({32: flat}, rows)["t"])
    token_wise = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0}, hidden=16)
    out = token_wise({32: tokens}, rows)["t"]
    assert out.shape == (2, 3)
    assert not torch.allclose(out, token_wise({32: flat}, rows)["t"], atol=1e-4)  # it reads each token
    assert torch.allclose(out, token_wise({32: tokens.flip(-1)}, rows)["t"], atol=1e-5)  # ... but not where it is


def test_an_attention_pooled_head_sends_its_gradient_where_it_attends():
    """The mean token's readout asks every token for the same change; the attention readout asks it of the tokens its
    queries attend to, so a cue in a few tokens (a beard) can be learned where it is."""
    torch.manual_seed(0)
    tokens = torch.randn(1, 8, 4, 4) * 0.1
    tokens[0, 0] = -1.0
    tokens[0, 0, 3, 1] = 5.0  # one token stands out along channel 0
    rows = {"t": slice(0, 1)}
    mean_head = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0})
    attention = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0}, queries=2)
    head = attention.heads["t"]
    with torch.no_grad():  # every head's keys read channel 0, and the queries (passed as they are) ask for it
        head.attn.in_proj_weight[:8] = torch.eye(8)
        head.attn.in_proj_weight[8:16].zero_()
        head.attn.in_proj_weight[8:16, 0] = 1.0
        head.attn.in_proj_bias.zero_()
        head.queries.fill_(20.0)
    grads = []
    for h in (mean_head, attention):
        x = tokens.clone().requires_grad_(True)
        h({32: x}, rows)["t"].sum().backward()
        grads.append(x.grad[0].flatten(1).norm(dim=0))  # the gradient's size at each of the 16 tokens
    mean_grad, attention_grad = grads
    torch.testing.assert_close(mean_grad, mean_grad[:1].expand(16))  # the same at every token
    assert attention_grad[13] > 10 * attention_grad[torch.arange(16) != 13].max()  # token (3, 1), where it attends
    assert attention({32: tokens}, rows)["t"].shape == (1, 3)


def test_an_attention_readout_beside_the_mean_sums_the_two_readouts():
    """With ``mean``, the head's output is the mean head's readout (LayerNorm + Linear on the mean token) plus the
    attention readout: zero either part of the Linear and the other readout is left exactly."""
    torch.manual_seed(0)
    tokens = torch.randn(3, 8, 4, 4)
    rows = {"t": slice(0, 3)}
    both = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0}, queries=2, mean=True)
    mean_head = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0})
    attention = PooledHeads({"t": (8, 3, 32)}, {"t": 1.0}, queries=2)
    head, out = both.heads["t"], both.heads["t"].out
    assert out.in_features == 3 * 8  # two queries' outputs and the mean token
    with torch.no_grad():
        mean_head.heads["t"][0].load_state_dict(head.mean_norm.state_dict())
        mean_head.heads["t"][1].weight.copy_(out.weight[:, 16:])
        mean_head.heads["t"][1].bias.copy_(out.bias)
        attention.heads["t"].load_state_dict({**head.state_dict(), "out.weight": out.weight[:, :16]}, strict=False)
        attention.heads["t"].out.bias.zero_()
    total = both({32: tokens}, rows)["t"]
    torch.testing.assert_close(total, mean_head({32: tokens}, rows)["t"] + attention({32: tokens}, rows)["t"])
    with torch.no_grad():
        out.weight[:, :16] = 0  # the attention's part gone: the mean head's readout
    torch.testing.assert_close(both({32: tokens}, rows)["t"], mean_head({32: tokens}, rows)["t"])
    with pytest.raises(ValueError, match="needs an attention readout"):
        PooledHeads({"t": (8, 3, 32)}, {"t": 1.0}, mean=True)


def test_a_run_without_pooled_heads_is_unchanged(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path), registry=registry)
    assert trainer.pooled is None
    trainer.fit()
    assert not (tmp_path / "run" / "checkpoints" / "last" / POOLED_HEADS).exists()


def test_resuming_without_the_pooled_heads_file_is_refused(registry, tmp_path):
    Trainer(run_config(tmp_path, train=POOLED), registry=registry).fit(stop_after=2)
    (tmp_path / "run" / "checkpoints" / "last" / POOLED_HEADS).unlink()
    with pytest.raises(CheckpointError, match="no pooled_heads.safetensors"):
        Trainer(run_config(tmp_path, train=POOLED), registry=registry, resume=True)


@pytest.mark.parametrize("option", ["pooled_head_hidden", "pooled_head_queries"])
def test_resuming_with_another_pooled_readout_is_refused_by_config_then_by_file(registry, tmp_path, option):
    Trainer(run_config(tmp_path, train=POOLED), registry=registry).fit(stop_after=2)
    other = run_config(tmp_path, train={**POOLED, option: 8})
    with pytest.raises(ConfigError, match=rf"config.json: .*\n  train.{option}: 0 -> 8"):
        Trainer(other, registry=registry, resume=True)
    # a checkpoint whose config.json says the other readout (copied between runs): its file is refused by name
    (tmp_path / "run" / "config.json").write_text(other.model_dump_json())
    refusal = r"pooled_heads.safetensors: the weights do not match this run's pooled heads.*pooled_head_hidden"
    with pytest.raises(CheckpointError, match=refusal):
        Trainer(other, registry=registry, resume=True)


def test_a_non_finite_pooled_loss_names_the_task(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path, train=POOLED), registry=registry)
    head = trainer.pooled.heads["toy_brightness"][1]
    with torch.no_grad():
        head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"toy_brightness.*pooled head.*step 1"):
        trainer.train_step()


def test_pooled_heads_need_mode_full_and_an_attribute_task(tmp_path):
    for mode in ("heads", "layer_attention", "prompt"):
        with pytest.raises(ValidationError, match=f"pooled_heads.*mode '{mode}'"):
            RunConfig.model_validate({"tasks": [{"name": "x"}], "train": {"mode": mode, "pooled_heads": 1.0}})
    with pytest.raises(ValidationError, match="pooled_head_hidden.*asks for none"):
        RunConfig.model_validate({"tasks": [{"name": "x"}], "train": {"pooled_head_hidden": 16}})
    with pytest.raises(ValidationError, match="pooled_head_queries.*asks for none"):
        RunConfig.model_validate({"tasks": [{"name": "x"}], "train": {"pooled_head_queries": 4}})
    mean_alone = {"pooled_heads": 1.0, "pooled_head_mean": True}
    with pytest.raises(ValidationError, match="pooled_head_mean adds the mean token.*queries asks for none"):
        RunConfig.model_validate({"tasks": [{"name": "x"}], "train": mean_alone})
    both = {"pooled_heads": 1.0, "pooled_head_queries": 4, "pooled_head_hidden": 16}
    with pytest.raises(ValidationError, match="two readouts of the pooled heads: set one"):
        RunConfig.model_validate({"tasks": [{"name": "x"}], "train": both})
    dense = {
        "output_dir": str(tmp_path / "dense"),
        "model": {"encoder": "vit_t16", "stem": "conv", "depth": 1, "input_size": 32, "decoder": TINY_DECODER},
        "tasks": [{"name": "synth_landmarks", "batch_size": 2}],
        "train": POOLED,
        "progress": False,
    }
    with pytest.raises(ConfigError, match="no task of this run has an attribute-type head"):
        Trainer(RunConfig.model_validate(dense))


def test_pooled_heads_for_some_tasks_at_their_own_fractions(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path, train={"pooled_heads": {"toy_channel": 2.0}}), registry=registry)
    assert set(trainer.pooled.heads) == {"toy_channel"}  # toy_brightness is left to its decoder
    stats = trainer.train_step()
    w = trainer.weights
    main = sum(w[t] * stats[f"loss/{t}"] for t in w) / sum(w.values())
    assert "pooled/toy_brightness" not in stats
    assert stats["loss"] == pytest.approx(main + 2.0 * w["toy_channel"] * stats["pooled/toy_channel"] / sum(w.values()))
    none = Trainer(run_config(tmp_path / "zero", train={"pooled_heads": {"toy_channel": 0.0}}), registry=registry)
    assert none.pooled is None  # a zero fraction asks for no head


def test_an_attention_readout_for_some_pooled_heads(registry, tmp_path):
    train = {"pooled_heads": 1.0, "pooled_head_queries": {"toy_channel": 3}}
    trainer = Trainer(run_config(tmp_path, train=train), registry=registry)
    attention = trainer.pooled.heads["toy_channel"]
    assert attention.queries.shape[0] == 3 and isinstance(trainer.pooled.heads["toy_brightness"], nn.Sequential)
    stats = trainer.train_step()
    assert stats["pooled/toy_channel"] > 0 and stats["pooled/toy_brightness"] > 0
    assert attention.queries.grad is not None and attention.queries.grad.abs().sum() > 0
    wrong = {"pooled_heads": {"toy_brightness": 1.0}, "pooled_head_queries": {"toy_channel": 3}}
    with pytest.raises(ConfigError, match=r"pooled_head_queries names 'toy_channel', which has no pooled head"):
        Trainer(run_config(tmp_path / "wrong", train=wrong), registry=registry)


def test_pooled_heads_name_tasks_of_the_run_with_attribute_heads(registry, tmp_path):
    with pytest.raises(ConfigError, match=r"train.pooled_heads: unknown task 'toy_chanel'.*Did you mean: toy_channel"):
        Trainer(run_config(tmp_path, train={"pooled_heads": {"toy_chanel": 1.0}}), registry=registry)
    mixed = {
        "output_dir": str(tmp_path / "mixed"),
        "model": {"encoder": "vit_t16", "stem": "conv", "depth": 1, "input_size": 32, "decoder": TINY_DECODER},
        "tasks": [{"name": "synth_landmarks", "batch_size": 2}, {"name": "synth_expression", "batch_size": 2}],
        "train": {"pooled_heads": {"synth_landmarks": 1.0}},
        "progress": False,
    }
    with pytest.raises(ConfigError, match=r"'synth_landmarks' has a dense-type head.*\(synth_expression\)"):
        Trainer(RunConfig.model_validate(mixed))
    for bad in ({"x": -1.0}, {"x": float("nan")}, -0.5):
        with pytest.raises(ValidationError, match="pooled_heads"):
            RunConfig.model_validate({"tasks": [{"name": "x"}], "train": {"pooled_heads": bad}})
    with pytest.raises(ValidationError, match="pooled_heads.*mode 'heads'"):
        RunConfig.model_validate({"tasks": [{"name": "x"}], "train": {"mode": "heads", "pooled_heads": {"x": 1.0}}})
    assert not TrainSection(mode="heads", pooled_heads={"x": 0}).wants_pooled_heads()  # zero: no head, any mode


def _encoder_grads(share: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = faceptor_core.build(
        ["synth_expression"],
        encoder=EncoderConfig(name="vit_t16", stem="conv", depth=1, drop_path_rate=0),
        input_sizes=32,
        decoder={**TINY_DECODER, "memory_grad": share},
    ).train()
    out = model(torch.rand(2, 3, 32, 32))["synth_expression"]
    out.logsumexp(-1).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_memory_grad_scales_only_what_the_decoder_sends_the_encoder():
    out, full = _encoder_grads(1.0)
    half_out, half = _encoder_grads(0.5)
    none_out, none = _encoder_grads(0.0)
    torch.testing.assert_close(half_out, out, rtol=0, atol=0)  # the forward pass is unchanged
    torch.testing.assert_close(none_out, out, rtol=0, atol=0)
    enc = [n for n in full if n.startswith("encoder.")]
    assert enc and all(full[n].abs().sum() > 0 for n in enc[:3])
    for n in enc:  # expression reaches the encoder through the memory only
        torch.testing.assert_close(half[n], 0.5 * full[n], rtol=1e-4, atol=1e-10)
        assert n not in none or none[n].abs().sum() == 0
    for n in ("decoder.layers.0.linear1.weight", "layer_attention.proj.0.weight", "queries.synth_expression.feat"):
        torch.testing.assert_close(none[n], full[n])  # the decoder, Layer-Attention included, learns as before
    assert DecoderConfig().memory_grad == 1.0  # the paper's model


def test_memory_grad_leaves_dense_tasks_their_whole_gradient():
    """Only attribute-type tasks' queries pass a share of their gradient: a dense task in the same pass (its queries
    read the same memory) still sends the encoder all of its own."""

    def grads(share: float, task: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = faceptor_core.build(
            ["synth_parsing", "synth_expression"],
            encoder=EncoderConfig(name="vit_t16", stem="conv", depth=1, drop_path_rate=0),
            input_sizes=32,
            decoder={**TINY_DECODER, "memory_grad": share},
        ).train()
        rows = {"synth_parsing": slice(0, 2), "synth_expression": slice(2, 4)}  # the trainer's pass: a job a task
        model.forward_multitask({32: torch.rand(4, 3, 32, 32)}, rows)[task].square().mean().backward()
        named = model.named_parameters()
        return {n: p.grad.clone() for n, p in named if n.startswith("encoder.") and p.grad is not None}

    dense_all, dense_none = grads(1.0, "synth_parsing"), grads(0.0, "synth_parsing")
    assert dense_all and set(dense_none) == set(dense_all)
    for n in dense_all:
        torch.testing.assert_close(dense_none[n], dense_all[n], rtol=0, atol=0)
    assert all(g.abs().sum() == 0 for g in grads(0.0, "synth_expression").values())
