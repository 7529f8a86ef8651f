"""How much of expression and of the attributes a trained SynthFaces model's representation holds: linear probes.

For each representation (the true landmarks, which need no model and give the ceiling; the model's predicted
landmarks; its last encoder layer, mean-pooled and whole; its pixel decoder's map pooled to 7 x 7) a linear
classifier is fitted on ``--train`` training items and scored on the first ``--test`` test items, beside the
trivial answer (majority class, per-attribute majority) and the model's own heads on the same items. For each
decoder task it also reports how spread its queries' cross-attention is (entropy beside an even spread's).

    python benchmarks/representation_probe.py RUN/checkpoints/last --out benchmarks/results/probe.json

Shapes are put in one frame before probing: centred between the eyes, rotated so the eyes are level and scaled
by the inter-ocular distance (pose is not what the probe should learn). Every probe is the same: standardised
features, full-batch AdamW (lr 1e-2, weight decay 0.1), 500 iterations, the last iterate scored.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import faceptor_core
from faceptor_core.model.base import Job
from faceptor_tasks.synthfaces.dataset import SynthFacesDataset

EXPRESSION, ATTRIBUTES = "synth_expression", "synth_attributes"


def normalised_shape(landmarks: np.ndarray) -> np.ndarray:
    """``B x 68 x 2`` landmarks -> ``B x 136`` in the eyes' frame (origin between the eyes, eyes level, unit
    inter-ocular distance)."""
    left, right = landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)
    d = right - left
    iod = np.linalg.norm(d, axis=1)
    cos, sin = (d / iod[:, None]).T
    p = landmarks - ((left + right) / 2)[:, None]
    x = p[..., 0] * cos[:, None] + p[..., 1] * sin[:, None]
    y = -p[..., 0] * sin[:, None] + p[..., 1] * cos[:, None]
    return (np.stack([x, y], -1) / iod[:, None, None]).reshape(len(landmarks), -1)


def probe_logits(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, outputs: int, multilabel: bool, seed: int = 0
) -> torch.Tensor:
    """The test logits (``N_test x outputs``) of a linear classifier fitted on the standardised training features:
    full-batch AdamW (lr 1e-2, weight decay 0.1), 500 iterations; binary cross-entropy per label when
    ``multilabel``, else cross-entropy over ``outputs`` classes."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.tensor((x_train - mu) / sd, dtype=torch.float32)
    xe = torch.tensor((x_test - mu) / sd, dtype=torch.float32)
    yt = torch.as_tensor(y_train)
    torch.manual_seed(seed)
    head = torch.nn.Linear(xt.shape[1], outputs)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(500):
        opt.zero_grad()
        logits = head(xt)
        loss = F.binary_cross_entropy_with_logits(logits, yt.float()) if multilabel else F.cross_entropy(logits, yt)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return head(xe)


def linear_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, multilabel: bool, seed: int = 0
) -> float:
    """Test accuracy (multilabel: mean per-label accuracy) of a linear classifier fitted on the training features."""
    outputs = y_train.shape[1] if multilabel else int(max(y_train.max(), y_test.max())) + 1
    logits = probe_logits(x_train, y_train, x_test, outputs, multilabel, seed)
    if multilabel:
        return float(((logits > 0).numpy() == y_test.astype(bool)).mean())
    return float((logits.argmax(1).numpy() == y_test).mean())


def trivial(y_train: np.ndarray, y_test: np.ndarray, multilabel: bool) -> float:
    """The majority class (multilabel: each label's majority value) of the training items, scored on the test."""
    if multilabel:
        majority = y_train.mean(0) >= 0.5
        return float((y_test.astype(bool) == majority).mean())
    return float((y_test == np.bincount(y_train).argmax()).mean())


def noisy_copy(
    true: tuple[np.ndarray, np.ndarray], predicted_test: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The true shapes (train, test) with isotropic Gaussian noise whose mean point error equals the predicted
    shapes' mean point error on the test items (all in the eyes' frame): what the prediction error would leave if
    it were random instead of systematic."""
    error = np.linalg.norm((predicted_test - true[1]).reshape(len(predicted_test), -1, 2), axis=-1).mean()
    sigma = error / np.sqrt(np.pi / 2)  # the mean of a 2-D isotropic Gaussian's length is sigma * sqrt(pi / 2)
    rng = np.random.default_rng(seed)
    return tuple(x + rng.normal(0.0, sigma, x.shape) for x in true)  # type: ignore[return-value]


def load_split(split: str, count: int) -> dict[str, np.ndarray]:
    ds = SynthFacesDataset(split, 112, length=count)
    samples = [ds.sample(i) for i in range(count)]
    return {
        "images": np.stack([s.image for s in samples]),
        "landmarks": np.stack([s.landmarks for s in samples]).astype(np.float64),
        "expression": np.array([s.expression for s in samples]),
        "attributes": np.stack([s.attributes for s in samples]).astype(np.int64),
    }


@torch.no_grad()
def model_features(model, images: np.ndarray, batch: int = 50) -> dict[str, np.ndarray]:
    """The model's representations of ``images`` and its own expression and attribute answers (one encoder pass per
    batch: the heads run on the same features)."""
    parts: dict[str, list[np.ndarray]] = {}

    def add(name: str, value: torch.Tensor | np.ndarray) -> None:
        parts.setdefault(name, []).append(np.asarray(value))

    size = 112
    job = Job(size, tuple(model.select(["synth_landmarks", EXPRESSION, ATTRIBUTES])), slice(None))
    for start in range(0, len(images), batch):
        feats = model.encode(model.prepare(list(images[start : start + batch]), [size]))
        last = feats[size][-1]
        add("encoder tokens, mean", last.mean((2, 3)))
        add("encoder tokens, all", last.flatten(1))
        add("pixel decoder map, 7 x 7", F.adaptive_avg_pool2d(model.pixel_embeddings(feats[size]), 7).flatten(1))
        raw = model.run_jobs(feats, [job])
        pred = {task: model.decode(task, out, (size, size)) for task, out in raw.items()}
        add("predicted landmarks", normalised_shape(pred["synth_landmarks"].points.double().numpy()))
        add("head: expression", pred[EXPRESSION].tensor().argmax(-1))
        add("head: attributes", pred[ATTRIBUTES].tensor() > 0.5)
    return {k: np.concatenate(v) for k, v in parts.items()}


def probe(checkpoint: Path | None, n_train: int, n_test: int) -> dict:
    train, test = load_split("train", n_train), load_split("test", n_test)
    reps: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "true landmarks": (normalised_shape(train["landmarks"]), normalised_shape(test["landmarks"]))
    }
    heads: dict[str, np.ndarray] = {}
    if checkpoint is not None:
        model = faceptor_core.load(checkpoint)
        ftr, fte = model_features(model, train["images"]), model_features(model, test["images"])
        heads = {k: fte.pop(k) for k in list(fte) if k.startswith("head: ")}
        reps.update({k: (ftr[k], fte[k]) for k in fte})
        reps["true landmarks + random noise as large as the predicted landmarks' error"] = noisy_copy(
            reps["true landmarks"], reps["predicted landmarks"][1]
        )
    scores: dict = {}
    targets: dict[str, tuple[str, bool, Callable[[np.ndarray], float]]] = {
        "expression": ("expression", False, lambda p: float((p == test["expression"]).mean())),
        "attributes": ("attributes", True, lambda p: float((p == test["attributes"].astype(bool)).mean())),
    }
    for target, (key, multilabel, score_head) in targets.items():
        row = {"trivial answer": trivial(train[key], test[key], multilabel)}
        if f"head: {target}" in heads:
            row["the model's own head"] = score_head(heads[f"head: {target}"])
        for name, (xtr, xte) in reps.items():
            row[f"linear probe on {name}"] = linear_probe(xtr, train[key], xte, test[key], multilabel)
        scores[target] = row
    if checkpoint is not None:
        scores["cross-attention"] = attention_spread(model, test["images"][:64])
    return {"checkpoint": None if checkpoint is None else str(checkpoint), "train": n_train, "test": n_test, **scores}


def attention_spread(model, images: np.ndarray) -> dict[str, dict[str, float]]:
    """Per decoder task: the mean entropy of its queries' cross-attention over the memory tokens (nats) beside the
    entropy of an even spread (``log L``, which reads the mean token), and the mean largest weight beside ``1 / L``."""
    out = {}
    for task in model.task_names:
        if model.tasks[task].head_type == "identity":
            continue
        weights, _ = model.cross_attention(list(images), task)
        tokens = weights.shape[-1]
        entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)
        out[task] = {
            "entropy": float(entropy.mean()),
            "even spread": float(np.log(tokens)),
            "largest weight": float(weights.amax(-1).mean()),
            "1 / tokens": 1.0 / tokens,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, nargs="?", help="a saved model (omit: the true landmarks only)")
    ap.add_argument("--train", type=int, default=1760, help="training items (default: the demo's 220 steps x 8)")
    ap.add_argument("--test", type=int, default=300, help="test items (default: the demo's 300)")
    ap.add_argument("--out", type=Path, help="write the scores here as JSON")
    ap.add_argument("--label", default="", help="what the checkpoint is (stored with the scores)")
    args = ap.parse_args()
    result = {"label": args.label, **probe(args.checkpoint, args.train, args.test)}
    text = json.dumps(result, indent=2)
    if args.out is not None:  # before printing: a reader that stops early (| head) must not cost the record
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
