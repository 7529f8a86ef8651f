"""SynthFaces as a torch ``Dataset`` (train / test splits, one target or all) and verification pairs."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .cache import RenderCache
from .generator import SynthFaces, SynthSample

#: Split layout: test samples come from their own index range and their own people.
TRAIN_IDENTITIES = 1000
TEST_IDENTITIES = 200
TEST_INDEX_OFFSET = 10**7
TEST_IDENTITY_OFFSET = 1_000_000
PAIRS_INDEX_OFFSET = 2 * 10**7
DEFAULT_LENGTHS = {"train": 20000, "test": 500}
#: Selectable targets: ``all`` (a dict of every other one) or one label.
TARGETS = (
    "all",
    "landmarks",
    "visible",
    "parsing",
    "age",
    "expression",
    "attributes",
    "identity",
    "gaze",
    "head_pose",
    "pose",
)


def split_generator(split: str, size: int = 112, seed: int = 0, **kw: Any) -> tuple[SynthFaces, int]:
    """The generator of a split and the index of its first sample.

    ``train``: identities ``0..999``, indices from 0. ``test``: 200 other identities (ids from
    :data:`TEST_IDENTITY_OFFSET`), indices from :data:`TEST_INDEX_OFFSET`.
    """
    if split == "train":
        return SynthFaces(seed, size, TRAIN_IDENTITIES, 0, **kw), 0
    if split == "test":
        return SynthFaces(seed, size, TEST_IDENTITIES, TEST_IDENTITY_OFFSET, **kw), TEST_INDEX_OFFSET
    raise ValueError(f"unknown SynthFaces split {split!r}; expected 'train' or 'test'")


def sample_labels(s: SynthSample) -> dict[str, Any]:
    """Every label of a sample (the ``all`` target), keyed by target name."""
    return {
        "landmarks": s.landmarks,
        "visible": s.visible,
        "parsing": s.parsing,
        "age": s.age,
        "expression": s.expression,
        "attributes": s.attributes,
        "identity": s.identity,
        "gaze": s.gaze,
        "head_pose": s.pose.angles(),
        "pose": s.pose.as_dict(),
    }


class SynthFacesDataset(Dataset):
    """SynthFaces images with one label (``target``) or all of them (``"all"``).

    Items are ``{"image": H x W x 3 uint8, "target": label}``, or ``transform(item)`` when a transform is
    given. Labels: landmarks 68 x 2 float32 pixels (centres at integers), visible 68 bool (not occluded, on
    the image), parsing H x W uint8 (LaPa's 11 classes), age float, expression int (shared order),
    attributes int64 0/1 (``SYNTH_ATTRIBUTES``), identity int (a global id: train 0..999, test from
    1,000,000), gaze float32 (pitch, yaw) radians, head_pose float32 (yaw, roll) degrees (``POSE_ANGLES``;
    a horizontal flip negates both), pose the render parameters ``{"roll", "yaw_squash"}`` radians,
    ``"scale"``, ``"shift"`` (x, y) pixels. docs/synthfaces.md gives every convention.

    Splits: ``train`` (default 20,000 items) and ``test`` (default 500) use disjoint index ranges and
    disjoint people, so test scores are on unseen identities; both are fixed by ``seed`` (keep the default
    0 for the canonical test set). ``cache``: a folder in which rendered samples are kept and read back
    (:class:`~.cache.RenderCache`), for runs that read the same images more than once.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 112,
        length: int | None = None,
        seed: int = 0,
        target: str = "all",
        transform: Callable[[dict], Any] | None = None,
        cache: str | os.PathLike | None = None,
        **generator_kw: Any,
    ):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
        self.generator, self.offset = split_generator(split, size, seed, **generator_kw)
        self.split, self.size, self.target, self.transform = split, size, target, transform
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        self.num_identities = self.generator.num_identities
        self.identity_offset = self.generator.identity_offset
        self.source: SynthFaces | RenderCache = self.generator if cache is None else RenderCache(self.generator, cache)

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> SynthSample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return self.source.sample(self.offset + index)

    def __getitem__(self, index: int) -> Any:
        s = self.sample(index)
        labels = sample_labels(s)
        item = {"image": s.image, "target": labels if self.target == "all" else labels[self.target]}
        return self.transform(item) if self.transform is not None else item


def verification_generator(size: int = 112, seed: int = 0) -> SynthFaces:
    """The generator of the verification pairs: the test identities (none seen in training)."""
    return SynthFaces(seed, size, TEST_IDENTITIES, TEST_IDENTITY_OFFSET)


def pair_is_same(k: int | np.ndarray) -> bool | np.ndarray:
    """Whether verification pair ``k`` (an int, or an array of them) shows one person: even ``k`` does."""
    return k % 2 == 0


def verification_pair(gen: SynthFaces | RenderCache, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pair ``k`` of :func:`synth_verification_pairs` (:func:`pair_is_same` says whether it shows one person), from
    :func:`verification_generator` or a render cache of it."""
    n = gen.num_identities
    a = PAIRS_INDEX_OFFSET + k
    same = pair_is_same(k)
    b = a + n * (1 + (k // 2) % 7) if same else a + 1 + (k // 2) % (n - 1)
    sa, sb = gen.sample(a), gen.sample(b)
    assert (sa.identity == sb.identity) == same
    return sa.image, sb.image, same


def synth_verification_pairs(
    count: int = 600, size: int = 112, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face pairs for identity verification on the test identities (none seen in training).

    Returns ``(images_a, images_b, issame)``: two ``count x H x W x 3`` uint8 arrays and a bool array,
    alternating same / different (half each). A same pair shows one person in two independent variations
    (pose, expression, gaze, lighting, background, occlusion, noise); a different pair two people.
    """
    gen = verification_generator(size, seed)
    a_img = np.empty((count, size, size, 3), np.uint8)
    b_img = np.empty_like(a_img)
    issame = np.zeros(count, bool)
    for k in range(count):
        a_img[k], b_img[k], issame[k] = verification_pair(gen, k)
    return a_img, b_img, issame
