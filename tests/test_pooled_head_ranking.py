"""benchmarks/pooled_head_ranking.py: a run's pooled heads rebuilt from its configuration and checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from faceptor_core.train import Trainer
from tests.test_train import run_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
ranking = pytest.importorskip("pooled_head_ranking")


def test_the_pooled_heads_come_back_as_the_trainer_left_them(registry, tmp_path):
    train = {
        "mode": "full",
        "pooled_heads": {"toy_channel": 0.5, "toy_brightness": 0.0},
        "pooled_head_queries": 2,
        "pooled_head_mean": True,
    }
    trainer = Trainer(run_config(tmp_path, train=train), registry=registry)
    trainer.fit()
    run = tmp_path / "run"
    heads = ranking.load_pooled_heads(trainer.model, run, run / "checkpoints" / "last")
    assert set(heads.heads) == {"toy_channel"}  # a task at fraction 0 has none
    kept = trainer.pooled.state_dict()
    assert set(heads.state_dict()) == set(kept)
    for k, v in heads.state_dict().items():
        torch.testing.assert_close(v, kept[k], rtol=0, atol=0, msg=k)
