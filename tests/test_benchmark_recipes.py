"""The benchmarks' recipe plumbing: a sweep job's overrides reach the run, and a claims record resumes only under
the preset recipe it was measured with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
learning_sweep = pytest.importorskip("learning_sweep")
experiments = pytest.importorskip("experiments")


def test_sweep_overrides_reach_the_run_config(tmp_path):
    job = {
        "overrides": {
            "preset": "full",
            "steps": 50,
            "seed": 3,
            "eval_every": 25,
            "model": {"input_size": 96},
            "type_weights": {"expression": 8.0},
            "batch_sizes": {"synth_identity": 16},
        }
    }
    cfg = learning_sweep.sweep_config(job, tmp_path / "run", workers=0)
    assert (cfg.schedule.steps, cfg.seed, cfg.eval_every, cfg.num_workers) == (50, 3, 25, 0)
    assert cfg.model.input_size == 96 and cfg.model.stem == "resnet"  # merged into the preset's model, not replacing it
    sizes = {t.name: t.batch_size for t in cfg.tasks}
    assert sizes["synth_identity"] == 16 and sizes["synth_expression"] == 32
    assert cfg.type_weights["expression"] == 8.0
    assert cfg.type_weights["attributes"] == experiments.PRESETS["full"].type_weights["attributes"]


def test_a_claims_record_resumes_only_under_its_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "RESULTS", tmp_path)
    claims = experiments.Claims("standard", seed=0)
    claims.save("multitask", {"steps": 220, "single_age": {"metric": 12.0}})
    assert claims.resume("multitask", steps=220)["single_age"] == {"metric": 12.0}
    assert claims.resume("multitask", steps=400) == {"steps": 400}  # other settings: start over
    same = experiments.PRESETS["standard"]
    for change in ({"batch_sizes": {"synth_identity": 32}}, {"precision": "fp32"}):
        monkeypatch.setitem(experiments.PRESETS, "standard", same.model_copy(update=change))
        assert claims.resume("multitask", steps=220) == {"steps": 220}, change  # the preset changed since: start over
