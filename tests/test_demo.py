"""`faceptor demo` trains on every SynthFaces task and writes the report a person looks at."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from faceptor_core.cli import main
from faceptor_core.train.config import RunConfig
from faceptor_core.train.engine import Trainer
from faceptor_core.train.precision import resolve_precision
from faceptor_tasks.synthfaces.demo import DEMO_TASKS, PRESETS, demo_config


def test_demo_writes_metrics_curves_and_pictures(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--steps", "4", "--out", str(out)]) == 0
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == set(DEMO_TASKS)
    text = (report / "metrics.md").read_text()
    assert "| task | metric | model | trivial answer | beats it? |" in text
    assert "| synth_age | mae |" in text
    for task in DEMO_TASKS:  # every task's metrics stand beside its trivial answer on the same items
        assert any(k.startswith("baseline/") for k in metrics[task]), task
    assert 0.4 < metrics["synth_identity"]["baseline/verification_accuracy"] < 0.6
    for picture in ("loss_curves.png", "predictions.png"):
        with Image.open(report / picture) as im:
            assert im.width >= 200 and im.height >= 150
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [4]


@pytest.mark.parametrize(("preset", "steps", "identity"), [("standard", 300, 16), ("full", 400, 32)])
def test_resnet_presets_train_the_resnet_stem_with_expression_at_32(tmp_path, preset, steps, identity):
    """The standard demo and ``--full`` train the encoder that reads expression at 112 px: its batches, weights and
    precision reach the trainer, and a step runs."""
    assert demo_config(tmp_path / "default", preset).schedule.steps == steps
    d = demo_config(tmp_path / "run", preset, steps=2).model_dump()
    for entry in d["tasks"]:
        entry["eval_limit"] = 4
    d.update(baseline_limit=8, progress=False, num_workers=0)
    trainer = Trainer(RunConfig.model_validate(d))
    enc = trainer.model.config.encoder
    assert (enc.stem, enc.stem_width, enc.depth, enc.layer_scale) == ("resnet", 48, 2, 1e-5)
    assert {head.input_size for head in trainer.model.config.tasks} == {112}
    assert trainer.cfg.precision == "auto" and trainer.precision == resolve_precision("auto", trainer.device)
    sizes = {t.name: t.batch_size for t in trainer.cfg.tasks}
    assert sizes == {
        "synth_landmarks": 8,
        "synth_parsing": 8,
        "synth_age": 8,
        "synth_expression": 32,
        "synth_attributes": 16,
        "synth_identity": identity,
    }
    conv = PRESETS["quick"].type_weights  # the conv stem's weights
    assert trainer.weights["synth_expression"] == 3 * conv["expression"]
    assert trainer.weights["synth_attributes"] == pytest.approx(3 * conv["attributes"])
    results = trainer.fit()
    assert trainer.step == 2 and set(results) == set(DEMO_TASKS)


def test_unknown_preset_names_the_presets(tmp_path):
    with pytest.raises(ValueError, match="unknown demo preset 'fast'; expected one of quick, standard, full"):
        demo_config(tmp_path, "fast")


def test_quick_and_full_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--quick", "--full", "--out", str(tmp_path / "demo")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
