"""Learning-rate schedule (linear warm-up then cosine to zero) and optimiser parameter groups."""

from __future__ import annotations

import math

import torch
from torch import nn


def lr_at(step: int, base_lr: float, steps: int, warmup_steps: int, warmup_start_lr: float) -> float:
    """Learning rate at ``step`` (0-based): ``warmup_start_lr -> base_lr`` linearly, then cosine to 0."""
    if warmup_steps and step < warmup_steps:
        return warmup_start_lr + (base_lr - warmup_start_lr) * step / warmup_steps
    span = max(1, steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def is_encoder_param(name: str) -> bool:
    return name.startswith("encoder.")


def param_groups(
    model: nn.Module,
    losses: nn.Module,
    lr: float,
    weight_decay: float,
    head_multiplier: float,
    extra_heads: nn.Module | None = None,
) -> list[dict]:
    """Encoder at ``lr``; decoder, interpreters, queries, loss parameters and ``extra_heads`` (the trainer's pooled
    heads) at ``lr * head_multiplier``. Biases, norms, embeddings, queries and output priors get no weight decay."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    named = [(n, p) for n, p in model.named_parameters()] + [(f"loss.{n}", p) for n, p in losses.named_parameters()]
    if extra_heads is not None:
        named += [(f"extra.{n}", p) for n, p in extra_heads.named_parameters()]
    for name, p in named:
        if not p.requires_grad:
            continue
        head = not is_encoder_param(name)
        no_decay = (
            p.ndim <= 1
            or name.endswith(("cls_token", "pos_embed"))
            or ".queries." in f".{name}"
            or name.startswith(("output_prior.", "output_gain."))
        )
        groups.setdefault((head, no_decay), []).append(p)
    out = []
    for (head, no_decay), params in sorted(groups.items()):
        mult = head_multiplier if head else 1.0
        out.append(
            {
                "params": params,
                "lr": lr * mult,
                "lr_multiplier": mult,
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
        )
    return out
