"""The benchmarks' recipe plumbing: a sweep job's overrides reach the run, and a claims record resumes only under
the preset recipe it was measured with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


@pytest.mark.parametrize("preset", ["quick", "standard", "full"])
def test_a_sweep_job_without_steps_trains_its_presets_stage_1(tmp_path, preset):
    cfg = learning_sweep.sweep_config({"overrides": {"preset": preset}}, tmp_path / "run", workers=0)
    assert cfg.schedule.steps == experiments.PRESETS[preset].steps


def test_a_claims_record_resumes_only_under_its_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "RESULTS", tmp_path)
    claims = experiments.Claims("standard", seed=0)
    claims.save("multitask", {"steps": 220, "single_age": {"metric": 12.0}})
    assert claims.resume("multitask", steps=220)["single_age"] == {"metric": 12.0}
    assert claims.resume("multitask", steps=400) == {"steps": 400}  # other settings: start over
    same = experiments.PRESETS["standard"]
    for change in ({"batch_sizes": {"synth_identity": 16}}, {"precision": "fp32"}, {"train": {}}):
        monkeypatch.setitem(experiments.PRESETS, "standard", same.model_copy(update=change))
        assert claims.resume("multitask", steps=220) == {"steps": 220}, change  # the preset changed since: start over


def test_claims_from_a_model_leave_the_presets_pooled_heads_to_stage_1(tmp_path):
    claims = experiments.Claims("standard", seed=0)
    assert claims.config(tmp_path / "mt", ["synth_age"], 10).train.pooled_heads == {"synth_age": 1.0}
    prompt = claims.config(tmp_path / "p", ["synth_age"], 10, train={"mode": "prompt"}, init_from=str(tmp_path))
    assert (prompt.train.mode, prompt.train.pooled_heads) == ("prompt", 0)


def test_specialist_second_stage_trains_only_its_last_layer(monkeypatch):
    """The anchor trained as the demo is (``head_images``): the backbone, BatchNorm statistics included, stays as
    stage 1 left it while the output layer moves."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    nets: list[torch.nn.Module] = []
    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    make = bench.make_specialist

    def spy(arch, outputs, task=""):
        nets.append(make(arch, outputs, task))
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


@pytest.mark.parametrize(
    ("task", "head", "metric"),
    [("synth_identity", ("fc.",), "verification_accuracy"), ("synth_parsing", ("decoder.",), "f1")],
)
def test_identity_and_parsing_anchors_train_as_the_demo_does(monkeypatch, task, head, metric):
    """The identity anchor trains CosFace's classifier with it in both stages; the parsing anchor gives stride-2
    logits; in either, the second stage moves only what sits on the frozen backbone (BatchNorm statistics held)."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    nets: list[torch.nn.Module] = []
    losses: list[torch.nn.Module] = []
    make, real_last = bench.make_specialist, bench._last_layer
    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    monkeypatch.setattr(bench, "make_specialist", lambda *a: nets.append(make(*a)) or nets[-1])

    def snap_then_last(net):
        snapshots["net"] = {k: v.clone() for k, v in net.state_dict().items()}
        snapshots["loss"] = {k: v.clone() for k, v in losses[0].state_dict().items()} if losses else {}
        return real_last(net)

    monkeypatch.setattr(bench, "_last_layer", snap_then_last)
    make_loss = bench.make_loss
    monkeypatch.setattr(bench, "make_loss", lambda spec: losses.append(make_loss(spec)) or losses[-1])
    rec = bench.train_specialist(task, 16, batch=8, seed=0, num_workers=0, eval_limit=20, head_images=16, head_lr=1e-2)
    net = nets[0]
    after = net.state_dict()
    moved = {k for k, v in snapshots["net"].items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith(head) for k in moved), moved
    assert not any(k.endswith(("running_mean", "running_var")) for k in moved)
    if task == "synth_identity":  # the classifier moved in both stages
        assert not torch.equal(snapshots["loss"]["weight"], losses[0].weight)
        assert net.eval()(torch.rand(2, 3, 112, 112)).shape == (2, 512)
    else:
        assert net.eval()(torch.rand(2, 3, 112, 112)).shape == (2, 11, 56, 56)
    assert 0.0 <= rec["metrics"][metric] <= 1.0


def test_specialists_take_a_depth_or_change_a_stage_and_refuse_unknown_names():
    """``_dD`` gives the ViT specialists D transformer blocks (the demo's encoder has 2); ``resnet18_3stage`` drops
    ResNet-18's fourth stage and ``resnet18_os16`` keeps it at stride 16."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    net = bench.make_specialist("vit_resnet48_d2", 7)
    assert len(net.encoder.blocks) == 2 and net.encoder.patch_embed.width == 48
    assert net.encoder.blocks[0].ls1.gamma.detach().max() == pytest.approx(1e-5)  # LayerScale, as the demo's
    assert len(bench.make_specialist("vit_resnet32_nols", 7).encoder.blocks) == 6
    three = bench.make_specialist("resnet18_3stage", 7)  # ResNet-18 to stride 16: the demo stem's depth
    assert three(torch.rand(2, 3, 112, 112)).shape == (2, 7) and not any(three.layer4.parameters())
    os16 = bench.make_specialist("resnet18_os16", 7)  # the fourth stage kept, at stride 16 (7 x 7 at 112 px)
    body = torch.nn.Sequential(*list(os16.children())[:-2])
    assert body(torch.rand(2, 3, 112, 112)).shape == (2, 512, 7, 7) and os16(torch.rand(2, 3, 112, 112)).shape == (2, 7)
    assert sum(p.numel() for p in os16.parameters()) == sum(
        p.numel() for p in bench.make_specialist("resnet18", 7).parameters()
    )
    for bad in ("vit_resnet48_d0", "vit_resnetx", "resnet18_d2"):
        with pytest.raises(SystemExit, match="unknown specialist"):
            bench.make_specialist(bad, 7)


def test_faceptor_specialist_is_the_demos_model_and_its_second_stage_leaves_the_encoder(monkeypatch):
    """``faceptor_pooled`` trains the demo's model with a pooled head's loss added; its second stage, as the demo's,
    trains everything but the encoder (BatchNorm statistics included) and no longer the pooled head."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    from faceptor_tasks.synthfaces.demo import RESNET_MODEL

    nets: list[torch.nn.Module] = []
    make = bench.make_specialist

    def spy(arch, outputs, task=""):
        nets.append(make(arch, outputs, task))
        return nets[-1]

    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    real_last = bench._last_layer

    def snap_then_last(net):
        snapshots["stage1"] = {k: v.clone() for k, v in net.state_dict().items()}
        return real_last(net)

    monkeypatch.setattr(bench, "make_specialist", spy)
    monkeypatch.setattr(bench, "_last_layer", snap_then_last)
    rec = bench.train_specialist(
        "synth_expression", 16, batch=8, seed=0, num_workers=0, eval_limit=8, arch="faceptor_pooled", head_images=16
    )
    net = nets[0]
    after = {k: v.clone() for k, v in net.state_dict().items()}
    assert net.model.config.encoder.stem_width == RESNET_MODEL["stem_width"]
    assert net.model.encoder.depth == RESNET_MODEL["depth"]
    x = torch.rand(2, 3, 112, 112)
    net.train()
    assert [o.shape for o in net(x)] == [(2, 7), (2, 7)]  # the decoder's logits and the pooled head's
    net.eval()
    assert net(x).shape == (2, 7)  # scored on the decoder's logits alone
    moved = {k for k, v in snapshots["stage1"].items() if not torch.equal(v, after[k])}
    assert moved and all(k.startswith("model.") and not k.startswith("model.encoder.") for k in moved)
    assert any(k.startswith("model.queries.") for k in moved)
    assert 0.0 <= rec["metrics"]["accuracy"] <= 1.0


def test_faceptor_specialist_gradient_options():
    """``memory_grad`` scales what the decoder sends back to the encoder, and nothing else; ``key_grad=False`` sends
    none through the keys."""
    bench = pytest.importorskip("bench_specialist")
    import torch

    def encoder_grads(arch):
        torch.manual_seed(0)
        net = bench.make_specialist(arch, 7, "synth_expression").train()
        net.model.encoder.eval()  # the same BatchNorm outputs in both nets
        torch.manual_seed(1)
        out = net(torch.rand(2, 3, 112, 112))
        (out[0] if isinstance(out, tuple) else out).logsumexp(-1).sum().backward()
        grads = {n: p.grad.clone() for n, p in net.model.named_parameters() if p.grad is not None}
        return out, grads

    plain, g_plain = encoder_grads("faceptor")
    scaled, g_scaled = encoder_grads("faceptor_pooled_memgrad0.1")
    torch.testing.assert_close(scaled[0], plain)  # the forward pass is unchanged
    name = "encoder.patch_embed.proj.weight"
    torch.testing.assert_close(g_scaled[name], 0.1 * g_plain[name], rtol=1e-3, atol=1e-8)
    name = "decoder.layers.0.linear1.weight"  # the decoder itself learns at full rate
    torch.testing.assert_close(g_scaled[name], g_plain[name])
    _, g_nokey = encoder_grads("faceptor_keydetach")
    assert not torch.allclose(g_nokey["encoder.patch_embed.proj.weight"], g_plain["encoder.patch_embed.proj.weight"])
    assert g_nokey["decoder.layers.0.cross_attn.in_proj_weight"].abs().sum() > 0


def test_a_claims_entry_keeps_the_error_bars_its_evaluation_gave():
    metrics = {"mae": 12.5, "baseline/mae": 23.9, "margin_se/mae": 1.3}
    assert experiments.scored("synth_age", metrics) == {"metric": 12.5, "baseline": 23.9, "se": 1.3}
    del metrics["margin_se/mae"]  # an evaluation without error bars: none invented
    assert experiments.scored("synth_age", metrics) == {"metric": 12.5, "baseline": 23.9}


def test_sweep_writes_each_record_as_its_job_ends(tmp_path, monkeypatch, capsys):
    """A job that ends first is on disk before a slower one ends: stopping a sweep loses only unfinished jobs."""
    results = tmp_path / "results.jsonl"
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"kind": "faceptor", "name": "slow"}, {"kind": "faceptor", "name": "fast"}]))

    def fake_run(cmd, **kwargs):
        job = json.loads(cmd[cmd.index("--child") + 1])
        seen_fast = True
        if job["name"] == "slow":  # ends only once the fast job's record is on disk (or gives up after 10 s)
            deadline = time.monotonic() + 10
            while "fast" not in (results.read_text() if results.exists() else ""):
                if time.monotonic() > deadline:
                    seen_fast = False
                    break
                time.sleep(0.02)
        rec = {"job": job, "results": {"seen_fast": seen_fast}}
        return subprocess.CompletedProcess(cmd, 0, stdout="RESULT " + json.dumps(rec) + "\n", stderr="")

    monkeypatch.setattr(learning_sweep.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["learning_sweep.py", str(jobs), str(results), "--parallel", "2"])
    learning_sweep.main()
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["job"]["name"] for r in recs] == ["fast", "slow"]
    assert recs[1]["results"]["seen_fast"]
    out = capsys.readouterr().out
    assert "started slow" in out and "started fast" in out
    assert "1/2 done: fast" in out and "2/2 done: slow" in out


def test_sweep_variants_share_stage_1_and_pair_exactly(tmp_path):
    """A job's variants are second stages from its own first stage: a variant without changes reproduces the job's
    second stage to the last digit, and one with other type weights records them and moves the results."""
    job = {
        "name": "v",
        "overrides": {"preset": "quick", "steps": 2, "heads_steps": 2, "eval_limit": 8, "baseline_limit": 16},
        "variants": {"same": {}, "heavier": {"heads_type_weights": {"landmarks": 4000.0}}},
    }
    from faceptor_tasks.synthfaces.demo import RENDER_CACHE

    rec = learning_sweep.run_faceptor(job, tmp_path / "run", workers=0)
    same, heavier = rec["variants"]["same"], rec["variants"]["heavier"]
    assert same["results"] == rec["results"] and same["heads_steps"] == 2 and "heads_type_weights" not in same
    assert heavier["heads_type_weights"] == {"landmarks": 4000.0}
    nme = "nme_inter_ocular"
    assert heavier["results"]["synth_landmarks"][nme] != rec["results"]["synth_landmarks"][nme]
    assert not (tmp_path / "run" / "variant").exists() and not (tmp_path / "run" / RENDER_CACHE).exists()
    with pytest.raises(ValueError, match="job w: variants are second stages"):
        learning_sweep.run_faceptor(
            {**job, "name": "w", "overrides": {**job["overrides"], "heads_steps": 0}}, tmp_path / "w", workers=0
        )
