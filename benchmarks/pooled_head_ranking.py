"""How a stage-1 run's training-only pooled head for the attributes ranks them, beside the model's own head.

The pooled heads (``train.pooled_heads``) read the encoder's last layer directly and are dropped when training ends.
This rebuilds the attributes' pooled head of a saved stage-1 checkpoint from its run configuration and scores it on
the same test items as ``attribute_ranking.py`` (accuracy above each attribute's majority value and ROC AUC).

    python benchmarks/pooled_head_ranking.py faceptor-demo/stage1 --out record.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import faceptor_core
from faceptor_core.checkpoint import read_weights
from faceptor_core.train.config import load_run_config
from faceptor_core.train.engine import POOLED_HEADS
from faceptor_core.train.pooled_heads import PooledHeads, pooled_heads_for
from faceptor_tasks.synthfaces.labels import SYNTH_ATTRIBUTES

sys.path.insert(0, str(Path(__file__).parent))
from attribute_ranking import TASK, attribute_rows, majority_values, probabilities  # noqa: E402


def load_pooled_heads(model, run: Path, checkpoint: Path) -> PooledHeads:
    """The run's pooled heads as its trainer built them, with the checkpoint's weights."""
    heads = pooled_heads_for(model, load_run_config(run / "config.json").train, list(model.tasks))
    if heads is None:
        raise ValueError(f"{run / 'config.json'}: the run trained no pooled heads (train.pooled_heads)")
    expected = {k: tuple(v.shape) for k, v in heads.state_dict().items()}
    heads.load_state_dict(read_weights(checkpoint / POOLED_HEADS, expected, against="the run's pooled heads"))
    return heads.eval()


def pooled_probabilities(model, heads: PooledHeads, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The attributes' pooled head's probabilities on the first ``limit`` test items, and their targets."""
    size = model.tasks[TASK].input_size

    def read(images: torch.Tensor) -> torch.Tensor:
        last = {size: model.encode(model.prepare({size: images}, [size]))[size][-1].float()}
        return torch.sigmoid(heads(last, dict.fromkeys(heads.heads, slice(None)))[TASK])

    return probabilities(model, limit, read)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a stage-1 run's output folder (config.json, checkpoints/last)")
    ap.add_argument("--test", type=int, default=500, help="the first N test items (default: all 500)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the rows here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.run / "checkpoints" / "last"
    model = faceptor_core.load(checkpoint).float().eval()
    heads = load_pooled_heads(model, args.run, checkpoint)
    probs, targets = pooled_probabilities(model, heads, args.test)
    rows = attribute_rows(list(SYNTH_ATTRIBUTES), probs, targets, majority_values(model.tasks[TASK].input_size))
    result = {"run": str(args.run), "test_items": args.test, "rows": rows}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"pooled head: mAcc {np.mean([r['majority'] + r['above_majority'] for r in rows]):.4f}  "
        f"mean AUC {np.nanmean([r['auc'] for r in rows]):.3f}"
    )


if __name__ == "__main__":
    main()
