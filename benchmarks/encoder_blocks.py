"""What a trained model's transformer blocks add: each block's change of the tokens, its LayerScale gains, and every
task's metrics with the gains set to zero (the blocks become the identity).

    python benchmarks/encoder_blocks.py faceptor-demo/checkpoints/last > blocks.json
"""

from __future__ import annotations

import argparse
import json

import torch

import faceptor_core
from faceptor_core.evaluate import evaluate
from faceptor_core.model.encoder import resize_pos_grid


def block_changes(model, images: torch.Tensor, size: int) -> list[dict[str, float]]:
    """Per block: the norm of its change of the patch tokens over theirs, and the same for their mean token."""
    enc = model.encoder
    with torch.no_grad():
        tokens, _ = enc.embed_patches(model.normalise(model.prepare(images, [size])[size], size))
        b, _, h, w = tokens.shape
        pos = torch.cat((enc.pos_embed[:, :1], resize_pos_grid(enc.pos_embed[:, 1:], (h, w))), dim=1)
        t = enc.norm_pre(torch.cat((enc.cls_token.expand(b, -1, -1), tokens.flatten(2).transpose(1, 2)), 1) + pos)
        out = []
        for block in enc.blocks:
            nxt = block(t)
            d, p = (nxt - t)[:, 1:], t[:, 1:]
            out.append(
                {"tokens": (d.norm() / p.norm()).item(), "mean_token": (d.mean(1).norm() / p.mean(1).norm()).item()}
            )
            t = nxt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--task", default="synth_expression", help="whose test images the changes are measured on")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--eval-limit", type=int, default=300, help="test items per task")
    args = ap.parse_args()
    model = faceptor_core.load(args.checkpoint).eval()
    specs = {n: faceptor_core.get_task(n) for n in model.task_names}
    ds = specs[args.task].dataset(None, "test")
    images = torch.stack([torch.as_tensor(ds[i]["image"]).permute(2, 0, 1) for i in range(args.images)])
    changes = block_changes(model, images, model.tasks[args.task].input_size)
    gains = {k: v.abs().mean().item() for k, v in model.state_dict().items() if k.endswith("gamma")}
    limits = dict.fromkeys(specs, args.eval_limit)
    with_blocks = evaluate(model, specs, limits=limits)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.zero_()
    zeroed = evaluate(model, specs, limits=limits)
    record = {"checkpoint": args.checkpoint, "relative_change": changes, "mean_abs_gamma": gains}
    print(json.dumps({**record, "with_blocks": with_blocks, "blocks_zeroed": zeroed}, indent=1))


if __name__ == "__main__":
    main()
