"""Which level of a trained model's encoder holds each attribute: linear probes on every level's pooled map.

The attributes' gap to the like-for-like anchor is in five rare attributes that the demo ranks poorly (the beards,
lipstick, bangs; docs/results.md, "A Zen 5 host, and the attributes' gap in ranking"). A probe on the last layer's
mean token holds no more than the model's head. This asks where on the way up they are lost: for the input pixels,
the ResNet stem's entry convolution (stride 2), its first, second and third stages (strides 4, 8, and the tokens at
16 before the blocks' residuals), and each transformer block's output, a linear probe is fitted on the map
average-pooled to 1 x 1 and to 3 x 3 (where a beard or a fringe is), on ``--train`` training items through the
evaluation transform, and scored on the first ``--test`` test items: accuracy above each attribute's majority value
and ROC AUC. The same for the same architecture at its random initialisation (what the levels give without
learning). Every probe is the same: standardised features, a multilabel linear layer, full-batch AdamW (lr 1e-2,
weight decay 0.1), 500 iterations.

    python benchmarks/attribute_levels.py faceptor-demo/checkpoints/last --out benchmarks/results/attribute_levels.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import faceptor_core
from faceptor_core.build import from_config
from faceptor_core.checkpoint import read_manifest
from faceptor_tasks.synthfaces.labels import SYNTH_ATTRIBUTES

sys.path.insert(0, str(Path(__file__).parent))
from attribute_ranking import RARE, TASK, majority_values, roc_auc, scored_items  # noqa: E402
from representation_probe import probe_logits  # noqa: E402

POOLS = (1, 3)


@torch.no_grad()
def level_features(model, loader: DataLoader, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``{level (pool): N x features}`` for every level of the encoder, and the ``N x A`` targets. The stem's maps
    are those of the model's own encoder pass; only its third stage, before the projection to the tokens, is run
    again from the second's."""
    stem = model.encoder.patch_embed
    parts: dict[str, list[np.ndarray]] = {}
    targets = []
    for batch in loader:
        x = model.prepare({size: batch["image"]}, [size])
        feats = model.encode(x)[size]
        if feats.stem_fine is None or feats.stem_mid is None:
            raise ValueError("the probes need the ResNet stem's maps: a model with pixel_fpn and pixel_stride 2")
        maps = {"pixels": model.normalise(x[size], size).float(), "stem entry (stride 2)": feats.stem_fine}
        maps |= {"stem stage 1 (stride 4)": feats.stem, "stem stage 2 (stride 8)": feats.stem_mid}
        maps |= {"stem stage 3 (stride 16)": stem.stage3(feats.stem_mid)}
        maps |= {f"block {i + 1} (stride 16)": f for i, f in enumerate(feats)}
        for name, value in maps.items():
            for pool in POOLS:
                parts.setdefault(f"{name}, {pool} x {pool}", []).append(
                    F.adaptive_avg_pool2d(value.float(), pool).flatten(1).numpy()
                )
        targets.append(np.asarray(batch["target"], np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(targets)


def probe_probabilities(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0) -> np.ndarray:
    """A multilabel linear probe's test probabilities (``N_test x A``): ``representation_probe``'s probe."""
    return torch.sigmoid(probe_logits(x_train, y_train, x_test, y_train.shape[1], True, seed)).numpy()


def level_scores(probs: np.ndarray, targets: np.ndarray, majority: np.ndarray, names: list[str]) -> dict:
    """mAcc, its majority, mean AUC, and each rare attribute's accuracy above its majority value and AUC."""
    truth = targets > 0.5
    correct = (probs > 0.5) == truth
    at_majority = truth == majority.astype(bool)
    aucs = [roc_auc(probs[:, j], truth[:, j]) for j in range(len(names))]
    rare = {
        names[j]: {
            "above_majority": round(float(correct[:, j].mean() - at_majority[:, j].mean()), 4),
            "auc": round(aucs[j], 4),
        }
        for j in range(len(names))
        if names[j] in RARE
    }
    return {
        "macc": round(float(correct.mean()), 4),
        "majority_macc": round(float(at_majority.mean()), 4),
        "mean_auc": round(float(np.nanmean(aucs)), 4),
        "rare_mean_auc": round(float(np.mean([r["auc"] for r in rare.values()])), 4),
        "rare": rare,
    }


def probe_model(model, size: int, n_train: int, n_test: int, majority: np.ndarray, names: list[str]) -> dict:
    train_feats, train_y = level_features(model, scored_items(n_train, size, "train"), size)
    test_feats, test_y = level_features(model, scored_items(n_test, size), size)
    out = {}
    for level in train_feats:
        probs = probe_probabilities(train_feats[level], train_y, test_feats[level])
        out[level] = level_scores(probs, test_y, majority, names)
        print(
            f"  {level:40s} mAcc {out[level]['macc']:.4f}  AUC {out[level]['mean_auc']:.3f}  "
            f"rare AUC {out[level]['rare_mean_auc']:.3f}",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a saved model with the ResNet stem and the synth_attributes task")
    ap.add_argument("--train", type=int, default=4800, help="training items the probes are fitted on")
    ap.add_argument("--test", type=int, default=500, help="the first N test items (default: all 500)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="", help="what the checkpoint is (stored with the scores)")
    ap.add_argument("--out", type=Path, help="write the scores here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = list(SYNTH_ATTRIBUTES)
    trained = faceptor_core.load(args.checkpoint).float().eval()
    size = trained.tasks[TASK].input_size
    majority = majority_values(size)
    config, _ = read_manifest(args.checkpoint)
    torch.manual_seed(0)
    untrained = from_config(config).float().eval()
    result = {"label": args.label, "checkpoint": str(args.checkpoint), "train": args.train, "test": args.test}
    for what, model in (("trained", trained), ("random initialisation", untrained)):
        print(what, flush=True)
        result[what] = probe_model(model, size, args.train, args.test, majority, names)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
