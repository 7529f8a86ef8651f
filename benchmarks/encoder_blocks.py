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


def block_changes(model, images: torch.Tensor, size: int) -> list[dict[str, float]]:
    """Per block: the norm of its change of the patch tokens over theirs, and the same for their mean token (each
    block's input and output caught by a hook during the model's own encoder pass)."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [b.register_forward_hook(lambda _, i, o: pairs.append((i[0], o))) for b in model.encoder.blocks]
    try:
        with torch.no_grad():
            model.encode(model.prepare(images, [size]))
    finally:
        for hook in hooks:
            hook.remove()
    out = []
    for before, after in pairs:
        d, p = (after - before)[:, 1:], before[:, 1:]  # patch tokens, the class token left out
        out.append({"tokens": (d.norm() / p.norm()).item(), "mean_token": (d.mean(1).norm() / p.mean(1).norm()).item()})
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
