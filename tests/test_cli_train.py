"""The training and inference commands end to end on SynthFaces: train, eval, predict, tune."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from PIL import Image

from faceptor_core.cli import build_parser, main

TINY_MODEL = {
    "encoder": "vit_t16",
    "input_size": 32,
    "decoder": {"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cfg = {
        "output_dir": str(root / "run"),
        "model": TINY_MODEL,
        "progress": False,
        "tasks": [
            {"name": "synth_landmarks", "batch_size": 4, "eval_limit": 8},
            {"name": "synth_expression", "batch_size": 4, "eval_limit": 8},
        ],
        "schedule": {"steps": 2, "warmup_steps": 1},
        "eval_every": 2,
        "checkpoint_every": 2,
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    return root


def test_train_writes_checkpoints_and_log(trained):
    ckpt = trained / "run" / "checkpoints" / "last"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "trainer.pt").is_file()
    log = [json.loads(x) for x in (trained / "run" / "log.jsonl").read_text().splitlines()]
    assert any("eval" in r for r in log)


def test_train_says_why_precision_auto_trains_in_float32(tmp_path, capsys, monkeypatch):
    from faceptor_core.train import engine

    cfg = {
        "output_dir": str(tmp_path / "run"),
        "model": TINY_MODEL,
        "progress": False,
        "precision": "auto",
        "eval_baselines": False,
        "tasks": [{"name": "synth_expression", "batch_size": 4, "eval_limit": 4}],
        "schedule": {"steps": 1, "warmup_steps": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(engine, "resolve_precision", lambda asked, device: "fp32")  # a CPU without bf16
    assert main(["train", str(path)]) == 0
    assert "note: precision auto: this CPU has no bf16 instructions, so training runs in float32" in (
        capsys.readouterr().err
    )


def test_train_reports_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  - name: synth_age\n    batch_size: -1\n")
    assert main(["train", str(path)]) == 2
    assert "tasks.0.batch_size" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (
            "mode: heads\n  train_queries: false",
            "train: Value error, train.train_queries: false has no effect in mode 'heads'",
        ),
        (
            "add_memory_layers: [1, 3]",
            "train: Value error, train.add_memory_layers is used by mode 'layer_attention' only",
        ),
        ("mode: prompt\n  add_memory_layers: [1]", "only, not 'prompt'"),
    ],
)
def test_train_refuses_options_its_mode_would_ignore(tmp_path, capsys, train, message):
    """A training option the chosen mode ignores is refused before anything runs, naming the field."""
    path = tmp_path / "ignored.yaml"
    path.write_text(f"output_dir: {tmp_path / 'run'}\ntasks:\n  - name: synth_age\ntrain:\n  {train}\n")
    assert main(["train", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_eval_prints_and_writes_metrics(trained, tmp_path, capsys):
    out = tmp_path / "m.json"
    ckpt = str(trained / "run" / "checkpoints" / "last")
    assert main(["eval", ckpt, "--tasks", "synth_expression", "--limit", "8", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["synth_expression"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    text = capsys.readouterr().out
    assert "synth_expression (split test, 8 items)" in text and "baseline: majority training class" in text
    assert any(x.split()[:1] == ["accuracy"] and "baseline" in x for x in text.splitlines())


def test_predict_on_crops_writes_json_and_overlay_and_names_bad_files(trained, tmp_path, capsys):
    img = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((60, 50, 3)) * 255).astype(np.uint8)).save(img)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "pred"
    ckpt = str(trained / "run" / "checkpoints" / "last")
    assert main(["predict", str(img), str(bad), "--checkpoint", ckpt, "--out", str(out), "--no-detect"]) == 1
    assert "broken.jpg: cannot decode image" in capsys.readouterr().err
    record = json.loads((out / "face.json").read_text())
    [face] = record["faces"]
    assert face["source"] == "whole_image" and face["box"] == [-0.5, -0.5, 49.5, 59.5]
    assert len(face["tasks"]["synth_landmarks"]["points"]) == 68
    assert face["tasks"]["synth_expression"]["label"] in {
        "surprise",
        "fear",
        "disgust",
        "happiness",
        "sadness",
        "anger",
        "neutral",
    }
    with Image.open(out / "face.overlay.png") as im:
        assert im.width >= 200


def test_tune_adds_a_task_as_an_addon(trained, tmp_path, capsys):
    ckpt = str(trained / "run" / "checkpoints" / "last")
    out = tmp_path / "tune"
    assert (
        main(
            [
                "tune",
                ckpt,
                "--task",
                "synth_age",
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--eval-limit",
                "8",
                "--precision",
                "fp32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["precision"] == "fp32"
    assert json.loads((out / "log.jsonl").read_text().splitlines()[0])["precision"] == "fp32"
    # 101 queries x 32 wide x (content + position), and a gain and a bias per query (TaskHead.output_affine)
    assert "trainable parameters: 6,666 of" in text
    before = re.search(r"before mae=([\d.]+), baseline/mae=([\d.]+)", text)
    assert before and float(before[1]) == pytest.approx(float(before[2]), abs=0.01)  # starts at the mean age
    manifest = json.loads((out / "addon" / "addon.json").read_text())
    assert [t["name"] for t in manifest["tasks"]] == ["synth_age"]
    import faceptor_core

    model = faceptor_core.load(ckpt, addons=[out / "addon"])
    assert "synth_age" in model.task_names


def test_tune_trains_in_the_demos_precision_by_default():
    from faceptor_core.train.prompt import prompt_tune_config

    ckpt = "runs/base/checkpoints/last"  # read when training starts, not here
    assert prompt_tune_config(ckpt, "synth_age").precision == "auto"  # bf16 where the CPU computes it natively
    assert build_parser().parse_args(["tune", ckpt, "--task", "synth_age"]).precision == "auto"
