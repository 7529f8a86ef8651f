"""Declarations of the paper's tasks (and their sibling datasets) on the reusable families."""

from __future__ import annotations

from faceptor_core.spec import TaskSpec

# Landmark flip permutation of the iBUG 300-W 68-point layout (0-based).
FLIP_68 = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)

EXPRESSIONS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def builtin_tasks() -> list[TaskSpec]:
    """The paper's six tasks (structural declarations)."""
    return [
        TaskSpec(
            name="landmarks_300w", family="landmarks", head="dense", output="landmarks",
            num_queries=68, input_size=512, flip_permutation=FLIP_68, loss_weight=1000.0,
            primary_metric="nme", higher_is_better=False,
            description="300W, 68 points (HRNet CSV layout).",
        ),
        TaskSpec(
            name="parsing_celebamask_hq", family="parsing", head="dense", output="segmentation",
            num_queries=19, input_size=512, loss_weight=100.0, primary_metric="f1",
            description="CelebAMask-HQ, 19 classes.",
        ),
        TaskSpec(
            name="age_morph2", family="age", head="attribute", output="age_distribution",
            num_queries=101, input_size=112, loss_weight=6.0, primary_metric="mae",
            higher_is_better=False, description="MORPH II, ages 0..100.",
        ),
        TaskSpec(
            name="expression_rafdb", family="expression", head="attribute", output="classification",
            num_queries=7, input_size=112, label_names=EXPRESSIONS, loss_weight=1.0,
            primary_metric="accuracy", description="RAF-DB basic, 7 expressions.",
        ),
        TaskSpec(
            name="attributes_celeba", family="attributes", head="attribute", output="multilabel",
            num_queries=40, input_size=112, loss_weight=2.0, primary_metric="macc",
            description="CelebA, 40 binary attributes.",
        ),
        TaskSpec(
            name="recognition_ms1mv3", family="recognition", head="identity", output="embedding",
            num_queries=0, input_size=112, embedding_dim=512, num_identities=93431, loss_weight=5.0,
            primary_metric="verification_accuracy", description="MS1MV3, CosFace.",
        ),
    ]
