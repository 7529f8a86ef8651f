"""Contract tests for task plugins: one line in a plugin's test suite checks every task it registers.

    # tests/test_contract.py of a plugin
    from faceptor_core.testing import task_contract_tests

    test_contract = task_contract_tests(["gaze_synth"])

Each task is checked for: a valid spec, well-formed raw and transformed dataset items that collate (targets
of the output kind's shape), evaluation crops made with the spec's declared ``crop`` (what photo inference cuts),
horizontal flips that change the labels as the spec's flip rule says (:mod:`faceptor_core.testing_flip`),
forward / predict shapes on a tiny model, a finite and differentiable loss, metrics that compute finite
values (including the primary metric), and an exact save / load round trip.

Every failure is a :class:`ContractError` naming the task and the check (an exception raised inside a check, such
as a shape error in the task's loss, is reported as that check's failure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from .build import build, load
from .outputs import OUTPUTS
from .registry import TaskRegistry, default_registry
from .spec import TaskSpec
from .testing_flip import check_flip as _check_flip

TINY = {"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 2}
BATCH = 4


class ContractError(AssertionError):
    """A task breaks the plugin contract; the message names the task and the check."""


def _fail(spec: TaskSpec, check: str, msg: str) -> None:
    raise ContractError(f"task {spec.name!r}, {check}: {msg}")


def _tiny_size(spec: TaskSpec) -> int:
    return 64 if spec.head_type == "dense" else 32


def _batch(spec: TaskSpec, root: str | None, split: str = "train") -> dict:
    size = _tiny_size(spec)
    transform = spec.transforms(split, size) if spec.transforms else None
    ds = spec.dataset(root, split, transform=transform)
    return default_collate([ds[i] for i in range(min(BATCH, len(ds)))])


def check_spec(spec: TaskSpec, root: str | None, tmp: Path) -> None:
    TaskSpec.model_validate(spec.model_dump())
    for field in ("dataset", "transforms", "loss", "metrics"):
        if getattr(spec, field) is None:
            _fail(spec, "spec", f"supplies no {field}")
    if not spec.primary_metric:
        _fail(spec, "spec", "declares no primary_metric")


def check_dataset(spec: TaskSpec, root: str | None, tmp: Path) -> None:
    ds = spec.dataset(root, "train", transform=None)
    if len(ds) < BATCH:
        _fail(spec, "dataset", f"only {len(ds)} training items")
    item = ds[0]
    img = item.get("image")
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        _fail(spec, "dataset", f"raw item image must be uint8 H x W x 3, got {getattr(img, 'shape', type(img))}")
    if "target" not in item:
        _fail(spec, "dataset", "raw item has no 'target'")
    batch = _batch(spec, root)
    size = _tiny_size(spec)
    x = batch["image"]
    if tuple(x.shape[1:]) != (3, size, size) or not x.is_floating_point():
        _fail(spec, "dataset", f"transformed images must be float 3 x {size} x {size}, got {tuple(x.shape)}")
    if float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6:
        _fail(spec, "dataset", "transformed images must lie in [0, 1] (the model normalises)")
    _check_targets(spec, batch["target"], size)


def _target_shape(spec: TaskSpec, b: int, size: int) -> tuple[tuple[int, ...], ...]:
    """The accepted shapes of a collated training target batch, by output kind."""
    k = spec.num_queries
    return {
        "landmarks": ((b, k, 2),),
        "segmentation": ((b, size, size),),
        "classification": ((b,), (b, 1)),
        "multilabel": ((b, k),),
        "regression": ((b, k),) + (((b,),) if k == 1 else ()),
        "age_distribution": ((b,), (b, 1)),
        "embedding": ((b,), (b, 1)),
    }[spec.output]


def _check_targets(spec: TaskSpec, target: object, size: int) -> None:
    if not isinstance(target, torch.Tensor):
        _fail(spec, "dataset", f"transformed targets must collate into a tensor, got {type(target).__name__}")
    assert isinstance(target, torch.Tensor)
    want = _target_shape(spec, len(target), size)
    if tuple(target.shape) not in want:
        what = " or ".join(str(w) for w in want)
        _fail(
            spec,
            "dataset",
            f"a batch of {spec.output} targets has shape {tuple(target.shape)}, expected {what} "
            f"({spec.num_queries} queries)",
        )


def check_crop(spec: TaskSpec, root: str | None, tmp: Path) -> None:
    """The evaluation transform crops with ``spec.crop``: given five points (and a box), its
    ``meta["affine"]`` is the crop :func:`faceptor_core.analyze` computes for the same face."""
    ds = spec.dataset(root, "train", transform=None)
    item = dict(ds[0])
    h, w = item["image"].shape[:2]
    pts = np.array([[0.38, 0.42], [0.62, 0.41], [0.5, 0.55], [0.41, 0.7], [0.6, 0.69]]) * [w, h]
    box = np.array([0.2 * w, 0.2 * h, 0.8 * w, 0.85 * h])
    item.update(align_points=pts.astype(np.float32), box=box.astype(np.float32))
    size = _tiny_size(spec)
    out = spec.transforms("test", size)(item)
    affine = (out.get("meta") or {}).get("affine") if isinstance(out, Mapping) else None
    if affine is None:
        _fail(spec, "crop", "transformed items must record meta['affine'] (original pixels -> crop pixels)")
    want = spec.crop.matrix(size, points=pts, box=box, image_hw=(h, w))
    if not np.allclose(np.asarray(affine, np.float64), want, atol=1e-3):
        _fail(
            spec,
            "crop",
            f"the evaluation crop is not the spec's crop ({spec.crop.method} method): the transform "
            "must crop with spec.crop.matrix (faceptor_tasks.families.crop.item_crop_matrix)",
        )
    factor = float(np.asarray(out["meta"].get("warp_factor", 0.0)))
    if abs(factor - spec.crop.warp_factor) > 1e-9:
        _fail(
            spec,
            "crop",
            f"the evaluation crop's tanh warp is {factor:g}, the spec's crop declares {spec.crop.warp_factor:g}",
        )


def check_flip(spec: TaskSpec, root: str | None, tmp: Path) -> None:
    """Flips change the labels as ``spec.flip`` says (see :mod:`faceptor_core.testing_flip`)."""
    _check_flip(spec, root, _tiny_size(spec), lambda msg: _fail(spec, "flip", msg))


def _model(spec: TaskSpec, registry: TaskRegistry | None):
    torch.manual_seed(0)
    return build([spec], encoder="vit_t16", input_sizes=_tiny_size(spec), decoder=TINY, registry=registry)


def check_forward(spec: TaskSpec, root: str | None, tmp: Path, registry: TaskRegistry | None = None) -> None:
    model = _model(spec, registry).eval()
    x = torch.rand(2, 3, 48, 48)
    raw = model(x)[spec.name]
    s = _tiny_size(spec) // 4
    want = {
        "dense": (2, spec.num_queries, s, s),
        "attribute": (2, spec.num_queries),
        "identity": (2, spec.embedding_dim),
    }[spec.head_type]
    if tuple(raw.shape) != want:
        _fail(spec, "forward", f"raw output shape {tuple(raw.shape)}, expected {want}")
    pred = model.predict(x)[spec.name]
    expected = OUTPUTS[spec.output].prediction
    if spec.decode is None and not isinstance(pred, expected):
        _fail(spec, "predict", f"returned {type(pred).__name__}, expected {expected.__name__}")
    if not isinstance(pred.item(0), Mapping):
        _fail(spec, "predict", "item(0) must be a JSON-ready dict")


def check_loss(spec: TaskSpec, root: str | None, tmp: Path, registry: TaskRegistry | None = None) -> None:
    model = _model(spec, registry).train()
    batch = _batch(spec, root)
    loss_fn = spec.loss(spec)
    raw = model({_tiny_size(spec): batch["image"]})[spec.name]
    loss = loss_fn(raw, batch["target"])
    if loss.ndim != 0 or not torch.isfinite(loss):
        _fail(spec, "loss", f"must be a finite scalar, got {loss}")
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    if not grads or not all(torch.isfinite(g).all() for g in grads):
        _fail(spec, "loss", "gradients are missing or not finite")


def check_metrics(spec: TaskSpec, root: str | None, tmp: Path, registry: TaskRegistry | None = None) -> None:
    """Metrics compute finite values (the primary one among them), declare a ``meta`` for each (the primary
    metric's direction agreeing with ``spec.higher_is_better``), and fractions lie in [0, 1]."""
    from .evaluate import evaluate_with_baseline

    model = _model(spec, registry)
    result = evaluate_with_baseline(
        model, spec, root, "test", batch_size=BATCH, limit=2 * BATCH, baseline=False, error_bars=False
    )
    values, meta = result.metrics, result.meta
    if not values or not all(math.isfinite(v) for v in values.values()):
        _fail(spec, "metrics", f"must compute finite values, got {values}")
    if spec.primary_metric not in values:
        _fail(spec, "metrics", f"primary metric {spec.primary_metric!r} not among {sorted(values)}")
    undeclared = sorted(set(values) - set(meta))
    if undeclared:
        _fail(
            spec,
            "metrics",
            f"meta declares no direction / unit for {', '.join(undeclared)} (give the metric a "
            "meta: {name: faceptor_core.spec.MetricMeta(better=..., unit=..., description=...)})",
        )
    primary = meta[spec.primary_metric]
    if primary.higher_is_better is None:
        _fail(spec, "metrics", f"primary metric {spec.primary_metric!r} is no score (its meta has better=None)")
    if primary.higher_is_better != spec.higher_is_better:
        _fail(
            spec,
            "metrics",
            f"primary metric {spec.primary_metric!r}: meta says {primary.better} is better, the "
            f"spec says higher_is_better={spec.higher_is_better}",
        )
    for name, v in values.items():
        if meta[name].unit == "fraction" and not 0 <= v <= 1 + 1e-9:
            _fail(spec, "metrics", f"{name}={v} outside [0, 1] (its meta's unit is 'fraction')")


def check_save_load(spec: TaskSpec, root: str | None, tmp: Path, registry: TaskRegistry | None = None) -> None:
    model = _model(spec, registry).eval()
    model.save_pretrained(tmp / "ckpt")
    again = load(tmp / "ckpt", registry=registry).eval()
    x = torch.rand(2, 3, 40, 40)
    if not torch.equal(model(x)[spec.name], again(x)[spec.name]):
        _fail(spec, "save/load", "outputs differ after a round trip")


CHECKS: dict[str, Callable] = {
    "spec": check_spec,
    "dataset": check_dataset,
    "crop": check_crop,
    "flip": check_flip,
    "forward": check_forward,
    "loss": check_loss,
    "metrics": check_metrics,
    "save_load": check_save_load,
}
_DATA_CHECKS = ("spec", "dataset", "crop", "flip")


def run_contract(
    task: str | TaskSpec,
    root: str | None = None,
    tmp: Path | None = None,
    registry: TaskRegistry | None = None,
    checks: Sequence[str] = tuple(CHECKS),
) -> None:
    """Run the contract checks on one task; raises :class:`ContractError` naming the task and the failing check
    (any exception inside a check becomes that check's ``ContractError``, the original chained)."""
    import tempfile

    spec = task if isinstance(task, TaskSpec) else (registry or default_registry()).get_task(task)
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown contract check(s) {unknown}; known: {', '.join(CHECKS)}")
    with tempfile.TemporaryDirectory() as d:
        for name in checks:
            fn = CHECKS[name]
            try:
                if name in _DATA_CHECKS:
                    fn(spec, root, Path(tmp or d))
                else:
                    fn(spec, root, Path(tmp or d), registry)
            except ContractError:
                raise
            except Exception as exc:
                reason = " ".join(str(exc).split()) or "(no message)"
                raise ContractError(f"task {spec.name!r}, {name}: {type(exc).__name__}: {reason}") from exc


def task_contract_tests(tasks: Sequence[str], roots: Mapping[str, str] | None = None):
    """A pytest test function parametrized over ``tasks`` x every contract check."""
    import pytest

    roots = dict(roots or {})

    @pytest.mark.parametrize("check", list(CHECKS))
    @pytest.mark.parametrize("task", list(tasks))
    def test_task_contract(task: str, check: str, tmp_path: Path) -> None:
        run_contract(task, roots.get(task), tmp_path, checks=[check])

    return test_task_contract
