"""Naive Faceptor: one shared encoder and the three standardized head types.

Attribute and dense heads are one per task family (a final layer per dataset), the identity head is
the feature interpreter on the last layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..spec import TaskHead
from .base import FaceptorBase, Job
from .config import ModelConfig
from .faceptor import resolve_layers
from .interpreters import FeatureInterpreter
from .naive_heads import AttributeHead, DenseHead


class NaiveFaceptor(FaceptorBase):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        depth = self.encoder.depth
        self.attribute_layers = resolve_layers(config.naive.attribute_layers, depth)
        self.dense_layers = resolve_layers(config.naive.dense_layers, depth)
        self.heads = nn.ModuleDict()
        self.identity_head: FeatureInterpreter | None = None
        families: dict[tuple[str, str], dict[str, int]] = {}
        for head in config.tasks:
            if head.head_type == "identity":
                self._ensure_identity(head)
            else:
                families.setdefault((head.head_type, head.family), {})[head.name] = head.num_queries
        for (kind, family), outputs in families.items():
            self.heads[family] = self._make_head(kind, outputs)

    def _ensure_identity(self, head: TaskHead) -> None:
        if self.identity_head is None:
            self.identity_head = FeatureInterpreter(self.encoder.embed_dim, head.embedding_dim)
        elif self.identity_head.bn2.num_features != head.embedding_dim:
            raise ValueError(f"task {head.name!r}: identity tasks share one head; embedding_dim differs")

    def _make_head(self, kind: str, outputs: dict[str, int]) -> nn.Module:
        c = self.config.naive
        dim = self.encoder.embed_dim
        if kind == "dense":
            return DenseHead(dim, self.dense_layers, c.dense_channels, outputs)
        return AttributeHead(dim, self.attribute_layers, c.attribute_channels, outputs)

    def add_task(self, head: TaskHead) -> list[str]:
        """Add a task: a new final layer on its family's head (a new head for a new family)."""
        if head.name in self.tasks:
            raise ValueError(f"the model already has a task {head.name!r}")
        before = set(dict(self.named_parameters()))
        if head.head_type == "identity":
            self._ensure_identity(head)
        elif head.family in self.heads:
            fam = self.heads[head.family]
            width = fam.mlp[0].in_features if head.head_type == "attribute" else fam.uper.fuse[0].out_channels
            layer = (
                nn.Linear(width, head.num_queries)
                if head.head_type == "attribute"
                else nn.Conv2d(width, head.num_queries, 1)
            )
            fam.classifiers[head.name] = layer
        else:
            self.heads[head.family] = self._make_head(head.head_type, {head.name: head.num_queries})
        self.config = self.config.model_copy(update={"tasks": (*self.config.tasks, head)})
        self.to(self.pixel_mean.device)
        return [n for n in dict(self.named_parameters()) if n not in before]

    @staticmethod
    def task_of_key(key: str) -> str | None:
        parts = key.split(".")
        if len(parts) > 3 and parts[0] == "heads" and parts[2] == "classifiers":
            return parts[3]
        return None

    def run_jobs(self, feats: dict[int, list[torch.Tensor]], jobs: Sequence[Job]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for job in jobs:
            f = [x[job.rows] for x in feats[job.size]]
            by_family: dict[str, list[str]] = {}
            for head in job.tasks:
                if head.head_type == "identity":
                    out[head.name] = self.identity_head(f[-1])
                else:
                    by_family.setdefault(head.family, []).append(head.name)
            for family, names in by_family.items():
                out.update(self.heads[family](f, names))
        return out
