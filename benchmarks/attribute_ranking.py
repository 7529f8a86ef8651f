"""Where the attributes' gap to the like-for-like anchor lies: each attribute's accuracy above its majority value and
the ROC AUC of its probability, for trained models and for ResNet-18 anchors trained here, on the same test items.

An attribute read at its majority value but ranked well (a high AUC) would be a matter of the decision threshold;
one ranked poorly is missing from what the model computes. The accuracy at the best threshold for the scored items
themselves bounds what any threshold could gain. The anchor is docs/results.md's like-for-like one: 4,800
images at 16 a step and lr 1e-3, then its last layer alone on 7,200 more at 2e-3.

    python benchmarks/attribute_ranking.py faceptor-demo/checkpoints/last OTHER/checkpoints/last --anchor-seeds 0 1 \\
        --out benchmarks/results/attribute_ranking.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import faceptor_core
from faceptor_core.data.collate import collate_items
from faceptor_core.evaluate import eval_dataset, fit_baseline, prediction_tensor
from faceptor_core.registry import default_registry
from faceptor_tasks.synthfaces.labels import SYNTH_ATTRIBUTES

sys.path.insert(0, str(Path(__file__).parent))
from bench_specialist import train_specialist  # noqa: E402

TASK = "synth_attributes"
#: The attributes the demo reads at or near their majority value (docs/results.md).
RARE = ("Goatee", "No_Beard", "Mustache", "Bangs", "Wearing_Lipstick", "Receding_Hairline")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The probability that a positive item scores above a negative one, ties counted half (Mann-Whitney U over
    average ranks); NaN when either class is absent."""
    labels = np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    values, inverse, counts = np.unique(np.asarray(scores, np.float64), return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # the 0-based rank where each distinct value starts
    ranks = (first + (counts + 1) / 2)[inverse]  # average 1-based rank of each item
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_threshold_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The accuracy of ``scores > t`` at the best threshold ``t`` for these very items: an upper bound on what any
    threshold could gain (it is chosen on the items it is scored on)."""
    labels = np.asarray(labels, bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    ranked, truth = np.asarray(scores, np.float64)[order], labels[order]
    called = np.arange(len(ranked) + 1)  # the k highest-scoring items called positive
    true_positives = np.concatenate([[0], np.cumsum(truth)])
    correct = true_positives + (~labels).sum() - (called - true_positives)
    cuts = np.concatenate([[True], ranked[:-1] != ranked[1:], [True]])  # a threshold cannot split tied scores
    return float(correct[cuts].max() / len(ranked))


def attribute_rows(
    names: list[str], probabilities: np.ndarray, targets: np.ndarray, majority: np.ndarray
) -> list[dict[str, float | str]]:
    """Per attribute: its majority value's accuracy, the model's accuracy (probability > 0.5) minus it, the same at
    the best threshold for these items (an upper bound) and the AUC. ``probabilities``, ``targets``: ``N x A``;
    ``majority``: the ``A`` majority values (0 or 1)."""
    truth = np.asarray(targets) > 0.5
    said = np.asarray(probabilities) > 0.5
    rows = []
    for j, name in enumerate(names):
        at_majority = float((truth[:, j] == bool(majority[j])).mean())
        rows.append(
            {
                "attribute": name,
                "majority": round(at_majority, 4),
                "above_majority": round(float((said[:, j] == truth[:, j]).mean()) - at_majority, 4),
                "best_threshold_above_majority": round(
                    best_threshold_accuracy(probabilities[:, j], truth[:, j]) - at_majority, 4
                ),
                "auc": round(roc_auc(probabilities[:, j], truth[:, j]), 4),
            }
        )
    return rows


def scored_items(limit: int, size: int, split: str = "test") -> DataLoader:
    """The first ``limit`` items of ``split`` through the task's evaluation transform, as the demo's evaluation reads
    the test items."""
    spec = default_registry().get_task(TASK)
    return DataLoader(eval_dataset(spec, None, split, size, limit), batch_size=50, collate_fn=collate_items)


def model_probabilities(checkpoint: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """A saved model's attribute probabilities on the first ``limit`` test items, and their targets."""
    return probabilities(faceptor_core.load(checkpoint), limit)


@torch.no_grad()
def probabilities(
    model, limit: int, read: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A model's attribute probabilities on the first ``limit`` test items (in eval mode), and their targets;
    ``read``: a batch of images -> ``B x A`` probabilities by another readout (default: the model's own head)."""
    model.eval()
    size = model.tasks[TASK].input_size

    def own_head(images: torch.Tensor) -> torch.Tensor:
        return prediction_tensor(model.decode(TASK, model({size: images}, [TASK])[TASK], (size, size)))

    read = read or own_head
    probs, targets = [], []
    for batch in scored_items(limit, size):
        probs.append(read(batch["image"]).float().numpy())
        targets.append(np.asarray(batch["target"], np.float64))
    return np.concatenate(probs), np.concatenate(targets)


def majority_values(size: int) -> np.ndarray:
    """The task's trivial baseline (each attribute's majority value on the training items), as 0/1 per attribute."""
    spec = default_registry().get_task(TASK)
    baseline = fit_baseline(spec, None, size)
    batch = next(iter(scored_items(1, size)))  # the baseline's answer is the same for every item
    return (np.asarray(baseline.predict(batch), np.float64)[0] > 0.5).astype(np.int64)


def anchor_probabilities(seed: int, limit: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The like-for-like ResNet-18 anchor trained with ``seed``: its probabilities, the targets and its record."""
    outputs: list = []
    rec = train_specialist(
        TASK, 4800, batch=16, lr=1e-3, seed=seed, eval_limit=limit, head_images=7200, head_lr=2e-3, outputs=outputs
    )
    probs = np.concatenate([v.float().numpy() for v, _ in outputs])
    return probs, np.concatenate([np.asarray(t, np.float64) for _, t in outputs]), rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", type=Path, nargs="*", help="saved models with the synth_attributes task")
    ap.add_argument("--labels", nargs="*", default=[], help="what each checkpoint is (default: its path)")
    ap.add_argument("--anchor-seeds", type=int, nargs="*", default=[], help="train and score the anchor with these")
    ap.add_argument("--test", type=int, default=500, help="the first N test items (default: all 500)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the rows here as JSON")
    args = ap.parse_args()
    if args.labels and len(args.labels) != len(args.checkpoints):
        ap.error(f"--labels: {len(args.labels)} given for {len(args.checkpoints)} checkpoints")
    torch.set_num_threads(args.threads)
    names = list(SYNTH_ATTRIBUTES)  # the order of the task's target columns
    size = default_registry().get_task(TASK).input_size
    majority = majority_values(size)
    result: dict = {"test_items": args.test, "models": {}}
    for checkpoint, label in zip(args.checkpoints, args.labels or map(str, args.checkpoints), strict=True):
        probs, targets = model_probabilities(checkpoint, args.test)
        result["models"][label] = attribute_rows(names, probs, targets, majority)
    for seed in args.anchor_seeds:
        probs, targets, rec = anchor_probabilities(seed, args.test)
        result["models"][f"ResNet-18 anchor, seed {seed}"] = attribute_rows(names, probs, targets, majority)
        result.setdefault("anchor_records", []).append(rec)
    if args.out is not None:  # before printing: a reader that stops early (| head) must not cost the record
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    for label, rows in result["models"].items():
        print(f"{label}: mean AUC {np.nanmean([r['auc'] for r in rows]):.3f}")
        for r in sorted(rows, key=lambda r: r["auc"]):
            name, above = r["attribute"], r["above_majority"]
            print(f"  {name:22s} majority {r['majority']:.3f}  {above:+.3f}  AUC {r['auc']:.3f}")


if __name__ == "__main__":
    main()
