"""Training in bf16 autocast: the forward pass computes in bfloat16, weights, losses and the optimizer stay float32."""

from __future__ import annotations

import json

import pytest
import torch

from faceptor_core.train import RunConfig, Trainer
from faceptor_core.train.config import ConfigError, load_run_config
from faceptor_core.train.precision import forward_precision, native_bf16, precision_note, resolve_precision
from tests.conftest import TINY_DECODER

CPU = torch.device("cpu")


def run_config(tmp_path, precision: str, steps: int = 4) -> RunConfig:
    return RunConfig.model_validate(
        {
            "output_dir": str(tmp_path / precision),
            "model": {"encoder": "vit_t16", "decoder": TINY_DECODER, "depth": 2},
            "tasks": [{"name": "toy_channel", "batch_size": 8}, {"name": "toy_brightness", "batch_size": 4}],
            "optimizer": {"lr": 1e-3},
            "schedule": {"steps": steps, "warmup_steps": 1},
            "eval_every": steps,
            "checkpoint_every": steps,
            "progress": False,
            "precision": precision,
        }
    )


def test_auto_follows_the_hardware_and_the_others_are_kept():
    assert resolve_precision("auto", CPU) == ("bf16" if native_bf16(CPU) else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert native_bf16(torch.device("meta")) is False


def test_the_note_says_why_auto_trains_in_float32_only_when_it_fell_back_on_a_cpu():
    assert "this CPU has no bf16 instructions, so training runs in float32" in precision_note("auto", "fp32", CPU)
    assert precision_note("auto", "bf16", CPU) == ""
    assert precision_note("fp32", "fp32", CPU) == ""  # asked for: nothing to explain
    assert precision_note("auto", "fp32", torch.device("cuda")) == ""  # a GPU: not a CPU's instructions


def test_forward_precision_computes_in_bf16_only_inside():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with forward_precision("bf16", CPU):
        assert (a @ b).dtype == torch.bfloat16
    with forward_precision("fp32", CPU):
        assert (a @ b).dtype == torch.float32
    assert (a @ b).dtype == torch.float32


def test_a_bf16_step_runs_the_forward_in_bf16_and_keeps_float32_weights(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path, "bf16"), registry=registry)
    seen = []
    linear = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    stats = trainer.train_step()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(v)) for k, v in stats.items() if k.startswith("loss"))
    after = trainer.model.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items()), "weights keep their dtype"
    assert any(not torch.equal(before[k], after[k]) for k in before), "the step updated the weights"
    for state in trainer.optimizer.state.values():
        assert state["exp_avg"].dtype == torch.float32


def test_bf16_and_fp32_steps_agree_to_bf16_accuracy(registry, tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        trainer = Trainer(run_config(tmp_path, precision), registry=registry)
        losses[precision] = trainer.train_step()
    for key in losses["fp32"]:
        if key.startswith("loss"):
            assert losses["bf16"][key] == pytest.approx(losses["fp32"][key], rel=0.05), key


def test_the_run_log_names_the_precision_used(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path, "auto", steps=1), registry=registry)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "auto" / "log.jsonl").read_text().splitlines()]
    assert {"step": 0, "precision": resolve_precision("auto", CPU), "device": "cpu"} in records


def test_an_unknown_precision_names_the_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tasks: [{name: toy_channel}]\nprecision: fp16\n")
    with pytest.raises(ConfigError, match=r"run.yaml.*\n  precision:"):
        load_run_config(path)
