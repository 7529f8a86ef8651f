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


def test_specialist_second_stage_trains_only_its_last_layer(monkeypatch):
    """The anchor trained as the demo is (``head_images``): the backbone, BatchNorm statistics included, stays as
    stage 1 left it while the output layer moves."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    nets: list[torch.nn.Module] = []
    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    make = bench.make_specialist

    def spy(arch, outputs):
        nets.append(make(arch, outputs))
        return nets[-1]

    real_last = bench._last_layer

    def snap_then_last(net):  # called between the stages: what stage 1 left
        snapshots["stage1"] = {k: v.clone() for k, v in net.state_dict().items()}
        return real_last(net)

    monkeypatch.setattr(bench, "make_specialist", spy)
    monkeypatch.setattr(bench, "_last_layer", snap_then_last)
    rec = bench.train_specialist(
        "synth_expression", 16, batch=8, seed=0, num_workers=0, eval_limit=8, head_images=16, head_lr=1e-2
    )
    after = nets[0].state_dict()
    moved = {k for k, v in snapshots["stage1"].items() if not torch.equal(v, after[k])}
    assert moved == {"fc.weight", "fc.bias"}
    assert (rec["images"], rec["head_images"], rec["head_lr"]) == (16, 16, 1e-2)
    assert 0.0 <= rec["metrics"]["accuracy"] <= 1.0
