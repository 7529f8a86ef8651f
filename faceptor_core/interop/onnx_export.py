"""ONNX export: one graph for the chosen tasks, float images in [0, 1], dynamic batch, outputs named by task.

Inputs are one batch per input size (``images_<size>``), or a single ``images`` input when ``image_size``
puts every task at one size. Each size group runs the encoder once, as in :meth:`FaceptorBase.forward`.
The graph is traced with PyTorch's TorchScript exporter (``dynamo=False``: no onnxscript needed) at fixed
image sizes, so everything that depends only on the size is a constant of the graph:

- the position table is resized once per size (bicubic, no antialias, exactly as the encoder does at run time);
- adaptive average pooling (Naive Faceptor's pyramid pooling, whose bins need not divide the grid and
  which the exporter refuses) becomes two constant averaging matrices.

``onnx`` and ``onnxruntime`` come with the ``onnx`` extra (``pip install faceptor[onnx]``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from ..model import grid_readout, naive_heads
from ..model.base import FaceptorBase, Job
from ..model.encoder import EncoderFeatures, ViTEncoder, resize_pos_grid
from ..spec import TaskHead


@dataclass(frozen=True)
class ExportInfo:
    """What :func:`export_onnx` wrote: input name -> image size, and the output (task) names."""

    path: Path
    inputs: dict[str, int]
    outputs: tuple[str, ...]
    opset: int


class FixedSizeEncoder(nn.Module):
    """:class:`ViTEncoder`'s forward at known input sizes, with the position table precomputed per size."""

    def __init__(self, encoder: ViTEncoder, sizes: Sequence[int], stem_skip: bool = False):
        super().__init__()
        self.encoder, self.stem_skip = encoder, stem_skip
        self.grids: dict[int, int] = {}
        for size in sizes:
            if size % encoder.patch_size:
                raise ValueError(f"image size {size} is not a multiple of the patch size {encoder.patch_size}")
            grid = size // encoder.patch_size
            self.grids[size] = grid
            with torch.no_grad():
                pos = encoder.pos_embed.detach()
                table = torch.cat((pos[:, :1], resize_pos_grid(pos[:, 1:], grid)), dim=1)
            self.register_buffer(f"pos_{size}", table, persistent=False)

    def forward(self, x: torch.Tensor, size: int) -> EncoderFeatures:
        enc, grid = self.encoder, self.grids[size]
        tokens, outs = enc.embed_patches(x, self.stem_skip)  # with the stem's maps for DecoderConfig.stem_skip
        tokens = tokens.flatten(2).transpose(1, 2)
        cls = enc.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = enc.norm_pre(torch.cat((cls, tokens), dim=1) + getattr(self, f"pos_{size}"))
        for block in enc.blocks:
            tokens = block(tokens)
            outs.append(tokens[:, 1:].transpose(1, 2).reshape(-1, enc.embed_dim, grid, grid))
        return outs


class ExportWrapper(nn.Module):
    """``forward(*images)`` (one float [0, 1] batch per size, ascending) -> one raw output per task."""

    def __init__(self, model: FaceptorBase, tasks: Sequence[str] | None = None, image_size: int | None = None):
        super().__init__()
        self.model = model
        heads = model.select(list(tasks) if tasks is not None else None)
        groups: dict[int, list[TaskHead]] = {}
        for head in heads:
            groups.setdefault(image_size or head.input_size, []).append(head)
        self.sizes = sorted(groups)
        self.groups = {s: tuple(groups[s]) for s in self.sizes}
        self.task_names = tuple(h.name for s in self.sizes for h in self.groups[s])
        self.single_input = image_size is not None
        self.encoder = FixedSizeEncoder(model.encoder, self.sizes, model.config.decoder.stem_skip)

    @property
    def input_names(self) -> list[str]:
        return ["images"] if self.single_input else [f"images_{s}" for s in self.sizes]

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: dict[str, torch.Tensor] = {}
        for size, x in zip(self.sizes, images, strict=True):
            feats = {size: self.encoder(self.model.normalise(x, size), size)}
            out.update(self.model.run_jobs(feats, [Job(size, self.groups[size], slice(None))]))
        return tuple(out[name] for name in self.task_names)


def pooling_matrix(n_in: int, n_out: int, dtype=torch.float32) -> torch.Tensor:
    """``n_out x n_in`` matrix of adaptive average pooling's bins (``floor(i n / m)`` to ``ceil((i+1) n / m)``)."""
    mat = torch.zeros(n_out, n_in, dtype=dtype)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-(i + 1) * n_in // n_out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


def adaptive_avg_pool2d_static(x: torch.Tensor, output_size) -> torch.Tensor:
    """Adaptive average pooling as two constant matrix products (the input's spatial size is baked in)."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = (int(v) for v in x.shape[-2:])  # fixed by the export size; only the batch is dynamic
    ph, pw = pooling_matrix(h, oh, x.dtype), pooling_matrix(w, ow, x.dtype)
    return torch.einsum("bchw,ih,jw->bcij", x, ph, pw)


class _ExportFunctional:
    """``torch.nn.functional`` with ONNX-friendly replacements, seen only by the modules being exported."""

    adaptive_avg_pool2d = staticmethod(adaptive_avg_pool2d_static)

    def __getattr__(self, name: str):
        return getattr(F, name)


@contextmanager
def _export_patches():
    functional = _ExportFunctional()
    with (
        mock.patch.object(naive_heads, "F", functional),
        mock.patch.object(grid_readout, "F", functional),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*(dynamo|TorchScript|legacy).*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def example_inputs(wrapper: ExportWrapper, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random float images in [0, 1], one batch per input of ``wrapper``."""
    g = torch.Generator().manual_seed(seed)
    device = wrapper.model.pixel_mean.device
    return tuple(torch.rand(batch, 3, s, s, generator=g).to(device) for s in wrapper.sizes)


def export_onnx(
    model: FaceptorBase,
    path: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    image_size: int | None = None,
    opset: int = 17,
) -> ExportInfo:
    """Write one ONNX graph for ``tasks`` (default: all) with a dynamic batch axis.

    Inputs: ``images_<size>`` per input-size group (``images`` with ``image_size``), float ``B x 3 x S x S``
    in [0, 1]. Outputs: one per task, named by the task, the model's raw outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model, tasks, image_size)
    inputs = wrapper.input_names
    dynamic = {name: {0: f"batch_{size}"} for name, size in zip(inputs, wrapper.sizes, strict=True)}
    for size in wrapper.sizes:
        for head in wrapper.groups[size]:
            dynamic[head.name] = {0: f"batch_{size}"}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _export_patches():
            torch.onnx.export(
                wrapper,
                example_inputs(wrapper),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=inputs,
                output_names=list(wrapper.task_names),
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return ExportInfo(path, dict(zip(inputs, wrapper.sizes, strict=True)), wrapper.task_names, opset)


def reference_outputs(
    model: FaceptorBase,
    images: Sequence[torch.Tensor],
    tasks: Sequence[str] | None = None,
    image_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """The model's own raw outputs (its real encoder and decoder path) for the export's inputs."""
    wrapper = ExportWrapper(model, tasks, image_size)
    batches = dict(zip(wrapper.sizes, images, strict=True))
    jobs = [Job(s, wrapper.groups[s], slice(None)) for s in wrapper.sizes]
    with torch.no_grad():
        return model.run_jobs(model.encode(batches), jobs)


class OnnxCheck(NamedTuple):
    """One output's agreement: max ``|onnxruntime - torch|`` and the largest ``|torch|`` value."""

    max_abs: float
    max_ref: float

    @property
    def scaled(self) -> float:
        """``max_abs`` relative to the output's scale when it exceeds 1 (large embeddings), else absolute."""
        return self.max_abs / max(1.0, self.max_ref)


def verify_onnx(
    model: FaceptorBase,
    path: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    image_size: int | None = None,
    batch: int = 3,
    seed: int = 0,
) -> dict[str, OnnxCheck]:
    """Per task, how far onnxruntime on ``path`` is from the torch model on random images."""
    import onnxruntime as ort

    was_training = model.training
    model.eval()
    try:
        wrapper = ExportWrapper(model, tasks, image_size)
        images = example_inputs(wrapper, batch, seed)
        expected = reference_outputs(model, images, tasks, image_size)
    finally:
        model.train(was_training)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: x.cpu().numpy() for name, x in zip(wrapper.input_names, images, strict=True)}
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, feeds), strict=True))
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ValueError(f"{path}: the graph has no output for {missing}")
    out = {}
    for name in wrapper.task_names:
        ref = expected[name].cpu().float()
        out[name] = OnnxCheck(float((torch.from_numpy(got[name]) - ref).abs().max()), float(ref.abs().max()))
    return out
