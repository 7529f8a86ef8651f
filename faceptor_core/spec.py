"""TaskSpec: everything a task plugin supplies to the core.

A task is declared once, as a :class:`TaskSpec`, and registered through the ``register_tasks`` hook.
The core only reads the structural fields (head type, number of queries, output kind, input size) to
build a model; the callables (dataset, transforms, loss, metrics, decode) are used by training,
evaluation and prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .crop import CropSpec

HeadType = Literal["dense", "attribute", "identity"]
OutputKind = Literal[
    "landmarks",  # dense: heatmap per point, soft-argmax to coordinates
    "segmentation",  # dense: one mask logit map per class
    "age_distribution",  # attribute: one logit per age bin, expectation = age
    "classification",  # attribute: one logit per class, softmax
    "multilabel",  # attribute: one logit per label, sigmoid
    "regression",  # attribute: one raw value per query
    "embedding",  # identity: feature vector, L2-normalised when decoded
]

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


class TaskSpec(BaseModel):
    """Declaration of one task (one dataset with its label space).

    Structural fields decide the model's shape; callables are plugged into training and evaluation:

    - ``dataset(root, split, transform=None) -> torch.utils.data.Dataset`` of raw items
      ``{"image": uint8 HxWx3, "target": ...}`` (or transformed items when ``transform`` is given).
    - ``transforms(split, input_size) -> callable`` mapping a raw item to a model-ready item.
    - ``loss(spec) -> torch.nn.Module`` called as ``loss_module(raw_output, target_batch) -> scalar``.
    - ``metrics(spec) -> Metric`` with ``update(prediction, target_batch)``, ``compute() -> dict``, ``reset()``.
    - ``decode(raw_output, image_hw) -> prediction`` overrides the core's decoding for the output kind.

    ``crop`` declares how a face is cut from a photo for this task (:class:`~faceptor_core.crop.CropSpec`):
    the training transforms crop with it and :func:`faceptor_core.analyze` crops faces in photos with it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    family: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Task type used for loss weighting and Naive heads (e.g. landmarks, parsing, age).",
    )
    head: HeadType
    output: OutputKind
    num_queries: int = Field(ge=0, le=4096, description="Task queries; 0 for identity tasks.")
    input_size: int = Field(ge=16, le=2048, description="Square input size in pixels.")
    embedding_dim: int = Field(default=512, ge=1, description="Embedding size (identity tasks).")
    num_identities: int = Field(default=0, ge=0, description="Training classes (identity tasks).")
    label_names: tuple[str, ...] = ()
    flip_permutation: tuple[int, ...] | None = None
    crop: CropSpec = Field(default_factory=CropSpec, description="How a face is cropped for this task.")
    loss_weight: float = Field(default=1.0, gt=0)
    primary_metric: str = ""
    higher_is_better: bool = True
    description: str = ""
    license: str = ""
    citation: str = ""
    dataset: Callable[..., Any] | None = None
    transforms: Callable[..., Any] | None = None
    loss: Callable[..., Any] | None = None
    metrics: Callable[..., Any] | None = None
    decode: Callable[..., Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        expected = HEAD_OF_OUTPUT[self.output]
        if self.head != expected:
            raise ValueError(f"output {self.output!r} needs head {expected!r}, got head {self.head!r}")
        if self.head == "identity":
            if self.num_queries != 0:
                raise ValueError("identity tasks bypass the decoder: num_queries must be 0")
        elif self.num_queries < 1:
            raise ValueError(f"{self.head} tasks need num_queries >= 1")
        if self.label_names and self.head != "identity":
            n_labels = len(self.label_names)
            per_query = ("classification", "multilabel", "segmentation", "regression", "landmarks")
            if self.output in per_query and n_labels != self.num_queries:
                raise ValueError(f"label_names has {n_labels} entries but num_queries is {self.num_queries}")
        if self.flip_permutation is not None:
            perm = self.flip_permutation
            if sorted(perm) != list(range(self.num_queries)):
                raise ValueError("flip_permutation must be a permutation of range(num_queries)")
            if any(perm[perm[i]] != i for i in range(len(perm))):
                raise ValueError("flip_permutation must be an involution (flipping twice is identity)")
        return self

    def head_config(self) -> TaskHead:
        """The structural part of the spec, enough to rebuild a model without the plugin."""
        return TaskHead(
            name=self.name,
            family=self.family,
            head=self.head,
            output=self.output,
            num_queries=self.num_queries,
            input_size=self.input_size,
            embedding_dim=self.embedding_dim,
            label_names=self.label_names,
            flip_permutation=self.flip_permutation,
            crop=self.crop,
        )


class TaskHead(BaseModel):
    """Structural description of a task inside a model (what a checkpoint manifest stores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    family: str
    head: HeadType
    output: OutputKind
    num_queries: int
    input_size: int
    embedding_dim: int = 512
    label_names: tuple[str, ...] = ()
    flip_permutation: tuple[int, ...] | None = None
    #: The task's face crop (None in manifests written before crops were declared: then the registered
    #: task's crop is used, else the default).
    crop: CropSpec | None = None
