"""`faceptor demo` trains on every SynthFaces task and writes the report a person looks at."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from faceptor_core import get_task, load
from faceptor_core.cli import main
from faceptor_core.data.streams import TaskStream
from faceptor_core.train.config import ConfigError, RunConfig
from faceptor_core.train.engine import Trainer
from faceptor_core.train.precision import resolve_precision
from faceptor_tasks.synthfaces.demo import (
    DEMO_TASKS,
    PRESETS,
    RENDER_CACHE,
    TYPE_WEIGHTS,
    HeadsStage,
    _loss_series,
    demo_config,
    demo_plan,
    heads_config,
    run_demo,
    stage1_config,
)


def test_demo_writes_metrics_curves_and_pictures(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--steps", "4", "--out", str(out)]) == 0
    assert "demo: 4 steps training the whole model; forward pass in " in capsys.readouterr().out
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == set(DEMO_TASKS)
    text = (report / "metrics.md").read_text()
    assert "| task | metric | model | trivial answer | beats it? |" in text
    assert "| synth_age | mae |" in text
    for task in DEMO_TASKS:  # every task's metrics stand beside its trivial answer on the same items
        assert any(k.startswith("baseline/") for k in metrics[task]), task
        assert metrics[task][f"margin_se/{get_task(task).primary_metric}"] >= 0, task  # and an error bar
    assert "margin ± two standard errors" in text and "±" in text.split("| --- |")[-1]
    assert 0.4 < metrics["synth_identity"]["baseline/verification_accuracy"] < 0.6
    for picture in ("loss_curves.png", "predictions.png"):
        with Image.open(report / picture) as im:
            assert im.width >= 200 and im.height >= 150
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [4]


def test_two_stage_demo_trains_the_decoders_on_the_frozen_stage1_encoder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    closed: list[str] = []
    close = TaskStream.close
    monkeypatch.setattr(TaskStream, "close", lambda self: (closed.append(self.name), close(self))[1])
    assert main(["demo", "--quick", "--steps", "2", "--heads-steps", "3", "--out", str(out)]) == 0
    assert sorted(closed) == sorted(2 * DEMO_TASKS)  # each stage's data workers stop when it ends
    said = capsys.readouterr()
    assert "demo: 2 steps training the whole model, then 3 training its decoders on the frozen encoder" in said.out
    assert "train (full, " in said.err and "train (heads, " in said.err  # each stage's progress bar names it
    stage1 = load(out / "stage1" / "checkpoints" / "last").state_dict()
    final = load(out / "checkpoints" / "last").state_dict()
    for key, value in stage1.items():  # the demo's model keeps stage 1's encoder bit for bit; its decoders moved
        assert torch.equal(final[key], value) == key.startswith("encoder."), key
    assert json.loads((out / "config.json").read_text())["train"]["mode"] == "heads"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [3]
    text = (out / "report" / "metrics.md").read_text()
    assert "2 steps, then 3 with the encoder frozen" in text
    assert "| task | metric | model | after stage 1 | trivial answer | beats it? |" in text
    assert set(json.loads((out / "report" / "metrics_stage1.json").read_text())) == set(DEMO_TASKS)
    assert main(["demo", "--quick", "--steps", "2", "--out", str(out)]) == 0  # one stage: no stale first stage left
    assert not (out / "stage1").exists() and not (out / "report" / "metrics_stage1.json").exists()
    assert not (out / RENDER_CACHE).exists()  # the painted images it kept while training are gone
    assert "| task | metric | model | trivial answer | beats it? |" in (out / "report" / "metrics.md").read_text()


def test_the_plan_says_why_a_cpu_without_bf16_trains_slower():
    def plan(asked: str, used: str, device: str = "cpu") -> str:
        trainer = SimpleNamespace(
            cfg=SimpleNamespace(schedule=SimpleNamespace(steps=300), precision=asked),
            precision=used,
            device=torch.device(device),
        )
        return demo_plan(trainer, 450)

    assert plan("auto", "fp32").endswith(
        "forward pass in fp32 on cpu (precision auto: this CPU has no bf16 instructions, so training runs in "
        "float32, more slowly than on one with them)"
    )
    assert plan("auto", "bf16").endswith("forward pass in bf16 on cpu")
    assert plan("fp32", "fp32").endswith("forward pass in fp32 on cpu")  # asked for: nothing to explain
    assert plan("auto", "fp32", "cuda").endswith("forward pass in fp32 on cuda")  # a GPU: not a CPU's instructions
    assert plan("auto", "fp32").startswith("demo: 300 steps training the whole model, then 450 training its decoders")


def test_stage2_config_starts_from_stage1_with_a_fresh_schedule_and_data_order(tmp_path):
    demo = demo_config(tmp_path / "demo", "standard")
    stage1 = stage1_config(demo)
    cfg = heads_config(demo, HeadsStage(steps=450, lr=1e-3))
    assert cfg.init_from == str(tmp_path / "demo" / "stage1" / "checkpoints" / "last")
    assert (cfg.train.mode, cfg.seed, cfg.optimizer.lr) == ("heads", stage1.seed + 1, 1e-3)
    assert (cfg.schedule.steps, cfg.schedule.warmup_steps, cfg.eval_every) == (450, 22, 450)
    assert cfg.tasks == stage1.tasks and cfg.type_weights == stage1.type_weights
    assert heads_config(demo, HeadsStage(steps=450)).optimizer.lr == stage1.optimizer.lr
    readout = HeadsStage(steps=450, train={"add_grid_readout": 3})
    assert heads_config(demo, readout).train.add_grid_readout == 3
    landmarks = demo_config(tmp_path / "lm", "standard", tasks=["synth_landmarks"])
    assert heads_config(landmarks, readout).train.add_grid_readout == 0  # nothing to read
    assert (stage1.output_dir, cfg.output_dir) == (str(tmp_path / "demo" / "stage1"), demo.output_dir)
    assert (stage1.eval_baselines, cfg.eval_baselines) == (False, True)


def test_stage2_type_weights_change_stage2_only_and_the_preset_gives_its_stage2(tmp_path):
    demo = demo_config(tmp_path / "demo", "standard")
    cfg = heads_config(demo, HeadsStage(steps=450, type_weights={"attributes": 0.9}))
    assert cfg.type_weights == {**demo.type_weights, "attributes": 0.9}
    landmarks = demo_config(tmp_path / "lm", "standard", tasks=["synth_landmarks"])
    assert heads_config(landmarks, HeadsStage(steps=4, type_weights={"attributes": 0.9})).type_weights == {
        "landmarks": 40.0
    }  # a demo family the run does not train is left out
    misspelt = heads_config(demo, HeadsStage(steps=4, type_weights={"atributes": 0.9}))
    with pytest.raises(ConfigError, match="type_weights.atributes: no task of this run has family"):
        Trainer(misspelt)  # kept, and refused by name
    assert stage1_config(demo).type_weights["attributes"] == PRESETS["standard"].type_weights["attributes"]
    assert PRESETS["standard"].heads.type_weights == {"attributes": 0.9}  # stage 2's, not stage 1's (0.3)


def test_stage1_type_weights_leave_out_families_not_trained_and_keep_a_misspelt_name(tmp_path, monkeypatch):
    """Stage 1 filters a preset's type weights by the same rule as stage 2: a misspelt family is refused by name."""
    landmarks = demo_config(tmp_path / "lm", "standard", tasks=["synth_landmarks"])
    assert landmarks.type_weights == {"landmarks": 40.0}
    typo = PRESETS["standard"].model_copy(update={"type_weights": {**TYPE_WEIGHTS, "atributes": 0.3}})
    monkeypatch.setitem(PRESETS, "typo", typo)
    cfg = demo_config(tmp_path / "typo", "typo", tasks=["synth_landmarks"])
    assert cfg.type_weights == {"landmarks": 40.0, "atributes": 0.3}
    with pytest.raises(ConfigError, match="type_weights.atributes: no task of this run has family"):
        Trainer(cfg)


def test_loss_curves_run_stage_2_on_from_stage_1(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"step": 0, "precision": "fp32"}\n{"step": 5, "loss": 2.0, "loss/x": 1.0}\n{"step": 5, "eval": {}}\n')
    b.write_text('{"step": 5, "loss": 1.0, "loss/x": 0.5}\n{"step": 10, "loss": 0.5, "loss/x": 0.25}\n')
    assert _loss_series([a, b]) == {"loss": [(5, 2.0), (10, 1.0), (15, 0.5)], "x": [(5, 1.0), (10, 0.5), (15, 0.25)]}


@pytest.mark.parametrize(
    ("preset", "steps", "heads_steps", "pooled"), [("standard", 300, 450, True), ("full", 400, 450, False)]
)
def test_resnet_presets_train_the_resnet_stem_with_expression_at_32(tmp_path, preset, steps, heads_steps, pooled):
    """The standard demo and ``--full`` train the encoder that reads expression at 112 px: its batches, weights and
    precision reach the trainer, and a step runs."""
    assert demo_config(tmp_path / "default", preset).schedule.steps == steps
    assert (PRESETS[preset].heads.steps, PRESETS[preset].heads.lr) == (heads_steps, 1e-3)
    d = demo_config(tmp_path / "run", preset, steps=2).model_dump()
    for entry in d["tasks"]:
        entry["eval_limit"] = 4
    d.update(baseline_limit=8, progress=False, num_workers=0)
    trainer = Trainer(RunConfig.model_validate(d))
    enc = trainer.model.config.encoder
    assert (enc.stem, enc.stem_width, enc.depth, enc.layer_scale) == ("resnet", 48, 2, 1e-5)
    dec = trainer.model.config.decoder
    assert (dec.stem_skip, dec.pixel_fpn, dec.pixel_stride) == (True, True, 2)
    assert trainer.model.raw_output_shape(trainer.model.tasks["synth_parsing"]) == (11, 56, 56)
    assert {head.input_size for head in trainer.model.config.tasks} == {112}
    assert trainer.cfg.precision == "auto" and trainer.precision == resolve_precision("auto", trainer.device)
    sizes = {t.name: t.batch_size for t in trainer.cfg.tasks}
    assert sizes == {
        "synth_landmarks": 8,
        "synth_parsing": 8,
        "synth_age": 8,
        "synth_expression": 32,
        "synth_attributes": 16,
        "synth_identity": 32,
    }
    # the standard demo: pooled heads on the three attribute-type tasks (the attributes' at twice its share), their
    # queries' memory gradient at a tenth
    assert (trainer.pooled is not None, dec.memory_grad) == ((True, 0.1) if pooled else (False, 1.0))
    if pooled:
        assert trainer.pooled.fractions == {"synth_age": 1.0, "synth_expression": 1.0, "synth_attributes": 2.0}
    conv = PRESETS["quick"].type_weights  # the conv stem's weights
    assert trainer.weights["synth_expression"] == 3 * conv["expression"]
    assert trainer.weights["synth_attributes"] == pytest.approx(3 * conv["attributes"])
    results = trainer.fit()
    assert trainer.step == 2 and set(results) == set(DEMO_TASKS)


def test_the_standard_demos_pooled_heads_stay_with_stage_1_and_attribute_tasks(tmp_path):
    demo = demo_config(tmp_path / "demo", "standard")
    fractions = {"synth_age": 1.0, "synth_expression": 1.0, "synth_attributes": 2.0}
    assert demo.train.pooled_heads == fractions and demo.train.mode == "full"
    assert (demo.train.pooled_head_queries, demo.train.pooled_head_mean) == (4, True)  # attention beside the mean
    stage2 = heads_config(demo, HeadsStage(steps=450)).train  # stage 2: the encoder is frozen, nothing to supervise
    assert (stage2.pooled_heads, stage2.pooled_head_queries, stage2.pooled_head_mean) == (0, 0, False)
    landmarks = demo_config(tmp_path / "lm", "standard", tasks=["synth_landmarks"]).train
    # no attribute-type task: no pooled head, nor its readout (the config would refuse either)
    assert (landmarks.pooled_heads, landmarks.pooled_head_queries, landmarks.pooled_head_mean) == (0, 0, False)
    # a subset keeps its own tasks' fractions: the trainer refuses a pooled head for a task the run does not have
    assert demo_config(tmp_path / "age", "standard", tasks=["synth_age"]).train.pooled_heads == {"synth_age": 1.0}
    pair = demo_config(tmp_path / "pair", "standard", tasks=["synth_landmarks", "synth_attributes"])
    assert pair.train.pooled_heads == {"synth_attributes": 2.0}


def test_a_presets_per_task_pooled_readouts_keep_the_runs_tasks(tmp_path, monkeypatch):
    pooled = {"synth_age": 1.0, "synth_attributes": 2.0}
    train = {"pooled_heads": pooled, "pooled_head_queries": {"synth_attributes": 4}}
    monkeypatch.setitem(PRESETS, "standard", PRESETS["standard"].model_copy(update={"train": train}))
    pair = demo_config(tmp_path / "pair", "standard", tasks=["synth_landmarks", "synth_attributes"])
    assert pair.train.pooled_head_queries == {"synth_attributes": 4}
    age = demo_config(tmp_path / "age", "standard", tasks=["synth_age"])  # the trainer would refuse a stray name
    assert (age.train.pooled_heads, age.train.pooled_head_queries) == ({"synth_age": 1.0}, {})
    landmarks = demo_config(tmp_path / "lm", "standard", tasks=["synth_landmarks"])
    assert (landmarks.train.pooled_heads, landmarks.train.pooled_head_queries) == (0, 0)
    assert heads_config(pair, HeadsStage(steps=450)).train.pooled_head_queries == 0  # stage 2 trains no pooled head
    mean = {**train, "pooled_head_mean": True}
    monkeypatch.setitem(PRESETS, "standard", PRESETS["standard"].model_copy(update={"train": mean}))
    pair = demo_config(tmp_path / "pair2", "standard", tasks=["synth_landmarks", "synth_attributes"])
    assert pair.train.pooled_head_mean
    age = demo_config(tmp_path / "age2", "standard", tasks=["synth_age"])  # no attention readout left to add it to
    assert (age.train.pooled_head_queries, age.train.pooled_head_mean) == ({}, False)


def test_unknown_preset_names_the_presets(tmp_path):
    with pytest.raises(ValueError, match="unknown demo preset 'fast'; expected one of quick, standard, full"):
        demo_config(tmp_path, "fast")


def test_negative_stage2_steps_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="--heads-steps -1: expected 0"):
        run_demo(tmp_path / "demo", "quick", heads_steps=-1)
    assert not (tmp_path / "demo").exists()


def test_quick_and_full_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quick", "--full", "--out", str(tmp_path / "demo")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
