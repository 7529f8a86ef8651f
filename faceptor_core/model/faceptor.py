"""Faceptor: shared encoder, dual decoder (transformer decoder + pixel decoder), task queries,
Layer-Attention and the value / map / feature interpreters.

All the tasks of a job (one input size's images) go through one batched transformer decoder pass, a
block-diagonal self-attention mask keeping the tasks apart; jobs of equal query and memory lengths share the
pass, and no row is ever padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..spec import TaskHead
from .base import FaceptorBase, Job
from .config import DecoderConfig, ModelConfig
from .encoder import EncoderFeatures
from .grid_readout import GridReadout
from .interpreters import FeatureInterpreter, MapInterpreter, ValueInterpreter
from .layer_attention import LayerAttention
from .pixel_decoder import PixelDecoder, PixelFine, PixelRefine
from .queries import TaskQueries
from .transformer_decoder import TransformerDecoder


def resolve_layers(layers: Sequence[int], depth: int) -> list[int]:
    out = []
    for layer in layers:
        idx = layer + depth if layer < 0 else layer
        if not 0 <= idx < depth:
            raise ValueError(f"encoder layer {layer} out of range for an encoder of depth {depth}")
        if idx not in out:
            out.append(idx)
    return out


class Faceptor(FaceptorBase):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        dim = config.decoder.hidden_dim
        depth = self.encoder.depth
        self.last_layer = depth - 1
        layers = resolve_layers(config.memory_layers, depth)
        if self.last_layer not in layers:
            raise ValueError(f"memory_layers must include the last encoder layer ({self.last_layer})")
        layers = [self.last_layer] + [x for x in layers if x != self.last_layer]
        self.layer_attention = LayerAttention(self.encoder.embed_dim, dim, layers)
        self.decoder = TransformerDecoder(config.decoder)  # the transformer decoder (state-dict keys decoder.*)
        self.queries = nn.ModuleDict()
        self.pixel_decoder: PixelDecoder | None = None
        self.stem_skip: nn.Conv2d | None = None  # DecoderConfig.stem_skip: stem map -> pixel embeddings
        self.stem_mid_skip: nn.Conv2d | None = None  # DecoderConfig.pixel_fpn: stride-8 stem map -> pixel decoder
        self.pixel_refine: PixelRefine | None = None  # DecoderConfig.pixel_fpn
        self.pixel_fine: PixelFine | None = None  # DecoderConfig.pixel_stride 2
        self.map_interpreter: MapInterpreter | None = None
        self.value_interpreter: ValueInterpreter | None = None
        self.feature_interpreter: FeatureInterpreter | None = None
        self.output_prior = nn.ParameterDict()  # DecoderConfig.output_prior: per-task bias on the raw output
        self.output_gain = nn.ParameterDict()  # TaskHead.output_affine: per-query gain on the raw output
        self.grid_readout = nn.ModuleDict()  # DecoderConfig.grid_readout: attribute tasks' reading of the last layer
        for head in config.tasks:
            self._add_head_modules(head)

    def _add_head_modules(self, head: TaskHead) -> None:
        dim = self.config.decoder.hidden_dim
        if head.head_type == "identity":
            if self.feature_interpreter is None:
                self.feature_interpreter = FeatureInterpreter(self.encoder.embed_dim, head.embedding_dim)
            elif self.feature_interpreter.bn2.num_features != head.embedding_dim:
                raise ValueError(
                    f"task {head.name!r}: identity tasks share one feature interpreter of dimension "
                    f"{self.feature_interpreter.bn2.num_features}, got embedding_dim {head.embedding_dim}"
                )
            return
        self.queries[head.name] = TaskQueries(head.num_queries, dim)
        if head.head_type == "dense" and self.pixel_decoder is None:
            self.pixel_decoder = PixelDecoder(dim)
            if self.config.decoder.stem_skip:
                self.stem_skip = nn.Conv2d(self.encoder.stem_skip_channels("decoder stem_skip"), dim, 1)
            if self.config.decoder.pixel_fpn:  # with stem_skip (DecoderConfig checks the options' dependencies)
                self.stem_mid_skip = nn.Conv2d(self.encoder.stem_mid_channels("decoder pixel_fpn"), dim, 1)
                self.pixel_refine = PixelRefine(dim)
            if self.config.decoder.pixel_stride == 2:
                self.pixel_fine = PixelFine(dim, self.encoder.stem_fine_channels("decoder pixel_stride 2"))
            self.map_interpreter = MapInterpreter(dim)
        if head.head_type == "attribute" and self.value_interpreter is None:
            self.value_interpreter = ValueInterpreter(dim)
        if head.head_type == "attribute" and self.config.decoder.grid_readout:
            cells = self.config.decoder.grid_readout
            self.grid_readout[head.name] = GridReadout(self.encoder.embed_dim, head.num_queries, cells)
        if head.output_affine or head.head_type in self.config.decoder.output_prior:
            self.output_prior[head.name] = nn.Parameter(torch.zeros(self.raw_output_shape(head)))
        if head.output_affine:  # starts at zero: the task starts at its output prior
            shape = (head.num_queries,) if head.head_type == "attribute" else (head.num_queries, 1, 1)
            self.output_gain[head.name] = nn.Parameter(torch.zeros(shape))

    def raw_output_shape(self, head: TaskHead) -> tuple[int, ...]:
        """One image's raw output shape for a decoder task: ``(Q,)`` (attribute) or ``(Q, 4S, 4S)`` (dense; ``8S``
        with ``DecoderConfig.pixel_stride`` 2)."""
        if head.head_type == "dense":
            side = (4 if self.pixel_fine is None else 8) * (head.input_size // self.encoder.patch_size)
            return (head.num_queries, side, side)
        return (head.num_queries,)

    @torch.no_grad()
    def set_output_prior(self, task: str, raw: torch.Tensor) -> None:
        """Start ``task``'s output prior (``DecoderConfig.output_prior``) at ``raw``, one image's raw output."""
        if task not in self.output_prior:
            raise ValueError(f"task {task!r} has no output prior (decoder output_prior does not name its head type)")
        target = self.output_prior[task]
        if tuple(raw.shape) != tuple(target.shape):
            raise ValueError(f"task {task!r}: output prior of shape {tuple(raw.shape)}, expected {tuple(target.shape)}")
        if not torch.isfinite(raw).all():
            raise ValueError(f"task {task!r}: output prior has NaN or infinite values")
        target.copy_(raw.to(target))

    def add_task(self, head: TaskHead) -> list[str]:
        """Add a task (for prompt tuning); returns the names of the new parameters."""
        if head.name in self.tasks:
            raise ValueError(f"the model already has a task {head.name!r}")
        before = set(dict(self.named_parameters()))
        self._add_head_modules(head)
        self.config = self.config.model_copy(update={"tasks": (*self.config.tasks, head)})
        device = self.pixel_mean.device
        self.to(device)
        return [n for n in dict(self.named_parameters()) if n not in before]

    def add_memory_layers(self, layers: Sequence[int]) -> list[str]:
        """Stage 2: add Layer-Attention layers; returns the names of the new parameters."""
        new = resolve_layers(layers, self.encoder.depth)
        before = set(dict(self.named_parameters()))
        self.layer_attention.add_layers(new)
        self.layer_attention.to(self.pixel_mean.device)
        self.config = self.config.model_copy(update={"memory_layers": tuple(self.layer_attention.layers)})
        return [n for n in dict(self.named_parameters()) if n not in before]

    def add_grid_readout(self, cells: int) -> list[str]:
        """Give every attribute-type task a grid readout of ``cells`` a side (``DecoderConfig.grid_readout``), started
        at zero so that the outputs stay as they are; returns the names of the new parameters."""
        if cells < 1:
            raise ValueError(f"a grid readout needs at least 1 cell a side, got {cells}")
        if self.config.decoder.grid_readout:
            raise ValueError(f"the model already has a grid readout ({self.config.decoder.grid_readout} cells a side)")
        decoder = DecoderConfig.model_validate({**self.config.decoder.model_dump(), "grid_readout": cells})
        self.config = self.config.model_copy(update={"decoder": decoder})
        before = set(dict(self.named_parameters()))
        for head in self.config.tasks:
            if head.head_type == "attribute":
                self.grid_readout[head.name] = GridReadout(self.encoder.embed_dim, head.num_queries, cells)
        self.grid_readout.to(self.pixel_mean.device)
        return [n for n in dict(self.named_parameters()) if n not in before]

    @staticmethod
    def task_of_key(key: str) -> str | None:
        if key.startswith(("queries.", "output_prior.", "output_gain.", "grid_readout.")):
            return key.split(".")[1]
        return None

    # -- running the heads (one transformer decoder pass per job shape) -----------------------------------------
    def run_jobs(self, feats: dict[int, list[torch.Tensor]], jobs: Sequence[Job]) -> dict[str, torch.Tensor]:
        out, _ = self._run(feats, jobs, need_weights=False)  # attention weights: cross_attention()
        return out

    def _run(self, feats, jobs, need_weights):
        out: dict[str, torch.Tensor] = {}
        projected: dict[int, torch.Tensor] = {}
        memory: dict[int, tuple[torch.Tensor, torch.Tensor, list]] = {}
        pixels: dict[tuple, torch.Tensor] = {}
        identity_cache: dict[tuple[int, int | None, int | None], torch.Tensor] = {}
        decoder_jobs: list[tuple[Job, list[TaskHead], tuple[int, bool]]] = []
        share = self.config.decoder.memory_grad
        for job in jobs:
            f = feats[job.size]
            for head in job.tasks:
                if head.head_type == "identity":
                    key = (job.size, job.rows.start, job.rows.stop)
                    if key not in identity_cache:
                        identity_cache[key] = self.feature_interpreter(f[-1][job.rows])
                    out[head.name] = identity_cache[key]
            heads = [h for h in job.tasks if h.head_type != "identity"]
            if not heads:
                continue
            scaled = self.training and share != 1.0 and all(h.head_type == "attribute" for h in heads)
            key = (job.size, scaled)
            if key not in memory:
                if scaled:  # attribute tasks read their own copy of the encoder layers, passing back ``share``
                    copy = list(f)
                    for layer in self.layer_attention.layers:
                        copy[layer] = ScaleGrad.apply(f[layer], share)
                    memory[key] = self.layer_attention(copy)
                else:
                    if job.size not in projected:
                        projected[job.size] = self.layer_attention.project(f[-1], self.last_layer)
                    memory[key] = self.layer_attention(f, projected[job.size])
            decoder_jobs.append((job, heads, key))
        if not decoder_jobs:
            return out, None
        rows, weights = self._run_transformer_decoder(memory, decoder_jobs, need_weights)
        for (job, heads, _), q_out in zip(decoder_jobs, rows, strict=True):
            start = 0
            for head in heads:
                q = q_out[:, start : start + head.num_queries]
                start += head.num_queries
                if head.head_type == "attribute":
                    raw = self.value_interpreter(q)
                else:
                    key = (job.size, job.rows.start, job.rows.stop, job.rows.step)
                    if key not in pixels:  # the pixel decoder runs on the job's rows only, not the whole batch
                        last = projected.get(job.size)
                        pixels[key] = self.pixel_embeddings(
                            feats[job.size].rows(job.rows), None if last is None else last[job.rows]
                        )
                    raw = self.map_interpreter(q, pixels[key])
                if head.name in self.output_gain:
                    raw = raw * self.output_gain[head.name]
                if head.name in self.grid_readout:
                    last = feats[job.size][-1][job.rows]
                    if self.training and share != 1.0:  # it reads the encoder as the task's queries do
                        last = ScaleGrad.apply(last, share)
                    raw = raw + self.grid_readout[head.name](last)
                if head.name in self.output_prior:
                    raw = raw + self._prior_like(head.name, raw)
                out[head.name] = raw
        return out, (weights, memory, decoder_jobs)

    def pixel_embeddings(self, feats: EncoderFeatures, projected_last: torch.Tensor | None = None) -> torch.Tensor:
        """The pixel decoder's ``B x D x 4S x 4S`` per-pixel embeddings (``8S`` with ``pixel_stride`` 2) of one input
        size's encoder outputs (``encode(...)[size]``), the stem skips added and the refinement applied when
        configured; ``projected_last`` reuses the last layer's projection when it was already computed."""
        if self.pixel_decoder is None:
            raise ValueError("the model has no dense task, so no pixel decoder")
        if projected_last is None:
            projected_last = self.layer_attention.project(feats[-1], self.last_layer)
        mid = self.stem_mid_skip(feats.stem_mid) if self.stem_mid_skip is not None else None
        pixels = self.pixel_decoder(projected_last, mid)
        if self.stem_skip is not None:
            pixels = pixels + self.stem_skip(feats.stem)
        if self.pixel_refine is not None:
            pixels = self.pixel_refine(pixels)
        if self.pixel_fine is not None:
            pixels = self.pixel_fine(pixels, feats.stem_fine)
        return pixels

    def _prior_like(self, task: str, raw: torch.Tensor) -> torch.Tensor:
        prior = self.output_prior[task]
        if prior.dim() == 3 and prior.shape[-2:] != raw.shape[-2:]:  # a dense task at another input size
            return torch.nn.functional.interpolate(prior[None], size=raw.shape[-2:], mode="bilinear")[0]
        return prior

    def _run_transformer_decoder(self, memory, decoder_jobs, need_weights):
        """The transformer decoder over all jobs: each job's ``B_j x Q_j x D`` query outputs and, with ``need_weights``,
        each layer's cross-attention weights (of one decoder pass: ask for one job's).

        Jobs of equal query and memory lengths share a pass and the others get one each, so no row is padded: a
        training step's tasks are jobs of 7 to 101 queries, and padding them to one length made most of the
        decoder's work."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (_, heads, key) in enumerate(decoder_jobs):
            length = (sum(h.num_queries for h in heads), memory[key][0].shape[1])
            groups.setdefault(length, []).append(i)
        if need_weights and len(groups) > 1:
            raise ValueError("cross-attention weights come from one decoder pass: ask for one job's at a time")
        outs: list[torch.Tensor] = [torch.empty(0)] * len(decoder_jobs)
        weights: list[torch.Tensor] = []
        for members in groups.values():
            parts, weights = self._decoder_pass([decoder_jobs[i] for i in members], memory, need_weights)
            for i, part in zip(members, parts, strict=True):
                outs[i] = part
        return outs, weights

    def _decoder_pass(self, decoder_jobs, memory, need_weights):
        """One transformer decoder pass over jobs of equal query and memory lengths: each job's query outputs and
        the cross-attention weights. A job's tasks are decoded together, a block-diagonal self-attention mask keeping
        them apart."""
        mems, poss, tgts, qposs, counts = [], [], [], [], []
        for job, heads, key in decoder_jobs:
            mem, pos, _ = memory[key]
            mem = mem[job.rows]
            b = mem.shape[0]
            mems.append(mem)
            poss.append(pos.expand(b, -1, -1))
            tgts.append(torch.cat([self.queries[h.name].feat for h in heads]).expand(b, -1, -1))
            qposs.append(torch.cat([self.queries[h.name].pos for h in heads]).expand(b, -1, -1))
            counts.append([h.num_queries for h in heads])
        self_mask = None
        if any(len(c) > 1 for c in counts):  # (a single task's block mask lets all its queries see each other)
            if all(c == counts[0] for c in counts):  # one mask broadcast over every row
                self_mask = _block_mask(counts[0], tgts[0].device)
            else:
                self_mask = torch.cat(
                    [_block_mask(c, t.device).expand(t.shape[0], -1, -1) for c, t in zip(counts, tgts, strict=True)]
                )
            self_mask = self_mask.unsqueeze(1)
        if len(decoder_jobs) == 1:
            tgt, qpos, mem, pos = tgts[0], qposs[0], mems[0], poss[0][:1]
        else:
            tgt, qpos, mem, pos = torch.cat(tgts), torch.cat(qposs), torch.cat(mems), torch.cat(poss)
        hs, weights = self.decoder(tgt, mem, pos, qpos, self_mask, None, need_weights)
        return hs.split([t.shape[0] for t in tgts]), weights

    @torch.no_grad()
    def cross_attention(self, images, task: str) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
        """The task's cross-attention weights: ``D x B x Q x L`` (decoder layers, images, the task's queries, memory
        tokens, averaged over heads; each row sums to 1) and the ``(encoder layer, start, end)`` token span of every
        memory layer. Its entropy says how spread a query's reading is (``log L``: the mean token)."""
        head = self.select(task)[0]
        if head.head_type == "identity":
            raise ValueError(f"task {task!r} bypasses the decoder: it has no cross-attention")
        was_training = self.training
        self.eval()
        try:
            batches = self.prepare(images, [head.input_size])
            feats = self.encode(batches)
            _, (weights, memory, _) = self._run(feats, [Job(head.input_size, (head,), slice(None))], True)
        finally:
            self.train(was_training)
        return torch.stack(weights), memory[(head.input_size, False)][2]

    def layer_preference(self, images, task: str) -> dict[int, float]:
        """Mean cross-attention mass the task's queries put on each memory layer (sums to 1)."""
        weights, spans = self.cross_attention(images, task)
        w = weights.mean(dim=(0, 1, 2))  # over decoder layers, images, queries -> L
        return {layer: float(w[s:e].sum()) for layer, s, e in spans}


class ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``scale`` (``DecoderConfig.memory_grad``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def _block_mask(counts: Sequence[int], device) -> torch.Tensor:
    """``1 x Q x Q`` bool mask (``Q = sum(counts)``): queries attend within their task."""
    ids = torch.repeat_interleave(torch.arange(len(counts), device=device), torch.tensor(counts, device=device))
    return (ids[:, None] == ids[None, :]).unsqueeze(0)
