"""benchmarks/attribute_levels.py: the encoder levels it probes and the scores it reports."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
levels = pytest.importorskip("attribute_levels")


def test_scores_give_the_majority_the_accuracy_above_it_and_the_auc_of_the_rare_attributes():
    names = ["Goatee", "Smiling"]
    targets = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], np.float64)
    probs = np.array([[0.4, 0.1], [0.1, 0.2], [0.2, 0.9], [0.3, 0.3]])  # Goatee ranked right, never over 0.5
    scores = levels.level_scores(probs, targets, np.array([0, 0]), names)
    assert scores["macc"] == 0.875 and scores["majority_macc"] == 0.75
    assert scores["mean_auc"] == 1.0
    assert scores["rare"] == {"Goatee": {"above_majority": 0.0, "auc": 1.0}}  # Smiling is not one of the rare
    assert scores["rare_mean_auc"] == 1.0


def test_the_probe_ranks_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12))
    signal = x[:, 2] - x[:, 5] > 0
    y = np.stack([signal, rng.integers(0, 2, 600).astype(bool)], 1).astype(np.float64)
    probs = levels.probe_probabilities(x[:400], y[:400], x[400:])
    assert probs.shape == (200, 2) and ((probs >= 0) & (probs <= 1)).all()
    assert levels.roc_auc(probs[:, 0], y[400:, 0] > 0.5) > 0.95
    assert abs(levels.roc_auc(probs[:, 1], y[400:, 1] > 0.5) - 0.5) < 0.15


def test_every_level_is_pooled_to_each_grid_and_the_stem_path_is_the_models_own():
    import faceptor_core
    from faceptor_core.model.config import EncoderConfig
    from faceptor_tasks.synthfaces.demo import RESNET_MODEL as m

    keys = ("stem", "stem_width", "layer_scale", "depth")
    encoder = EncoderConfig(name=m["encoder"], **{k: m[k] for k in keys})
    torch.manual_seed(0)
    model = faceptor_core.build(["synth_attributes"], encoder=encoder, input_sizes=112, decoder=m["decoder"]).eval()
    loader = levels.scored_items(4, 112)
    feats, targets = levels.level_features(model, loader, 112)
    assert targets.shape == (4, 26) and set(np.unique(targets)) <= {0.0, 1.0}
    width, dim = m["stem_width"], model.encoder.embed_dim
    channels = {"pixels": 3, "stem entry (stride 2)": width, "stem stage 1 (stride 4)": width}
    channels |= {"stem stage 2 (stride 8)": 2 * width, "stem stage 3 (stride 16)": 4 * width}
    channels |= {f"block {i + 1} (stride 16)": dim for i in range(m["depth"])}
    assert set(feats) == {f"{name}, {p} x {p}" for name in channels for p in levels.POOLS}
    for name, c in channels.items():
        for p in levels.POOLS:
            assert feats[f"{name}, {p} x {p}"].shape == (4, c * p * p)
    # the script's own walk through the stem ends where the model's patch embedding does
    batch = next(iter(loader))
    x = model.normalise(model.prepare({112: batch["image"]}, [112])[112], 112)
    with torch.no_grad():
        tokens = model.encoder.patch_embed(x)
        stage3 = torch.tensor(feats["stem stage 3 (stride 16), 1 x 1"])
        projected = model.encoder.patch_embed.proj(stage3[:, :, None, None]).flatten(1)
    torch.testing.assert_close(projected, tokens.mean((2, 3)), rtol=1e-4, atol=1e-5)
