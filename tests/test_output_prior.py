"""Output priors (``DecoderConfig.output_prior``): a model starts training at each task's trivial answer.

The baselines' ``raw_output`` must decode to the baseline's own answer, the model must add the prior to the head's
raw output (and save it), and the trainer must start it from the baseline fitted on the training split.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import faceptor_core
from faceptor_core.model.config import EncoderConfig
from faceptor_core.outputs import soft_argmax
from faceptor_core.spec import PriorBaseline, TaskHead
from faceptor_core.train.config import RunConfig
from faceptor_core.train.engine import Trainer
from faceptor_tasks.families.baselines import (
    AgeMeanBaseline,
    AttributeMajorityBaseline,
    MajorityClassBaseline,
    MeanShapeBaseline,
    MeanValueBaseline,
    PixelMajorityBaseline,
    RegressionMeanBaseline,
)

BOTH = ("dense", "attribute")
TINY_DECODER = {"hidden_dim": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1, "output_prior": BOTH}
TINY_ENCODER = EncoderConfig(name="vit_t16", stem="conv", depth=1, drop_path_rate=0)


@settings(max_examples=40, deadline=None)
@given(
    centre=st.lists(st.tuples(st.floats(0.25, 0.75), st.floats(0.25, 0.75)), min_size=1, max_size=6),
    spread=st.floats(0.0, 0.04),
    side=st.sampled_from([16, 28, 64]),
)
def test_mean_shape_prior_soft_argmaxes_to_the_mean_shape(centre, spread, side) -> None:
    """Whatever the mean points and their spread, the prior heatmaps' soft-argmax is the mean shape (within a
    half a percent of the crop: the 1e-6 floor of far cells pulls a little towards the centre)."""
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor(centre, dtype=torch.float64)
    size = 112
    pts = (mean + spread * torch.randn(64, len(centre), 2, generator=gen, dtype=torch.float64)) * size - 0.5
    base = MeanShapeBaseline()
    base.fit([{"image": torch.zeros(64, 3, size, size), "target": pts}])
    raw = base.raw_output((len(centre), side, side))
    assert raw.shape == (len(centre), side, side) and torch.isfinite(raw).all()
    got = soft_argmax(raw[None])[0].double()
    torch.testing.assert_close(got, base.mean_shape, atol=0.004, rtol=0)


def test_mean_shape_prior_refuses_another_point_count() -> None:
    base = MeanShapeBaseline()
    base.fit([{"image": torch.zeros(2, 3, 32, 32), "target": torch.full((2, 5, 2), 10.0)}])
    with pytest.raises(ValueError, match="5 points, the head 68"):
        base.raw_output((68, 8, 8))


def test_pixel_majority_prior_argmaxes_to_the_majority_map() -> None:
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (30, 8, 8), generator=gen)
    labels[:, :4] = torch.where(torch.rand(30, 4, 8, generator=gen) < 0.8, 2, labels[:, :4])  # a clear majority
    base = PixelMajorityBaseline(["a", "b", "c", "d"])
    base.fit([{"image": torch.zeros(30, 3, 8, 8), "target": labels}])
    raw = base.raw_output((4, 8, 8))
    assert torch.equal(raw.argmax(0)[:4], base.majority_map[:4])
    torch.testing.assert_close(raw.exp().sum(0), torch.ones(8, 8))  # log class frequencies of each cell
    assert base.raw_output((4, 4, 4)).shape == (4, 4, 4)  # pooled to the head's resolution


@given(counts=st.lists(st.integers(0, 50), min_size=2, max_size=8))
def test_class_prior_ranks_classes_by_frequency(counts) -> None:
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    if len(labels) == 0:
        return
    base = MajorityClassBaseline([str(i) for i in range(len(counts))])
    base.fit([{"target": labels}])
    raw = base.raw_output((len(counts),))
    assert int(raw.argmax()) == base.majority
    by_count = torch.tensor(counts, dtype=torch.float64).argsort(stable=True)
    assert torch.equal(raw.argsort(stable=True), by_count)


def test_attribute_prior_decodes_to_each_majority() -> None:
    target = torch.tensor([[1, 0, -1], [1, 0, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.float32)  # -1: unknown
    base = AttributeMajorityBaseline(["a", "b", "c"])
    base.fit([{"target": target}])
    raw = base.raw_output((3,))
    assert torch.equal(raw.sigmoid() > 0.5, base.majority)
    with pytest.raises(ValueError, match=r"answers \(3,\)"):
        base.raw_output((4,))


def test_which_baselines_give_a_prior() -> None:
    assert isinstance(MeanShapeBaseline(), PriorBaseline)
    assert not isinstance(MeanValueBaseline("years"), PriorBaseline)  # a value with no known raw form
    assert isinstance(AgeMeanBaseline("years"), PriorBaseline)
    assert isinstance(RegressionMeanBaseline("rad"), PriorBaseline)  # regression's raw outputs are its values


@settings(max_examples=40, deadline=None)
@given(ages=st.lists(st.floats(0, 100), min_size=1, max_size=40))
def test_age_prior_decodes_to_the_mean_training_age(ages) -> None:
    from faceptor_core.outputs import expected_age

    base = AgeMeanBaseline("years", 101)
    base.fit([{"target": torch.tensor(ages)}])
    raw = base.raw_output((101,))
    assert float(expected_age(raw[None])[0]) == pytest.approx(float(base.mean), abs=2e-3)
    with pytest.raises(ValueError):
        base.raw_output((100,))


def test_regression_prior_is_the_mean_value() -> None:
    base = RegressionMeanBaseline("rad")
    base.fit([{"target": torch.tensor([[0.1, -0.3], [0.3, 0.1]])}])
    torch.testing.assert_close(base.raw_output((2,)), torch.tensor([0.2, -0.1]))
    with pytest.raises(ValueError):
        base.raw_output((3,))


def test_a_task_added_with_output_affine_starts_at_its_prior_and_round_trips(tmp_path) -> None:
    """A task added onto a trained model answers its prior, whatever the image, until its gain moves; the gain
    and the prior are its own parameters and survive save and load."""
    model = _model(tasks=("synth_parsing", "synth_attributes"), output_prior=())
    spec = faceptor_core.get_task("synth_expression")
    head = spec.head_config().model_copy(update={"input_size": 32, "output_affine": True})
    new = model.add_task(head)
    assert sorted(new) == [
        "output_gain.synth_expression",
        "output_prior.synth_expression",
        "queries.synth_expression.feat",
        "queries.synth_expression.pos",
    ]
    prior = torch.linspace(-1, 1, 7)
    model.set_output_prior("synth_expression", prior)
    x = torch.rand(3, 3, 32, 32)
    out = model.eval()(x)["synth_expression"]
    torch.testing.assert_close(out, prior.expand(3, 7))
    with torch.no_grad():
        model.output_gain["synth_expression"].fill_(0.5)
    moved = model(x)["synth_expression"]
    assert not torch.allclose(moved, prior.expand(3, 7)) and moved.std(0).gt(0).all()  # the image shows through
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m").eval()
    assert again.tasks["synth_expression"].output_affine
    torch.testing.assert_close(again(x)["synth_expression"], moved)
    with pytest.raises(ValueError, match="identity tasks bypass the decoder"):
        identity = faceptor_core.get_task("synth_identity").head_config().model_dump()
        TaskHead.model_validate({**identity, "output_affine": True})


def _model(tasks=("synth_parsing", "synth_expression", "synth_identity"), **decoder):
    return faceptor_core.build(
        list(tasks), encoder=TINY_ENCODER, input_sizes=32, decoder={**TINY_DECODER, **decoder}
    ).eval()


def test_model_adds_the_prior_to_raw_outputs_and_saves_it(tmp_path) -> None:
    model = _model()
    assert set(model.output_prior) == {"synth_parsing", "synth_expression"}  # identity has no decoder output
    assert model.output_prior["synth_parsing"].shape == (11, 8, 8)
    x = torch.rand(2, 3, 32, 32)
    before = model(x)
    prior = torch.linspace(-1, 1, 7)
    model.set_output_prior("synth_expression", prior)
    after = model(x)
    torch.testing.assert_close(after["synth_expression"], before["synth_expression"] + prior)
    torch.testing.assert_close(after["synth_parsing"], before["synth_parsing"])
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m")
    torch.testing.assert_close(again(x)["synth_expression"], after["synth_expression"])


def test_set_output_prior_refuses_bad_values() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"shape \(6,\), expected \(7,\)"):
        model.set_output_prior("synth_expression", torch.zeros(6))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.set_output_prior("synth_expression", torch.full((7,), float("nan")))
    with pytest.raises(ValueError, match="no output prior"):
        model.set_output_prior("synth_identity", torch.zeros(7))
    dense_only = _model(output_prior=("dense",))
    assert set(dense_only.output_prior) == {"synth_parsing"}


def test_the_papers_model_has_no_prior() -> None:
    model = _model(output_prior=())
    assert len(model.output_prior) == 0
    assert not any(k.startswith("output_prior.") for k in model.state_dict())


def _run(tmp_path, prior: bool) -> dict:
    return {
        "output_dir": str(tmp_path / ("prior" if prior else "plain")),
        "model": {
            "encoder": "vit_t16",
            "stem": "conv",
            "depth": 1,
            "input_size": 32,
            "decoder": {**TINY_DECODER, "output_prior": BOTH if prior else ()},
        },
        "tasks": [
            {"name": "synth_landmarks", "batch_size": 2, "eval_limit": 8},
            {"name": "synth_expression", "batch_size": 2, "eval_limit": 8},
        ],
        "baseline_limit": 16,
        "eval_batch_size": 8,
        "schedule": {"steps": 1, "warmup_steps": 0},
        "progress": False,
    }


def test_training_starts_at_the_trivial_answer(tmp_path) -> None:
    """Before any step, a model with output priors scores (about) what the trivial answer scores; the baseline
    fitted for the prior is the one evaluation scores, and the data streams draw as without priors."""
    trainer = Trainer(RunConfig.model_validate(_run(tmp_path, True)))
    assert set(trainer.fitted_baselines) == {"synth_landmarks", "synth_expression"}
    base = trainer.fitted_baselines["synth_landmarks"]
    shape = trainer.model.raw_output_shape(trainer.model.tasks["synth_landmarks"])
    torch.testing.assert_close(trainer.model.output_prior["synth_landmarks"].detach(), base.raw_output(shape))
    with torch.no_grad():  # no image-dependent part: the outputs are the priors alone
        trainer.model.map_interpreter.mask_mlp[-1].weight.zero_()
        trainer.model.map_interpreter.mask_mlp[-1].bias.zero_()
    res = trainer.evaluate()["synth_landmarks"]
    assert res["nme"] == pytest.approx(res["baseline/nme"], rel=0.05)
    plain = Trainer(RunConfig.model_validate(_run(tmp_path, False)))
    assert not plain.fitted_baselines
    first, other = next(trainer.streams["synth_expression"]), next(plain.streams["synth_expression"])
    assert torch.equal(first["image"], other["image"])


def test_prompt_tuning_fits_the_new_tasks_prior_only_and_saves_it_in_the_addon(tmp_path) -> None:
    base_cfg = _run(tmp_path / "base", True)
    base_cfg["tasks"] = base_cfg["tasks"][:1]  # synth_landmarks
    Trainer(RunConfig.model_validate(base_cfg)).fit()
    base_dir = tmp_path / "base" / "prior" / "checkpoints" / "last"
    base = faceptor_core.load(base_dir)
    cfg = _run(tmp_path / "tune", True)
    cfg.update(init_from=str(base_dir), train={"mode": "prompt"}, tasks=cfg["tasks"][1:])  # synth_expression
    trainer = Trainer(RunConfig.model_validate(cfg))
    assert set(trainer.fitted_baselines) == {"synth_expression"}  # the checkpoint's task keeps its learned prior
    assert "output_prior.synth_expression" in trainer.trainable_names
    expected = trainer.fitted_baselines["synth_expression"].raw_output((7,))
    torch.testing.assert_close(trainer.model.output_prior["synth_expression"].detach(), expected)
    assert "output_gain.synth_expression" in trainer.trainable_names
    start = trainer.evaluate()["synth_expression"]  # the untrained queries do not show: the trivial answer exactly
    assert start["accuracy"] == start["baseline/accuracy"]
    trainer.fit()
    assert trainer.model.output_gain["synth_expression"].abs().sum() > 0
    tuned = trainer.model.state_dict()
    for k, v in base.state_dict().items():  # the base, its landmark prior included, stays bit-identical
        assert torch.equal(tuned[k], v), k
    restored = faceptor_core.load(base_dir, addons=[tmp_path / "tune" / "prior" / "addon"]).eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(restored(x)["synth_expression"], trainer.model.eval()(x)["synth_expression"])


@pytest.mark.parametrize("affine", [True, False])
def test_only_new_attribute_tasks_get_the_affine_start(tmp_path, affine) -> None:
    """A new attribute-type task starts at its trivial answer through a gain and bias of its own; a new dense task
    keeps the decoder's prior rule (the map interpreter starts it near the trivial answer); ``train.output_affine:
    false`` trains the queries alone, as the paper's prompt tuning."""
    _model(tasks=("synth_landmarks",), output_prior=()).save_pretrained(tmp_path / "base")
    cfg = _run(tmp_path / "tune", False)
    cfg["tasks"] = [
        {"name": "synth_parsing", "batch_size": 2, "eval_limit": 8},
        {"name": "synth_expression", "batch_size": 2, "eval_limit": 8},
    ]
    cfg.update(init_from=str(tmp_path / "base"), train={"mode": "prompt", "output_affine": affine})
    trainer = Trainer(RunConfig.model_validate(cfg))
    tasks = trainer.model.tasks
    assert tasks["synth_expression"].output_affine is affine and not tasks["synth_parsing"].output_affine
    new = {n for n in trainer.trainable_names if n.startswith(("output_", "queries."))}
    expected = {f"queries.{t}.{p}" for t in ("synth_parsing", "synth_expression") for p in ("feat", "pos")}
    if affine:
        expected |= {"output_gain.synth_expression", "output_prior.synth_expression"}
    assert new == expected
