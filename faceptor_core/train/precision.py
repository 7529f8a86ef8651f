"""Compute precision of the training forward pass: bf16 autocast where the device computes bf16 natively.

Weights, the optimizer's state, the losses and evaluation stay float32; only the forward pass's matrix products and
convolutions run in bfloat16 (``torch.autocast``). On the CPU that pays where the cores have bf16 instructions
(AVX512-BF16, AMX): the demo's step takes 0.74 s against 1.19 s in float32 on 2 such cores (docs/results.md).
Elsewhere bf16 is emulated and slower, so ``auto`` keeps float32 there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

Precision = Literal["fp32", "bf16", "auto"]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products in hardware."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(precision: Precision, device: torch.device) -> Literal["fp32", "bf16"]:
    """``auto`` becomes ``bf16`` where :func:`native_bf16`, else ``fp32``; the others stay as they are."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_note(asked: Precision, used: Literal["fp32", "bf16"], device: torch.device) -> str:
    """Why a run trains more slowly than it could: ``auto`` fell back to float32 on a CPU without bf16
    instructions ("" otherwise: bf16, float32 asked for, or a GPU)."""
    if asked == "auto" and used == "fp32" and device.type == "cpu":
        return (
            "precision auto: this CPU has no bf16 instructions, so training runs in float32, more slowly than on "
            "one with them"
        )
    return ""


@contextlib.contextmanager
def forward_precision(precision: Literal["fp32", "bf16"], device: torch.device) -> Iterator[None]:
    """The context a training forward pass runs in. In bf16 on the CPU, attention takes the plain (math) kernel:
    the fused kernel's bf16 backward took 9 times the float32 one at the demo's sizes (measured, torch 2.14)."""
    if precision == "fp32":
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        if device.type == "cpu":
            stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        yield
