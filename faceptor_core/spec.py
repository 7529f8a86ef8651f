"""TaskSpec: everything a task plugin supplies to the core.

A task is declared once, as a :class:`TaskSpec`, and registered through the ``register_tasks`` hook.
The core only reads the structural fields (head type, number of queries, output kind, input size) to
build a model; the callables (dataset, transforms, loss, metrics, decode, baseline) are used by training,
evaluation and prediction. Their exact signatures are the protocols below (:class:`DatasetFactory`,
:class:`TransformsFactory`, :class:`LossFactory`, :class:`MetricsFactory` making a :class:`Metric`,
:class:`DecodeFn`, :class:`BaselineFactory` making a :class:`Baseline`); docs/plugins.md says the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from torch import nn
from torch.utils.data import Dataset

from .crop import CropSpec
from .flip import FlipRule, LabelFlip, resolve_flip
from .predictions import Prediction

HeadType = Literal["dense", "attribute", "identity"]

#: Specs and manifests name the head type ``head_type``; ``head`` (the name before 0.2) is still accepted.
_HEAD_TYPE_FIELD = {
    "validation_alias": AliasChoices("head_type", "head"),
    "description": "Which standardized head type produces the output: dense, attribute or identity.",
}


class _HeadTypeAlias:
    """``.head`` reads as ``.head_type`` (the field's name before 0.2), with a DeprecationWarning."""

    @property
    def head(self) -> str:
        import warnings

        warnings.warn("TaskSpec.head / TaskHead.head is now head_type", DeprecationWarning, stacklevel=2)
        return self.head_type  # type: ignore[attr-defined]


OutputKind = Literal[
    "landmarks",  # dense: heatmap per point, soft-argmax to coordinates
    "segmentation",  # dense: one mask logit map per class
    "age_distribution",  # attribute: one logit per age bin, expectation = age
    "classification",  # attribute: one logit per class, softmax
    "multilabel",  # attribute: one logit per label, sigmoid
    "regression",  # attribute: one raw value per query
    "embedding",  # identity: feature vector, L2-normalised when decoded
]

#: Bounds shared by specs and checkpoint manifests (a manifest asking for more is refused before allocating).
MAX_QUERIES = 4096
MAX_INPUT_SIZE = 2048
MAX_EMBEDDING_DIM = 8192
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"

#: Which head type each output kind is produced by.
HEAD_OF_OUTPUT: dict[str, str] = {
    "landmarks": "dense",
    "segmentation": "dense",
    "age_distribution": "attribute",
    "classification": "attribute",
    "multilabel": "attribute",
    "regression": "attribute",
    "embedding": "identity",
}


@runtime_checkable
class Baseline(Protocol):
    """A task's trivial answer: statistics of the training split, then the same answer for every image.

    Evaluation scores it with the task's own metric on the same evaluation split as the model, so each metric
    can be shown beside the value that needs no model at all (the mean shape, the mean age, the majority
    class, chance, ...).

    - ``needs_training``: whether :meth:`fit` must see the training split (chance-level answers need none).
    - ``fit(batches)``: collated batches of the training split as the *evaluation* transform presents them
      (``{"image", "target", "meta"}``; the same crop geometry as the evaluated items).
    - ``predict(batch)``: for one evaluation batch, what the metric's ``update`` takes as ``prediction``
      (decoded predictions, or raw outputs when the metric takes raw outputs); for verification pair batches,
      the embedding given to both sides.
    - ``describe()``: one line naming the answer (e.g. ``"majority class 'happiness' (38.6% of 12,271)"``).
    """

    needs_training: bool

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None: ...

    def predict(self, batch: Mapping[str, Any]) -> Any: ...

    def describe(self) -> str: ...


@runtime_checkable
class PriorBaseline(Baseline, Protocol):
    """A :class:`Baseline` that can also give its answer as the task head's raw output, so that a model with
    ``DecoderConfig.output_prior`` starts training at the trivial answer (the mean shape's heatmaps, the majority
    map's log class frequencies, the class log-frequencies) instead of noise.

    - ``raw_output(shape)``: a fitted baseline's answer as one image's raw output of ``shape`` (``(Q,)`` for
      attribute heads, ``(Q, h, w)`` for dense heads); decoding it gives (about) what :meth:`predict` gives.
    """

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor: ...


class MetricMeta(BaseModel):
    """What one value a metric computes means: which direction is better, its unit, a short description.

    ``better`` is ``"higher"`` or ``"lower"`` for a score, ``None`` for a value that is no score (a threshold, a
    spread). ``unit`` is free text (``"years"``, ``"degrees"``, ``"px"``); ``"fraction"`` means a value in
    ``[0, 1]`` (x100 for a percentage), which the contract kit checks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    better: Literal["higher", "lower"] | None
    unit: str = ""
    description: str = ""

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.better is None else self.better == "higher"


@runtime_checkable
class Metric(Protocol):
    """A task's evaluation metric; accumulates over batches so that any batching gives the same result.

    - ``update(prediction, target_batch, batch_meta=None)``: add one batch. ``prediction`` is the decoded
      prediction's ``tensor()`` (``points``, ``labels``, ``age``, ``probabilities``, ``values``, ``embedding``),
      or the raw head output when ``takes_raw_output``; ``target_batch`` the collated targets; ``batch_meta``
      the collated ``meta`` of the items (None when they have none). Evaluation passes all three positionally.
    - ``compute() -> dict[str, float]``: the values over everything added since ``reset()``.
    - ``reset()``: forget every batch.
    - ``meta``: a :class:`MetricMeta` for every key ``compute()`` returns (direction, unit, description).
    - ``takes_raw_output``: feed ``update`` the raw head output (e.g. logits, for the reference's own tie rule
      or geometry) instead of the decoded prediction; ``decode`` is then not used by evaluation.
    - ``pairs``: a verification metric scored on pairs (:class:`PairMetric`); evaluation then feeds it
      ``update_pairs`` with both sides' embeddings.
    """

    takes_raw_output: bool
    pairs: bool

    @property
    def meta(self) -> Mapping[str, MetricMeta]: ...

    def update(self, prediction: Any, target_batch: Any, batch_meta: Mapping[str, Any] | None = None) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def reset(self) -> None: ...


@runtime_checkable
class PairMetric(Metric, Protocol):
    """A metric scored on pairs of faces (``pairs = True``): verification.

    Its evaluation split yields pair items ``{"image_a", "image_b", "issame", ...}``; evaluation embeds both
    sides (flip-augmented, L2-normalised) and calls ``update_pairs(emb_a, emb_b, issame)`` with ``B x D``
    embeddings and ``B`` booleans (the trivial baseline's embedding is given to both sides).
    """

    def update_pairs(self, emb_a: torch.Tensor, emb_b: torch.Tensor, issame: torch.Tensor) -> None: ...


# -- the callables' contracts -----------------------------------------------------------------------------
@runtime_checkable
class Transform(Protocol):
    """``transform(raw_item) -> item``: a raw dataset item ``{"image": uint8 H x W x 3, "target": ...}`` (plus
    ``"box"`` / ``"align_points"`` when known) -> a model-ready item ``{"image": float32 3 x S x S in [0, 1],
    "target": tensor, "meta": {...}}`` that ``default_collate`` can stack (``meta["affine"]``: original pixels ->
    crop pixels)."""

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class DatasetFactory(Protocol):
    """``dataset(root, split, transform=None) -> Dataset``: raw items without a transform, model-ready items with
    one. A dataset that can leave unusable records out (and report them) also takes ``skip_invalid=True``."""

    def __call__(self, root: str | None, split: str, transform: Transform | None = None) -> Dataset: ...


@runtime_checkable
class TransformsFactory(Protocol):
    """``transforms(split, input_size) -> Transform`` for ``split`` ("train" augments) at ``input_size`` px."""

    def __call__(self, split: str, input_size: int) -> Transform: ...


@runtime_checkable
class LossFactory(Protocol):
    """``loss(spec) -> nn.Module`` called as ``loss_module(raw_output, target_batch) -> scalar tensor``."""

    def __call__(self, spec: TaskSpec) -> nn.Module: ...


@runtime_checkable
class MetricsFactory(Protocol):
    """``metrics(spec) -> Metric``: a fresh :class:`Metric` (one per evaluated split)."""

    def __call__(self, spec: TaskSpec) -> Metric: ...


@runtime_checkable
class DecodeFn(Protocol):
    """``decode(raw_output, image_hw) -> Prediction``: output decoding of the task's raw head output for images
    of ``image_hw = (height, width)`` pixels, in place of the core's decoding for the output kind
    (:data:`faceptor_core.outputs.OUTPUTS`)."""

    def __call__(self, raw_output: torch.Tensor, image_hw: tuple[int, int]) -> Prediction: ...


@runtime_checkable
class BaselineFactory(Protocol):
    """``baseline(spec) -> Baseline``: the task's trivial answer (see :class:`Baseline`)."""

    def __call__(self, spec: TaskSpec) -> Baseline: ...


class TaskSpec(_HeadTypeAlias, BaseModel):
    """Declaration of one task (one dataset with its label space).

    Structural fields decide the model's shape; callables are plugged into training and evaluation (their
    exact signatures are the protocols of this module):

    - ``dataset(root, split, transform=None) -> torch.utils.data.Dataset`` (:class:`DatasetFactory`) of raw
      items ``{"image": uint8 HxWx3, "target": ...}``, or model-ready items when ``transform`` is given.
    - ``transforms(split, input_size) -> Transform`` (:class:`TransformsFactory`), a raw item -> a model-ready
      item (:class:`Transform`).
    - ``loss(spec) -> torch.nn.Module`` (:class:`LossFactory`) called as
      ``loss_module(raw_output, target_batch) -> scalar``.
    - ``metrics(spec) -> Metric`` (:class:`MetricsFactory`): ``update(prediction, target_batch, batch_meta)``,
      ``compute() -> dict[str, float]``, ``reset()``, ``meta`` (direction, unit, description per value),
      ``takes_raw_output`` and ``pairs`` (see :class:`Metric` and :class:`PairMetric`).
    - ``decode(raw_output, image_hw) -> Prediction`` (:class:`DecodeFn`, optional): output decoding in place of
      the core's for the output kind.
    - ``baseline(spec) -> Baseline`` (:class:`BaselineFactory`, optional): the task's trivial answer, scored by
      its own metric beside the model (see :class:`Baseline`).

    ``primary_metric`` names the value that selects the best checkpoint; its direction is the metric's
    ``meta`` (``higher_is_better`` must agree with it: the contract kit checks; it is the fallback for a metric
    without ``meta``).

    ``crop`` declares how a face is cut from a photo for this task (:class:`~faceptor_core.crop.CropSpec`):
    the training transforms crop with it and :func:`faceptor_core.analyze` crops faces in photos with it.

    ``flip`` declares how the labels change when the image is mirrored (:class:`~faceptor_core.flip.FlipRule`:
    point/class reorder, class swaps, negated values); the transforms apply it and the contract kit checks that
    they do. ``None``: the task's transforms do not mirror images. ``flip_permutation`` is the older spelling of
    ``FlipRule(permutation=...)``; either fills the other.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    family: str = Field(
        pattern=NAME_PATTERN,
        description="Task type used for loss weighting and Naive heads (e.g. landmarks, parsing, age).",
    )
    head_type: HeadType = Field(**_HEAD_TYPE_FIELD)
    output: OutputKind
    num_queries: int = Field(ge=0, le=MAX_QUERIES, description="Task queries; 0 for identity tasks.")
    input_size: int = Field(ge=16, le=MAX_INPUT_SIZE, description="Square input size in pixels.")
    embedding_dim: int = Field(default=512, ge=1, le=MAX_EMBEDDING_DIM, description="Embedding (identity tasks).")
    num_identities: int = Field(default=0, ge=0, description="Training classes (identity tasks).")
    label_names: tuple[str, ...] = ()
    flip_permutation: tuple[int, ...] | None = None
    flip: FlipRule | None = Field(default=None, description="How the labels change under a horizontal flip.")
    crop: CropSpec = Field(default_factory=CropSpec, description="How a face is cropped for this task.")
    loss_weight: float = Field(default=1.0, gt=0)
    primary_metric: str = ""
    higher_is_better: bool = True
    description: str = ""
    license: str = ""
    citation: str = ""
    dataset: DatasetFactory | None = None
    transforms: TransformsFactory | None = None
    loss: LossFactory | None = None
    metrics: MetricsFactory | None = None
    decode: DecodeFn | None = None
    baseline: BaselineFactory | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    _plugin: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _flip_fields(cls, data: Any) -> Any:
        return fill_flip_fields(data)

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        check_structure(self)
        return self

    @property
    def label_flip(self) -> LabelFlip | None:
        """The flip rule resolved for this task (indices, permutation, signs); None when it declares none."""
        return resolve_flip(self.flip, self.output, self.label_names, self.num_queries)

    @property
    def plugin(self) -> str | None:
        """The plugin that registered this spec (set by the registry; ``None`` for a spec built by hand)."""
        return self._plugin

    def head_config(self) -> TaskHead:
        """The structural part of the spec, enough to rebuild a model without the plugin."""
        return TaskHead(
            name=self.name,
            family=self.family,
            head_type=self.head_type,
            output=self.output,
            num_queries=self.num_queries,
            input_size=self.input_size,
            embedding_dim=self.embedding_dim,
            label_names=self.label_names,
            flip_permutation=self.flip_permutation,
            flip=self.flip,
            crop=self.crop,
        )


class TaskHead(_HeadTypeAlias, BaseModel):
    """Structural description of a task inside a model (what a checkpoint manifest stores); held to the same
    bounds and consistency rules as a :class:`TaskSpec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    family: str = Field(pattern=NAME_PATTERN)
    head_type: HeadType = Field(**_HEAD_TYPE_FIELD)
    output: OutputKind
    num_queries: int = Field(ge=0, le=MAX_QUERIES)
    input_size: int = Field(ge=16, le=MAX_INPUT_SIZE)
    embedding_dim: int = Field(default=512, ge=1, le=MAX_EMBEDDING_DIM)
    label_names: tuple[str, ...] = ()
    flip_permutation: tuple[int, ...] | None = None
    #: How the labels change under a horizontal flip (None in manifests written before flip rules: then it is
    #: ``FlipRule(permutation=flip_permutation)`` when that is set).
    flip: FlipRule | None = None
    #: The task's face crop (None in manifests written before crops were declared: then the registered
    #: task's crop is used, else the default).
    crop: CropSpec | None = None
    #: A task added onto a trained model: its raw output is ``gain * decoder output + bias``, per query, with the
    #: gain started at zero and the bias at the trivial answer, so that the new task starts at its trivial answer
    #: instead of wherever the trained interpreters send its untrained queries (Faceptor models; not for identity).
    output_affine: bool = False

    @model_validator(mode="before")
    @classmethod
    def _flip_fields(cls, data: Any) -> Any:
        return fill_flip_fields(data)

    @model_validator(mode="after")
    def _consistent(self) -> TaskHead:
        check_structure(self)
        if self.output_affine and self.head_type == "identity":
            raise ValueError("output_affine: identity tasks bypass the decoder and have no raw output to adjust")
        return self


def fill_flip_fields(data: Any) -> Any:
    """``flip_permutation`` alone becomes ``flip=FlipRule(permutation=...)``; a rule's permutation fills
    ``flip_permutation`` (so older readers and manifests keep working)."""
    if not isinstance(data, Mapping):
        return data
    rule, perm = data.get("flip"), data.get("flip_permutation")
    if rule is None and perm is not None:
        return {**data, "flip": FlipRule(permutation=tuple(perm))}
    if rule is not None and perm is None:
        rule = FlipRule.model_validate(rule)
        data = {**data, "flip": rule}
        if rule.permutation is not None:
            data["flip_permutation"] = rule.permutation
        elif rule.swap:
            try:
                resolved = resolve_flip(
                    rule,
                    str(data.get("output")),
                    tuple(data.get("label_names") or ()),
                    int(data.get("num_queries") or 0),
                )
            except (ValueError, TypeError):
                resolved = None  # reported by check_structure
            if resolved is not None and resolved.permutation is not None:
                data["flip_permutation"] = resolved.permutation
    return data


def check_structure(t: TaskSpec | TaskHead) -> None:
    """Head type, output kind, queries, labels and flip rule agree (raises ``ValueError``)."""
    expected = HEAD_OF_OUTPUT[t.output]
    if t.head_type != expected:
        raise ValueError(f"output {t.output!r} needs head {expected!r}, got head {t.head_type!r}")
    if t.head_type == "identity":
        if t.num_queries != 0:
            raise ValueError("identity tasks bypass the decoder: num_queries must be 0")
    elif t.num_queries < 1:
        raise ValueError(f"{t.head_type} tasks need num_queries >= 1")
    if t.label_names and t.head_type != "identity":
        n_labels = len(t.label_names)
        per_query = ("classification", "multilabel", "segmentation", "regression", "landmarks")
        if t.output in per_query and n_labels != t.num_queries:
            raise ValueError(f"label_names has {n_labels} entries but num_queries is {t.num_queries}")
    if t.flip_permutation is not None:
        perm = t.flip_permutation
        if sorted(perm) != list(range(t.num_queries)):
            raise ValueError("flip_permutation must be a permutation of range(num_queries)")
        if any(perm[perm[i]] != i for i in range(len(perm))):
            raise ValueError("flip_permutation must be an involution (flipping twice is identity)")
    if t.flip is not None:
        resolved = resolve_flip(t.flip, t.output, t.label_names, t.num_queries)
        if t.flip_permutation is not None and tuple(t.flip_permutation) != (
            resolved.permutation if resolved and resolved.permutation else tuple(range(t.num_queries))
        ):
            raise ValueError("flip_permutation contradicts the flip rule; give only the rule")


#: The structural fields a checkpoint's task must share with the registered task of the same name.
STRUCTURAL_FIELDS = ("family", "head_type", "output", "num_queries", "embedding_dim", "label_names")


def head_contradictions(head: TaskHead, spec: TaskSpec) -> list[str]:
    """How a checkpoint's task differs from the registered task of that name (empty when they agree).

    The input size may differ (a model can be trained at another size); the label names only count when
    both declare them."""
    out = []
    for field in STRUCTURAL_FIELDS:
        a, b = getattr(head, field), getattr(spec, field)
        if field == "label_names" and (not a or not b):
            continue
        if field == "embedding_dim" and head.head_type != "identity":
            continue
        if a != b:
            out.append(f"{field} {a!r} (registered: {b!r})")
    return out
