"""Prototype, not part of the library: a learned per-query bias of the decoder's cross-attention over the token grid.

docs/results.md ("The attributes' gap is in the decoder's reading") found that the demo's encoder holds the rare
attributes in its layout and that the attribute queries read the tokens nearly as a mean: their cross-attention
learns where to look only slowly. This patches, for one run, a bias ``heads x queries x tokens`` (started at zero,
so the run starts as the plain model) onto the cross-attention logits of each named task's queries in every decoder
layer, trained with the decoders (no weight decay; ``--bias-lr``: at a multiple of their rate), and trains the run
configuration as ``faceptor train`` does. After training it scores the attributes' ROC AUC on the test items in the
same process (the patched model's checkpoint does not load into the plain model).

    python benchmarks/cross_bias_prototype.py RUN.json --tasks synth_attributes --out record.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceptor_core.model import faceptor as faceptor_module
from faceptor_core.train import engine
from faceptor_core.train.config import load_run_config
from faceptor_tasks.synthfaces.labels import SYNTH_ATTRIBUTES

sys.path.insert(0, str(Path(__file__).parent))
from attribute_ranking import RARE, TASK, attribute_rows, majority_values, probabilities  # noqa: E402


def patched_methods(tasks: list[str], tokens: int):
    """The trainer's ``_build_model`` giving its model a ``cross_bias`` per task in ``tasks``, and Faceptor's
    ``_decoder_pass`` running the plain pass with the biases handed to the decoder as its cross-attention mask (zero
    for other tasks)."""
    build = engine.Trainer._build_model
    plain_pass = faceptor_module.Faceptor._decoder_pass

    def build_with_bias(self):
        model, trainable = build(self)
        heads = model.decoder.layers[0].cross_attn.num_heads
        model.cross_bias = nn.ParameterDict(
            {t: nn.Parameter(torch.zeros(heads, model.tasks[t].num_queries, tokens)) for t in tasks}
        )
        if trainable is not None:
            trainable = [*trainable, *(f"cross_bias.{t}" for t in tasks)]
        return model, trainable

    def decoder_pass(self, decoder_jobs, memory, need_weights):
        heads = self.decoder.layers[0].cross_attn.num_heads
        biases = []
        for job, job_heads, key in decoder_jobs:  # the rows in the order the plain pass concatenates them
            mem = memory[key][0][job.rows]
            if mem.shape[1] != tokens:
                raise ValueError(f"the prototype's bias covers {tokens} tokens; this memory has {mem.shape[1]}")
            parts = [
                self.cross_bias[h.name] if h.name in self.cross_bias else mem.new_zeros(heads, h.num_queries, tokens)
                for h in job_heads
            ]
            biases.append(torch.cat(parts, dim=1).to(mem.dtype).expand(mem.shape[0], -1, -1, -1))
        mask, decoder = torch.cat(biases), self.decoder
        plain_forward = decoder.forward

        def forward(tgt, mem, pos, qpos, self_mask, memory_mask, weights=False):
            if memory_mask is not None:
                raise ValueError("the plain pass now gives a memory mask of its own; the prototype would replace it")
            return plain_forward(tgt, mem, pos, qpos, self_mask, mask, weights)

        decoder.forward = forward  # for this pass only
        try:
            return plain_pass(self, decoder_jobs, memory, need_weights)
        finally:
            del decoder.forward

    return build_with_bias, decoder_pass


def patch(tasks: list[str], tokens: int) -> None:
    """Install :func:`patched_methods` for this process."""
    engine.Trainer._build_model, faceptor_module.Faceptor._decoder_pass = patched_methods(tasks, tokens)


def regroup(trainer: engine.Trainer, scale: float) -> float:
    """Move the biases into an optimizer group of their own, without weight decay, at ``scale`` times the rate of
    the group they were in; returns that rate's multiplier of the base rate."""
    bias = list(trainer.model.cross_bias.parameters())
    ids = {id(p) for p in bias}
    multiplier = None
    for group in trainer.optimizer.param_groups:
        keep = [p for p in group["params"] if id(p) not in ids]
        if len(keep) != len(group["params"]):
            multiplier, group["params"] = group["lr_multiplier"] * scale, keep
    if multiplier is None:
        raise ValueError("the biases are in no optimizer group (are they frozen?)")
    trainer.optimizer.add_param_group({"params": bias, "lr": 0.0, "lr_multiplier": multiplier, "weight_decay": 0.0})
    return multiplier


def attribute_ranks(model, limit: int) -> dict:
    """Mean AUC, the rare six's mean AUC and their rows, on the first ``limit`` test items."""
    probs, targets = probabilities(model, limit)
    rows = attribute_rows(list(SYNTH_ATTRIBUTES), probs, targets, majority_values(model.tasks[TASK].input_size))
    rare = {r["attribute"]: r for r in rows if r["attribute"] in RARE}
    return {
        "mean_auc": round(float(np.nanmean([r["auc"] for r in rows])), 4),
        "rare_six_mean_auc": round(float(np.mean([r["auc"] for r in rare.values()])), 4),
        "rare_six": {n: {"auc": r["auc"], "above_majority": r["above_majority"]} for n, r in rare.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, help="a run configuration (faceptor train's)")
    ap.add_argument("--tasks", nargs="+", default=["synth_attributes"], help="tasks whose queries get the bias")
    ap.add_argument("--tokens", type=int, default=49, help="memory tokens (49: 112 px at stride 16, one layer)")
    ap.add_argument("--test", type=int, default=500, help="test items the AUCs are scored on")
    ap.add_argument("--bias-lr", type=float, default=1.0, help="the biases' rate over the decoders' (default: 1)")
    ap.add_argument("--out", type=Path, help="write the record here as JSON")
    args = ap.parse_args()
    patch(args.tasks, args.tokens)
    cfg = load_run_config(args.config)
    trainer = engine.Trainer(cfg)
    multiplier = regroup(trainer, args.bias_lr)
    results = trainer.fit()
    record = {
        "config": str(args.config),
        "bias_tasks": args.tasks,
        "bias_lr_multiplier": multiplier,
        "results": results,
        "rank_500": attribute_ranks(trainer.model, args.test),
        "bias_abs_mean": {t: float(p.abs().mean()) for t, p in trainer.model.cross_bias.items()},
    }
    text = json.dumps(record, indent=1)
    if args.out is not None:  # before printing: a reader that stops early (| head) must not cost the record
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
