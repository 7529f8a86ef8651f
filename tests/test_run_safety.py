"""Training never loses work nor writes wrong values: output directories, interrupted saves, loss weights,
non-finite losses and gradients, and commands that write into folders a user owns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from faceptor_core.cli import main
from faceptor_core.errors import RunDirectoryError
from faceptor_core.train import NonFiniteLossError, RunConfig, Trainer
from faceptor_core.train.config import ConfigError, load_run_config
from tests.conftest import TINY_DECODER

TINY = {"encoder": "vit_t16", "decoder": TINY_DECODER}


def run_config(out, **kw) -> RunConfig:
    base = {
        "output_dir": str(out),
        "progress": False,
        "model": TINY,
        "tasks": [{"name": "toy_channel", "batch_size": 4}, {"name": "toy_brightness", "batch_size": 4}],
        "schedule": {"steps": 2, "warmup_steps": 1},
        "eval_every": 100,
        "checkpoint_every": 1,
    }
    base.update(kw)
    return RunConfig.model_validate(base)


@pytest.fixture
def finished(registry, tmp_path):
    """A run of 2 steps with checkpoints at both steps."""
    cfg = run_config(tmp_path / "run")
    trainer = Trainer(cfg, registry=registry)
    trainer.fit()
    return cfg, trainer


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- output directories -------------------------------------------------------------------------------
def test_a_fresh_run_into_a_finished_one_is_refused(registry, finished):
    cfg, _ = finished
    before = snapshot(cfg_out(cfg))
    with pytest.raises(RunDirectoryError, match=r"already holds a run .*--resume .*--overwrite"):
        Trainer(cfg, registry=registry)
    assert snapshot(cfg_out(cfg)) == before, "nothing of the earlier run is touched"


def cfg_out(cfg) -> Path:
    return Path(cfg.output_dir)


def test_overwrite_starts_over_and_resume_continues(registry, finished):
    cfg, first = finished
    out = cfg_out(cfg)
    log_lines = len((out / "log.jsonl").read_text().splitlines())
    with pytest.raises(RunDirectoryError, match="contradict"):
        Trainer(cfg, registry=registry, resume=True, overwrite=True)
    reseeded = cfg.model_copy(update={"seed": 1})
    again = Trainer(reseeded, registry=registry, overwrite=True)
    assert not (out / "checkpoints").exists() and not (out / "log.jsonl").exists()
    again.fit()
    assert len((out / "log.jsonl").read_text().splitlines()) == log_lines  # a new log, not appended
    longer = reseeded.model_copy(update={"schedule": cfg.schedule.model_copy(update={"steps": 3})})
    resumed = Trainer(longer, registry=registry, resume=True)
    assert resumed.step == 2


# -- resuming with another configuration ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seed": 3}, "seed: 0 -> 3"),
        ({"type_weights": {"toy_channel": 2.0}}, "type_weights.toy_channel: None -> 2.0"),
        ({"optimizer": {"lr": 1e-3}}, "optimizer.lr: 5e-05 -> 0.001"),
        ({"model": {**TINY, "depth": 3}}, "model.depth: None -> 3"),
        (
            {"tasks": [{"name": "toy_channel", "batch_size": 8}, {"name": "toy_brightness", "batch_size": 4}]},
            "tasks.0.batch_size: 4 -> 8",
        ),
        ({"tasks": [{"name": "toy_channel", "batch_size": 4}]}, "tasks: "),
    ],
)
def test_resuming_with_another_configuration_is_refused_by_field(registry, finished, change, field):
    """config.json is rewritten when a run starts: a resume that changed what shapes training would lose the record
    of how the weights were made, and continue another run from this one's state."""
    cfg, _ = finished
    out = cfg_out(cfg)
    before = snapshot(out)
    changed = RunConfig.model_validate({**cfg.model_dump(), **change})
    with pytest.raises(ConfigError, match=r"config.json: the run was started with another configuration") as info:
        Trainer(changed, registry=registry, resume=True)
    assert f"\n  {field}" in str(info.value) and "schedule.steps" in str(info.value)
    assert snapshot(out) == before, "nothing of the run is touched"


def test_a_resume_that_extends_the_run_logs_what_the_configuration_said_before(registry, finished, tmp_path):
    cfg, _ = finished
    out = cfg_out(cfg)
    longer = cfg.model_copy(
        update={"schedule": cfg.schedule.model_copy(update={"steps": 3}), "log_every": 1, "num_workers": 0}
    )
    Trainer(longer, registry=registry, resume=True).fit()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    notes = [r["resumed_with"] for r in records if "resumed_with" in r]
    assert notes == [{"log_every": [10, 1], "schedule.steps": [2, 3]}]
    assert json.loads((out / "config.json").read_text())["schedule"]["steps"] == 3


def test_an_unreadable_saved_configuration_is_named(registry, finished):
    cfg, _ = finished
    (cfg_out(cfg) / "config.json").write_text('{"seed": ')
    with pytest.raises(ConfigError, match=r"config.json: cannot read the configuration the run was started with"):
        Trainer(cfg, registry=registry, resume=True)
    saved = json.loads(cfg.model_dump_json())
    (cfg_out(cfg) / "config.json").write_text(json.dumps({**saved, "seed": "x"}))  # e.g. another version's file
    with pytest.raises(ConfigError, match=r"config.json: invalid run configuration:\n  seed: "):
        Trainer(cfg, registry=registry, resume=True)


def test_cli_refuses_in_one_line_and_overwrite_is_explicit(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints" / "last").mkdir(parents=True)
    (out / "checkpoints" / "last" / "model.safetensors").write_bytes(b"precious")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(out), "tasks": [{"name": "synth_age"}]}))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--overwrite" in err
    assert (out / "checkpoints" / "last" / "model.safetensors").read_bytes() == b"precious"
    assert main(["train", str(path), "--resume"]) == 2  # not a complete checkpoint: said in one line
    err = capsys.readouterr().err
    assert "no checkpoint to resume from" in err and err.count("\n") == 1
    assert (out / "checkpoints" / "last" / "model.safetensors").read_bytes() == b"precious"


# -- interrupted saves --------------------------------------------------------------------------------
@pytest.mark.parametrize("leftover", [".last.new", ".last.old"])
def test_resume_finds_a_checkpoint_an_interrupted_save_left_hidden(registry, finished, leftover):
    """``.last.new``: killed after the new copy was complete, before it was moved in; ``.last.old``: killed
    between the renames of an older version's save (no ``last`` at all)."""
    cfg, trainer = finished
    ckpt = cfg_out(cfg) / "checkpoints"
    (ckpt / "last").rename(ckpt / leftover)
    (ckpt / ".last.tmp").mkdir()  # an incomplete copy is ignored
    resumed = Trainer(cfg, registry=registry, resume=True)
    assert resumed.step == 2
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    assert sorted(p.name for p in ckpt.iterdir()) == ["best", "last"]


def test_a_save_interrupted_before_the_swap_keeps_the_previous_checkpoint(registry, tmp_path, monkeypatch):
    cfg = run_config(tmp_path / "run", schedule={"steps": 2, "warmup_steps": 1})
    trainer = Trainer(cfg, registry=registry)
    trainer.fit(stop_after=1)
    before = snapshot(tmp_path / "run" / "checkpoints" / "last")
    trainer.train_step()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # dies half-way through writing the new checkpoint

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint("last")
    assert snapshot(tmp_path / "run" / "checkpoints" / "last") == before


# -- loss weights and non-finite values ---------------------------------------------------------------
def test_type_weights_must_name_the_runs_families(registry, tmp_path):
    with pytest.raises(ConfigError, match=r"type_weights\.toy_chanel: no task of this run has family"):
        Trainer(run_config(tmp_path / "r", type_weights={"toy_chanel": 2.0}), registry=registry)


@pytest.mark.parametrize("value", ["-1.0", "0", ".nan", ".inf"])
def test_type_weights_must_be_positive_and_finite(tmp_path, value):
    path = tmp_path / "run.yaml"
    path.write_text(f"tasks: [{{name: toy_channel}}]\ntype_weights: {{toy_channel: {value}}}\n")
    with pytest.raises(ConfigError, match=r"type_weights\.toy_channel"):
        load_run_config(path)


def test_a_non_finite_weighted_total_stops_the_run(registry, tmp_path):
    huge = {"toy_channel": 1e308, "toy_brightness": 1e308}  # each finite; their sum overflows
    trainer = Trainer(run_config(tmp_path / "r", type_weights=huge), registry=registry)
    with pytest.raises(NonFiniteLossError, match="weighted total loss is nan at step 1"):
        trainer.fit()
    assert not (tmp_path / "r" / "checkpoints" / "last").exists()


def test_a_non_finite_gradient_stops_the_run_before_the_weights_change(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path / "r"), registry=registry)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def nan_gradient(raw, target):  # value 0, gradient NaN (sqrt at 0)
        x = raw.sum()
        return (x - x.detach()).abs().sqrt()

    trainer.losses["toy_brightness"].forward = nan_gradient
    with pytest.raises(NonFiniteLossError, match="gradient is NaN or infinite at step 1"):
        trainer.train_step()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_a_non_finite_model_is_never_checkpointed(registry, finished):
    cfg, trainer = finished
    last = cfg_out(cfg) / "checkpoints" / "last"
    before = snapshot(last)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match="refusing to write"):
        trainer.save_checkpoint("last")
    assert snapshot(last) == before


# -- commands writing into a user's folders -----------------------------------------------------------
def test_synth_export_refuses_a_non_empty_folder(tmp_path, capsys):
    target = tmp_path / "300w"
    target.mkdir()
    (target / "face_landmarks_300w_train.csv").write_text("the user's own annotations\n")
    assert main(["synth", "export", "--format", "300w", "--count", "2", "--size", "64", str(target)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err and err.count("\n") == 1
    assert (target / "face_landmarks_300w_train.csv").read_text() == "the user's own annotations\n"
    assert (
        main(["synth", "export", "--format", "300w", "--count", "2", "--size", "64", str(target), "--overwrite"]) == 0
    )
    assert "the user's" not in (target / "face_landmarks_300w_train.csv").read_text()


def test_demo_replaces_only_its_own_output(tmp_path, capsys):
    from faceptor_tasks.synthfaces.demo import DEMO_TASKS, owned_by_demo

    foreign = tmp_path / "my-run"
    (foreign / "checkpoints" / "last").mkdir(parents=True)
    (foreign / "config.json").write_text(json.dumps({"tasks": [{"name": "landmarks_300w"}]}))
    assert main(["demo", "--quick", "--steps", "1", "--out", str(foreign)]) == 2
    assert "not the output of an earlier `faceptor demo`" in capsys.readouterr().err
    assert (foreign / "checkpoints" / "last").is_dir()
    earlier_demo = tmp_path / "demo"
    earlier_demo.mkdir()
    (earlier_demo / "config.json").write_text(json.dumps({"tasks": [{"name": t} for t in DEMO_TASKS]}))
    assert owned_by_demo(earlier_demo) and owned_by_demo(tmp_path / "absent")
