"""The training engine: multi-task steps, resume, prompt tuning, Stage 2, NaN handling, configs."""

from __future__ import annotations

import pytest
import torch

from faceptor_core import load
from faceptor_core.checkpoint import CheckpointError, save_state
from faceptor_core.train import NonFiniteLossError, RunConfig, Trainer, load_run_config
from faceptor_core.train.config import ConfigError
from faceptor_core.train.schedule import lr_at
from faceptor_core.train.weighting import combine_losses, task_weights
from tests.conftest import TINY_DECODER
from tests.toytasks import toy_specs


def run_config(tmp_path, **kw) -> RunConfig:
    base = {
        "output_dir": str(tmp_path / "run"),
        "model": {"encoder": "vit_t16", "decoder": TINY_DECODER, "drop_path_rate": 0.1},
        "tasks": [{"name": "toy_channel", "batch_size": 8}, {"name": "toy_brightness", "batch_size": 4}],
        "optimizer": {"lr": 1e-3},
        "schedule": {"steps": 6, "warmup_steps": 2},
        "eval_every": 3,
        "checkpoint_every": 2,
        "progress": False,
    }
    base.update(kw)
    return RunConfig.model_validate(base)


def weights_of(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_lowers_the_loss_and_logs(registry, tmp_path):
    cfg = run_config(tmp_path, schedule={"steps": 40, "warmup_steps": 4}, eval_every=40, checkpoint_every=40)
    trainer = Trainer(cfg, registry=registry)
    first = trainer.train_step()["loss"]
    trainer.fit()
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert any('"eval"' in line for line in log)
    last = [float(line.split('"loss": ')[1].split(",")[0]) for line in log if '"loss": ' in line][-1]
    assert last < first
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "best" / "faceptor.json").is_file()


def test_resume_reaches_the_same_weights(registry, tmp_path):
    full = Trainer(run_config(tmp_path / "a"), registry=registry)
    full.fit()
    interrupted = Trainer(run_config(tmp_path / "b"), registry=registry)
    interrupted.fit(stop_after=4)  # checkpoint at step 4, then the process "dies"
    del interrupted
    resumed = Trainer(run_config(tmp_path / "b"), registry=registry, resume=True)
    assert resumed.step == 4
    resumed.fit()
    a, b = weights_of(full.model), weights_of(resumed.model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resuming_with_a_losses_file_of_another_run_is_refused_by_file(registry, tmp_path):
    Trainer(run_config(tmp_path), registry=registry).fit(stop_after=2)
    path = tmp_path / "run" / "checkpoints" / "last" / "losses.safetensors"
    save_state({"stray.centres": torch.zeros(3, 4)}, path)
    with pytest.raises(CheckpointError, match=r"losses.safetensors: the weights do not match this run's losses.*stray"):
        Trainer(run_config(tmp_path), registry=registry, resume=True)


def test_nan_loss_names_task_and_step(registry, tmp_path):
    trainer = Trainer(run_config(tmp_path), registry=registry)
    trainer.losses["toy_brightness"].forward = lambda raw, target: raw.sum() * float("nan")
    with pytest.raises(NonFiniteLossError, match=r"toy_brightness.*step 1"):
        trainer.train_step()


def test_prompt_tuning_trains_only_new_queries(registry, tmp_path):
    base_cfg = run_config(tmp_path / "base", tasks=[{"name": "toy_brightness", "batch_size": 4}])
    Trainer(base_cfg, registry=registry).fit()
    base_dir = tmp_path / "base" / "run" / "checkpoints" / "last"
    base = load(base_dir, registry=registry)
    cfg = run_config(
        tmp_path / "tune",
        init_from=str(base_dir),
        tasks=[{"name": "toy_channel", "batch_size": 8}],
        train={"mode": "prompt"},
        schedule={"steps": 30, "warmup_steps": 0},
        optimizer={"lr": 1e-2},
        eval_every=30,
        checkpoint_every=30,
    )
    trainer = Trainer(cfg, registry=registry)
    assert trainer.trainable_names == [
        "output_gain.toy_channel",  # the new task's output starts at its prior (TaskHead.output_affine)
        "output_prior.toy_channel",
        "queries.toy_channel.feat",
        "queries.toy_channel.pos",
    ]
    assert trainer.num_trainable_parameters() == 2 * 3 * TINY_DECODER["hidden_dim"] + 3 + 3
    before = trainer.evaluate()["toy_channel"]["accuracy"]
    trainer.fit()
    after = trainer.evaluate()["toy_channel"]["accuracy"]
    assert after >= before
    tuned = trainer.model.state_dict()
    for k, v in base.state_dict().items():  # everything of the base stays bit-identical
        assert torch.equal(tuned[k], v), k
    addon = tmp_path / "tune" / "run" / "addon"
    restored = load(base_dir, registry=registry, addons=[addon])
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(restored.eval()(x)["toy_channel"], trainer.model.eval()(x)["toy_channel"])


def test_stage2_trains_layer_attention_on_a_frozen_model(registry, tmp_path):
    Trainer(run_config(tmp_path / "s1"), registry=registry).fit()
    s1 = tmp_path / "s1" / "run" / "checkpoints" / "last"
    cfg = run_config(
        tmp_path / "s2",
        init_from=str(s1),
        tasks=[{"name": "toy_channel", "batch_size": 8}],
        train={"mode": "layer_attention", "add_memory_layers": [1, 3, 5, 7, 9]},
    )
    trainer = Trainer(cfg, registry=registry)
    assert "layer_attention.proj.5.weight" in trainer.trainable_names
    assert "queries.toy_channel.feat" in trainer.trainable_names
    assert not any(n.startswith(("encoder.", "decoder.")) for n in trainer.trainable_names)
    enc_before = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    trainer.fit()
    for k, v in trainer.model.encoder.state_dict().items():
        assert torch.equal(v, enc_before[k])
    pref = trainer.model.layer_preference(torch.rand(2, 3, 32, 32), "toy_channel")
    assert list(pref) == [11, 1, 3, 5, 7, 9]


def test_heads_mode_trains_everything_but_the_frozen_encoder(registry, tmp_path):
    model = {"encoder": "vit_t16", "decoder": TINY_DECODER, "stem": "resnet", "stem_width": 8, "depth": 2}
    Trainer(run_config(tmp_path / "s1", model=model), registry=registry).fit()
    s1 = tmp_path / "s1" / "run" / "checkpoints" / "last"
    trainer = Trainer(
        run_config(tmp_path / "s2", model=model, init_from=str(s1), train={"mode": "heads"}), registry=registry
    )
    names = trainer.trainable_names
    assert not any(n.startswith("encoder.") for n in names)
    assert {"decoder.layers.0.linear1.weight", "value_interpreter.fc.weight", "queries.toy_channel.feat"} <= set(names)
    assert trainer.num_trainable_parameters() == sum(
        p.numel() for n, p in trainer.model.named_parameters() if not n.startswith("encoder.")
    )
    before = weights_of(trainer.model)
    trainer.fit()
    after = trainer.model.state_dict()
    encoder = [k for k in before if k.startswith("encoder.")]
    assert any("running_mean" in k for k in encoder)  # the stem's batch norms: their statistics are held too
    for k in encoder:
        assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["decoder.layers.0.linear1.weight"], before["decoder.layers.0.linear1.weight"])
    reloaded = load(tmp_path / "s2" / "run" / "checkpoints" / "last", registry=registry)
    torch.testing.assert_close(
        reloaded.state_dict()["encoder.blocks.0.attn.qkv.weight"],
        before["encoder.blocks.0.attn.qkv.weight"],
        rtol=0,
        atol=0,
    )


def test_task_weighting_formula():
    specs = {s.name: s for s in toy_specs()}
    a = specs["toy_channel"].model_copy(update={"loss_weight": 3.0, "family": "f"})
    b = specs["toy_brightness"].model_copy(update={"loss_weight": 1.0, "family": "f"})
    c = specs["toy_channel"].model_copy(update={"name": "other", "loss_weight": 7.0, "family": "g"})
    w = task_weights([a, b, c], {"g": 2.0})
    assert w == {"toy_channel": 0.75, "toy_brightness": 0.25, "other": 2.0}
    total = combine_losses(
        {"toy_channel": torch.tensor(1.0), "toy_brightness": torch.tensor(2.0), "other": torch.tensor(4.0)}, w
    )
    assert float(total) == pytest.approx((0.75 + 0.5 + 8.0) / 3.0)


def test_schedule_warmup_and_cosine():
    assert lr_at(0, 1.0, 100, 10, 0.0) == 0.0
    assert lr_at(5, 1.0, 100, 10, 0.0) == pytest.approx(0.5)
    assert lr_at(10, 1.0, 100, 10, 0.0) == pytest.approx(1.0)
    assert lr_at(55, 1.0, 100, 10, 0.0) == pytest.approx(0.5)
    assert lr_at(100, 1.0, 100, 10, 0.0) == pytest.approx(0.0)


def test_yaml_errors_name_the_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("tasks:\n  - name: toy_channel\n    batchsize: 8\noptimizer:\n  lr: fast\n")
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    msg = str(info.value)
    assert "tasks.0.batchsize" in msg and "optimizer.lr" in msg and str(path) in msg
    path.write_text("tasks: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_run_config(path)


def test_killed_run_resumes_to_the_same_weights(registry, tmp_path):
    """A real SIGKILL in the middle of a run (maybe mid-checkpoint); --resume continues exactly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from faceptor_core.checkpoint import WEIGHTS, read_weights

    steps = 14
    cfg = run_config(
        tmp_path / "killed", schedule={"steps": steps, "warmup_steps": 2}, checkpoint_every=1, eval_every=1000
    )
    path = tmp_path / "cfg.json"
    path.write_text(cfg.model_dump_json())
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.train_toy_script", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "killed" / "run" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = tmp_path / "killed" / "run" / "checkpoints" / "last"
    state = torch.load(last / "trainer.pt", weights_only=True)
    assert 1 <= state["step"] < steps, "the run must be killed before it finishes"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed process: float reductions may depend on the thread count
    try:
        resumed = Trainer(cfg, registry=registry, resume=True)
        resumed.fit()
        full = Trainer(
            run_config(
                tmp_path / "full", schedule={"steps": steps, "warmup_steps": 2}, checkpoint_every=1, eval_every=1000
            ),
            registry=registry,
        )
        full.fit()
    finally:
        torch.set_num_threads(threads)
    a = read_weights(tmp_path / "full" / "run" / "checkpoints" / "last" / WEIGHTS)
    b = read_weights(last / WEIGHTS)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
