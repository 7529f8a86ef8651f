"""benchmarks/cross_bias_prototype.py: the patched decoder pass is the plain one at a zero bias, and a bias moves
only its own task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
prototype = pytest.importorskip("cross_bias_prototype")


def _model():
    import faceptor_core
    from faceptor_core.model.config import EncoderConfig
    from faceptor_tasks.synthfaces.demo import RESNET_MODEL as m

    encoder = EncoderConfig(name=m["encoder"], **{k: m[k] for k in ("stem", "stem_width", "layer_scale", "depth")})
    torch.manual_seed(0)
    tasks = ["synth_attributes", "synth_age"]
    return faceptor_core.build(tasks, encoder=encoder, input_sizes=112, decoder=m["decoder"]).eval()


def test_a_zero_bias_decodes_as_the_plain_model_and_a_bias_moves_only_its_task(monkeypatch):
    model = _model()
    images = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        plain = model(images)
    _, decoder_pass = prototype.patched_methods(["synth_attributes"], 49)
    monkeypatch.setattr(type(model), "_decoder_pass", decoder_pass)
    heads = model.decoder.layers[0].cross_attn.num_heads
    model.cross_bias = nn.ParameterDict({"synth_attributes": nn.Parameter(torch.zeros(heads, 26, 49))})
    with torch.no_grad():
        zero = model(images)
        for task in plain:
            torch.testing.assert_close(zero[task], plain[task], rtol=1e-5, atol=1e-6)
        model.cross_bias["synth_attributes"][:, :, :20] = -30.0  # the attribute queries see the last 29 tokens
        biased = model(images)
    assert not torch.allclose(biased["synth_attributes"], plain["synth_attributes"], atol=1e-3)
    torch.testing.assert_close(biased["synth_age"], plain["synth_age"], rtol=1e-5, atol=1e-6)


def test_the_biases_get_a_group_of_their_own_at_a_multiple_of_their_rate():
    model = _model()
    model.cross_bias = nn.ParameterDict({"synth_attributes": nn.Parameter(torch.zeros(4, 26, 49))})
    from faceptor_core.train.schedule import param_groups

    trainer = type("T", (), {})()
    trainer.model = model
    trainer.optimizer = torch.optim.AdamW(param_groups(model, nn.ModuleDict(), 1e-3, 0.05, 2.0))
    assert prototype.regroup(trainer, 10.0) == 20.0
    groups = trainer.optimizer.param_groups
    bias = model.cross_bias["synth_attributes"]
    assert [g for g in groups if any(p is bias for p in g["params"])] == [groups[-1]]
    assert groups[-1]["weight_decay"] == 0.0 and groups[-1]["lr_multiplier"] == 20.0
