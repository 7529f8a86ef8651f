"""`faceptor demo` trains on every SynthFaces task and writes the report a person looks at."""

from __future__ import annotations

import json

from PIL import Image

from faceptor_core.cli import main
from faceptor_tasks.synthfaces.demo import DEMO_TASKS


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
