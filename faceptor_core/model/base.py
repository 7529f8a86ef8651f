"""What every Faceptor model shares: input handling, size groups, prediction, parameters, weights I/O.

A forward pass runs the encoder once per input size for all requested tasks. Work is described by
*jobs*: a job is (input size, tasks, image rows); inference has one job per size covering every image,
multi-task training one job per task covering that task's rows of the concatenated batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import predictions as P
from ..errors import FaceptorError, PluginContractError, TaskNotFoundError, describe_callable
from ..images import to_float_images
from ..outputs import decode_output
from ..spec import TaskHead
from .config import ModelConfig
from .encoder import ViTEncoder

Images = torch.Tensor | np.ndarray | Sequence[np.ndarray] | Mapping[int, torch.Tensor]


@dataclass(frozen=True)
class Job:
    """Run the heads of ``tasks`` on rows ``rows`` (a slice of the size group's batch) of input size ``size``."""

    size: int
    tasks: tuple[TaskHead, ...]
    rows: slice


def reads_pixels(job: Job) -> bool:
    """Whether ``job`` has a head that reads the pixel decoder (a dense-type one)."""
    return any(h.head_type == "dense" for h in job.tasks)


class WeightsMismatchError(FaceptorError, RuntimeError):
    """Weights that do not fit the model; the message names tasks and keys."""


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``B x 3 x H x W`` batch to ``size x size`` (bilinear, antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _some(keys: Sequence[str], n: int = 10) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


class FaceptorBase(nn.Module):
    """Shared machinery of :class:`Faceptor` and :class:`NaiveFaceptor`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = ViTEncoder(config.encoder)
        self.register_buffer("pixel_mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        #: Tasks whose plugin decodes their outputs itself (``TaskSpec.decode``), and who supplied each one.
        self.output_decoders: dict[str, Callable] = {}
        self.output_decoder_plugins: dict[str, str | None] = {}

    # -- tasks ---------------------------------------------------------------------------------------
    @property
    def tasks(self) -> dict[str, TaskHead]:
        return {t.name: t for t in self.config.tasks}

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.config.tasks]

    def select(self, tasks: str | Sequence[str] | None) -> list[TaskHead]:
        known = self.tasks
        if tasks is None:
            return list(known.values())
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        out = []
        for name in names:
            if name not in known:
                raise TaskNotFoundError(name, known, f"in this model: {', '.join(known)}")
            out.append(known[name])
        return out

    @staticmethod
    def size_groups(heads: Sequence[TaskHead]) -> dict[int, list[TaskHead]]:
        groups: dict[int, list[TaskHead]] = {}
        for h in heads:
            groups.setdefault(h.input_size, []).append(h)
        return groups

    # -- forward -------------------------------------------------------------------------------------
    def normalise(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """``[0, 1]`` images -> the encoder's input (per-size mean / std where the config sets one)."""
        if size is not None and size in self.config.size_normalization:
            mean, std = self.config.size_normalization[size]
            return (images - images.new_tensor(mean).view(1, 3, 1, 1)) / images.new_tensor(std).view(1, 3, 1, 1)
        return (images - self.pixel_mean) / self.pixel_std

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the model (``model.double()``, ``.half()``, ``.to(torch.bfloat16)`` change it,
        for the weights and the normalisation buffers alike); inputs are normalised, then cast to it."""
        return self.pixel_mean.dtype

    def encode(
        self, batches: Mapping[int, torch.Tensor], rows: Mapping[int, Sequence[slice]] | None = None
    ) -> dict[int, list[torch.Tensor]]:
        """One encoder pass per input size: ``{size: [B x C x S x S] * depth}`` (an
        :class:`~faceptor_core.model.encoder.EncoderFeatures`, with the stem's map when the decoder uses it).
        ``rows``: per size, the slices of its batch that the pixel decoder will read (a faster backward)."""
        if not self.config.decoder.stem_skip:
            return {size: self.encoder(self.normalise(x, size).to(self.dtype)) for size, x in batches.items()}
        rows = rows or {}
        return {
            size: self.encoder(self.normalise(x, size).to(self.dtype), stem_skip=True, rows=rows.get(size, ()))
            for size, x in batches.items()
        }

    def prepare(self, images: Images, sizes: Sequence[int]) -> dict[int, torch.Tensor]:
        """Images (any size, resized per group) or ``{size: batch}`` -> ``{size: float batch}``."""
        if isinstance(images, Mapping):
            missing = sorted(set(sizes) - set(images))
            if missing:
                raise ValueError(f"no batch given for input size(s) {missing}; got sizes {sorted(images)}")
            out = {}
            for s in sizes:
                x = to_float_images(images[s])
                if x.shape[-2:] != (s, s):
                    raise ValueError(f"batch for input size {s} has shape {tuple(x.shape)}")
                out[s] = x
            return out
        x = to_float_images(images).to(self.pixel_mean.device)
        return {s: resize_images(x, s) for s in sizes}

    def forward(self, images: Images, tasks: str | Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Raw outputs of ``tasks`` (default: all) for every image of the batch."""
        groups = self.size_groups(self.select(tasks))
        batches = self.prepare(images, list(groups))
        feats = self.encode(batches)
        jobs = [Job(size, tuple(heads), slice(None)) for size, heads in groups.items()]
        return self.run_jobs(feats, jobs)

    def forward_multitask(
        self, batches: Mapping[int, torch.Tensor], rows: Mapping[str, slice]
    ) -> dict[str, torch.Tensor]:
        """Training pass: ``batches`` concatenates each size group's task batches; task ``t``'s output
        covers only ``rows[t]`` of its group. One encoder pass per size; one decoder pass per task
        query length (no padded rows)."""
        return self.forward_multitask_features(batches, rows)[0]

    def forward_multitask_features(
        self, batches: Mapping[int, torch.Tensor], rows: Mapping[str, slice]
    ) -> tuple[dict[str, torch.Tensor], dict[int, torch.Tensor]]:
        """:meth:`forward_multitask`, and each input size's last encoder layer (``B x C x S x S``, every row of
        the size group) for heads that read the encoder directly (the trainer's pooled heads)."""
        heads = self.select(list(rows))
        sizes = sorted({h.input_size for h in heads})
        jobs = [Job(h.input_size, (h,), rows[h.name]) for h in heads]
        dense: dict[int, list[slice]] = {}
        for job in jobs:
            if reads_pixels(job):
                dense.setdefault(job.size, []).append(job.rows)
        feats = self.encode(self.prepare(batches, sizes), dense)
        return self.run_jobs(feats, jobs), {size: f[-1] for size, f in feats.items()}

    def run_jobs(self, feats: dict[int, list[torch.Tensor]], jobs: Sequence[Job]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # -- prediction ----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: Images, tasks: str | Sequence[str] | None = None) -> dict[str, P.Prediction]:
        """Decoded predictions in the geometry of the given images (eval mode, no gradients).

        Each image is taken as one face crop, resized whole to each task's input (photos with several faces:
        :meth:`analyze`). A list of images of different sizes is accepted: each image's predictions are in its
        own pixels (a parsing prediction's ``labels`` is then a list of ``H_i x W_i`` maps).
        """
        if isinstance(images, Mapping):
            raise TypeError("predict takes images, not pre-sized batches; use forward() for those")
        was_training = self.training
        self.eval()
        try:
            if isinstance(images, (list, tuple)) and len({np.asarray(a).shape for a in images}) > 1:
                return self._predict_sizes(images, tasks)
            x = to_float_images(images).to(self.pixel_mean.device)
            raw = self(x, tasks)
        finally:
            self.train(was_training)
        h, w = x.shape[-2:]
        return {name: self.decode(name, out, (h, w)) for name, out in raw.items()}

    def _predict_sizes(self, images: Sequence[np.ndarray], tasks) -> dict[str, P.Prediction]:
        """``predict`` for images of different sizes: one pass per input size, decoded per image size."""
        groups = self.size_groups(self.select(tasks))
        xs = [to_float_images(a).to(self.pixel_mean.device) for a in images]
        batches = {s: torch.cat([resize_images(x, s) for x in xs]) for s in groups}
        raw = self(batches, tasks)
        hws = [tuple(x.shape[-2:]) for x in xs]
        return {name: self._decode_by_size(name, out, hws) for name, out in raw.items()}

    def _decode_by_size(self, task: str, raw: torch.Tensor, hws: Sequence[tuple[int, int]]) -> P.Prediction:
        """Output decoding of rows of images of sizes ``hws``: rows of one size together, then put back in order (tensor
        fields whose per-image shapes differ become lists)."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, hw in enumerate(hws):
            by_size.setdefault(hw, []).append(i)
        parts = [(idx, self.decode(task, raw[idx], hw)) for hw, idx in by_size.items()]
        if len(parts) == 1:
            return parts[0][1]
        first = parts[0][1]
        merged = {}
        for f in dataclasses.fields(first):
            values = [getattr(pred, f.name) for _, pred in parts]
            if not all(
                isinstance(v, torch.Tensor) and v.ndim > 0 and len(v) == len(idx)
                for v, (idx, _) in zip(values, parts, strict=True)
            ):
                merged[f.name] = values[0]
                continue
            rows: list = [None] * len(hws)
            for v, (idx, _) in zip(values, parts, strict=True):
                for k, i in enumerate(idx):
                    rows[i] = v[k]
            same = len({tuple(r.shape) for r in rows}) == 1
            merged[f.name] = torch.stack(rows) if same else rows
        return dataclasses.replace(first, **merged)

    def analyze(self, photos, tasks: str | Sequence[str] | None = None, detector="yunet", faces=None, **kw):
        """Every face of every photo with each task's result in photo coordinates: see
        :func:`faceptor_core.analyze` (the same function, with this model)."""
        from ..photo.analyze import analyze

        return analyze(self, photos, tasks, detector, faces, **kw)

    def decode(self, task: str, raw: torch.Tensor, image_hw: tuple[int, int]) -> P.Prediction:
        """Output decoding: one task's raw output for images of size ``image_hw`` -> its prediction (the task's
        own ``decode`` when its plugin gives one, else the core's for its output kind)."""
        fn = self.output_decoders.get(task)
        if fn is None:
            return decode_output(self.tasks[task], raw, image_hw)
        pred = fn(raw, image_hw)
        if not isinstance(pred, P.Prediction):
            plugin = self.output_decoder_plugins.get(task) or "unregistered"
            raise PluginContractError(
                f"task {task!r} (plugin {plugin!r}): decode callable {describe_callable(fn)} returned "
                f"{type(pred).__name__}; expected a faceptor_core.predictions.Prediction"
            )
        return pred

    # -- parameters and weights ----------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters of the model (training-only ones, like a margin classifier, live in the losses)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def task_of_key(self, key: str) -> str | None:
        """The task a state-dict key belongs to, or ``None`` for shared parameters."""
        raise NotImplementedError

    def load_weights(self, state: Mapping[str, torch.Tensor], strict: bool = True) -> list[str]:
        """Load a state dict; on mismatch, name the missing and unexpected tasks (and other keys).

        Returns the list of keys left out when ``strict=False``.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in state and tuple(state[k].shape) != tuple(own[k].shape)
        ]
        problems = []
        missing_tasks = sorted({t for k in missing if (t := self.task_of_key(k))})
        unexpected_tasks = sorted({t for k in unexpected if (t := self.task_of_key(k))})
        if missing_tasks:
            problems.append(f"tasks missing from the weights: {', '.join(missing_tasks)}")
        if unexpected_tasks:
            problems.append(f"tasks in the weights but not in the model: {', '.join(unexpected_tasks)}")
        other_missing = [k for k in missing if not self.task_of_key(k)]
        other_unexpected = [k for k in unexpected if not self.task_of_key(k)]
        if other_missing:
            problems.append(f"missing keys: {_some(other_missing)}")
        if other_unexpected:
            problems.append(f"unexpected keys: {_some(other_unexpected)}")
        if shapes:
            problems.append("shape mismatches: " + "; ".join(shapes[:10]))
        if shapes or (strict and problems):
            raise WeightsMismatchError("weights do not fit this model: " + " | ".join(problems))
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        return missing + unexpected

    def save_pretrained(self, directory) -> None:
        """Write ``model.safetensors`` and the ``faceptor.json`` manifest."""
        from ..checkpoint import save_pretrained

        save_pretrained(self, directory)
