"""SynthFaces: determinism, labels that agree with the pixels, identities, attributes, datasets, exports."""

from __future__ import annotations

import csv
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from faceptor_tasks.synthfaces import EXPRESSIONS, LAPA_CLASSES, SYNTH_ATTRIBUTES, SynthFaces
from faceptor_tasks.synthfaces.dataset import (
    TARGETS,
    TEST_IDENTITY_OFFSET,
    SynthFacesDataset,
    synth_verification_pairs,
)
from faceptor_tasks.synthfaces.export import EXPORT_FORMATS, export_dataset, split_counts
from faceptor_tasks.synthfaces.labels import CELEBA_ATTRIBUTES
from faceptor_tasks.synthfaces.preview import make_preview

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
A = {name: i for i, name in enumerate(SYNTH_ATTRIBUTES)}
PARTS = {  # landmark ranges and the classes their pixels must have
    "left_brow": (range(17, 22), {2}),
    "right_brow": (range(22, 27), {3}),
    "nose": (range(27, 36), {6}),
    "left_eye": (range(36, 42), {4}),
    "right_eye": (range(42, 48), {5}),
    "outer_lips": (range(48, 60), {7, 9}),
    "inner_lips": (range(60, 68), {7, 8, 9}),
}


@pytest.fixture(scope="module")
def gen() -> SynthFaces:
    return SynthFaces(seed=0, size=112)


@pytest.fixture(scope="module")
def clean() -> SynthFaces:
    """Frontal, centred, no effects or occluders: pixel comparisons are exact."""
    return SynthFaces(seed=0, size=112, variation=0.0, effects=False)


@pytest.fixture(scope="module")
def batch(gen: SynthFaces) -> list:
    return [gen.sample(i) for i in range(150)]


def pixel_classes(sample, idx) -> np.ndarray:
    ij = np.floor(sample.landmarks[list(idx)] + 0.5).astype(int)
    return sample.parsing[ij[:, 1], ij[:, 0]]


# -- determinism and ranges ------------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 2**31), index=st.integers(0, 10**8))
def test_same_seed_and_index_give_identical_samples(seed: int, index: int) -> None:
    a, b = SynthFaces(seed, 64).sample(index), SynthFaces(seed, 64).sample(index)
    assert a.image.tobytes() == b.image.tobytes() and a.parsing.tobytes() == b.parsing.tobytes()
    assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.visible, b.visible)
    assert (a.age, a.expression, a.identity, a.pose) == (b.age, b.expression, b.identity, b.pose)
    assert np.array_equal(a.attributes, b.attributes) and np.array_equal(a.gaze, b.gaze)


def test_different_indices_and_seeds_differ(gen: SynthFaces) -> None:
    assert not np.array_equal(gen.sample(0).image, gen.sample(1).image)
    assert not np.array_equal(gen.sample(0).image, SynthFaces(seed=1).sample(0).image)


@FAST
@given(seed=st.integers(0, 1000), index=st.integers(0, 10**6), size=st.sampled_from([32, 64, 112, 224]))
def test_sample_types_shapes_and_ranges(seed: int, index: int, size: int) -> None:
    s = SynthFaces(seed, size).sample(index)
    assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
    assert s.image.flags.writeable and s.parsing.flags.writeable  # safe for torch.from_numpy and in-place ops
    assert s.parsing.shape == (size, size) and s.parsing.dtype == np.uint8
    assert s.parsing.max() < len(LAPA_CLASSES)
    assert s.landmarks.shape == (68, 2) and s.landmarks.dtype == np.float32
    assert s.visible.shape == (68,) and s.visible.dtype == bool
    # moderate poses keep the whole face on the image
    assert (s.landmarks >= 0).all() and (s.landmarks <= size - 1).all()
    assert 0 <= s.age <= 100 and 0 <= s.expression < len(EXPRESSIONS)
    assert s.attributes.shape == (len(SYNTH_ATTRIBUTES),) and s.attributes.dtype == np.int64
    assert set(np.unique(s.attributes)) <= {0, 1}
    assert s.gaze.shape == (2,) and s.gaze.dtype == np.float32 and (np.abs(s.gaze) <= 0.5).all()
    assert s.pose.angles().shape == (2,) and s.pose.angles().dtype == np.float32
    assert set(s.pose.as_dict()) == {"roll", "scale", "shift", "yaw_squash"}


def test_vocabularies() -> None:
    assert EXPRESSIONS == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    assert LAPA_CLASSES[0] == "background" and LAPA_CLASSES[10] == "hair" and len(LAPA_CLASSES) == 11
    assert len(SYNTH_ATTRIBUTES) >= 12 and set(SYNTH_ATTRIBUTES) <= set(CELEBA_ATTRIBUTES)
    for name in (
        "Eyeglasses",
        "Smiling",
        "Mouth_Slightly_Open",
        "Wearing_Hat",
        "Bald",
        "Bangs",
        "Black_Hair",
        "Blond_Hair",
        "Gray_Hair",
        "Mustache",
        "No_Beard",
        "Male",
    ):
        assert name in SYNTH_ATTRIBUTES


# -- labels agree with pixels ----------------------------------------------------------------------------
def test_landmarks_lie_on_their_parts(batch: list) -> None:
    for s in batch:
        for part, (idx, classes) in PARTS.items():
            vis = s.visible[list(idx)]
            got = pixel_classes(s, idx)[vis]
            assert np.isin(got, list(classes)).all(), (part, got)


def test_occluded_landmarks_keep_their_true_position(gen: SynthFaces) -> None:
    seen = 0
    for i in range(200):
        var = gen.describe(i)
        if not var.occluder:
            continue
        ident = gen.identity(gen.identity_of(i))
        with_occ, without = gen.render(ident, var), gen.render(ident, replace(var, occluder=False))
        assert np.array_equal(with_occ.landmarks, without.landmarks)
        hidden = ~with_occ.visible
        if hidden.any():
            seen += 1
            assert (pixel_classes(with_occ, np.flatnonzero(hidden)) == 0).all()  # occluders are background
    assert seen >= 5


def test_image_effects_never_change_labels(gen: SynthFaces) -> None:
    plain = SynthFaces(seed=0, size=112, effects=False)
    for i in range(20):
        var = replace(gen.describe(i), occluder=False)
        ident = gen.identity(gen.identity_of(i))
        a, b = gen.render(ident, var), plain.render(ident, var)
        assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.parsing, b.parsing)
        blurry = var.blur >= 1.0
        assert a.attribute("Blurry") == int(blurry) and b.attribute("Blurry") == 0
        if var.noise or var.blur or var.jpeg or var.gradient > 0.05:
            assert not np.array_equal(a.image, b.image)


def test_parsing_has_the_parts_of_the_face(clean: SynthFaces) -> None:
    for i in range(60):
        s = clean.sample(i)
        present = set(np.unique(s.parsing).tolist())
        assert {0, 1, 2, 3, 4, 5, 6, 7, 9} <= present
        ident = clean.identity(s.identity)
        if not ident.bald:
            assert 10 in present
        if s.attribute("Mouth_Slightly_Open"):
            assert 8 in present
        if EXPRESSIONS[s.expression] in ("disgust", "sadness", "anger", "neutral"):
            assert 8 not in present  # closed mouths
        # left/right are as seen: class 4 (left eye) lies left of class 5
        xs4, xs5 = np.nonzero(s.parsing == 4)[1].mean(), np.nonzero(s.parsing == 5)[1].mean()
        assert xs4 < xs5


# -- identities ------------------------------------------------------------------------------------------
def test_identities_repeat_and_are_persistent(gen: SynthFaces) -> None:
    n = gen.num_identities
    ids = [gen.identity_of(i) for i in range(n)]
    assert sorted(ids) == list(range(n))  # every identity once per cycle
    for i in (0, 7, 123):
        a, b = gen.sample(i), gen.sample(i + 3 * n)
        assert a.identity == b.identity and a.age == b.age
        fresh = SynthFaces(seed=0).identity(a.identity)
        assert np.array_equal(gen.identity(a.identity).vector(), fresh.vector())
        persistent = [
            "Male",
            "Eyeglasses",
            "Wearing_Hat",
            "Bald",
            "Bangs",
            "Gray_Hair",
            "Mustache",
            "No_Beard",
            "Young",
            "Black_Hair",
            "Blond_Hair",
        ]
        assert [a.attribute(p) for p in persistent] == [b.attribute(p) for p in persistent]
    vectors = np.stack([gen.identity(k).vector() for k in range(50)])
    assert len(np.unique(vectors.round(6), axis=0)) == 50


def test_one_identity_differs_only_in_the_variation(clean: SynthFaces) -> None:
    """Same person, same expression and gaze, different scene: every face and hair pixel is identical."""
    n = clean.num_identities
    for i in (3, 40):
        ident = clean.identity(clean.identity_of(i))
        v1, v2 = clean.describe(i), clean.describe(i + n)
        v2 = replace(v2, expression=v1.expression, intensity=v1.intensity, open_scale=v1.open_scale, gaze=v1.gaze)
        a, b = clean.render(ident, v1), clean.render(ident, v2)
        assert v1.scene_seed != v2.scene_seed
        assert np.array_equal(a.parsing, b.parsing)
        person = a.parsing > 0
        assert np.array_equal(a.image[person], b.image[person])
        assert not np.array_equal(a.image[~person], b.image[~person])  # background and clothes differ


def test_train_and_test_people_are_disjoint() -> None:
    train = SynthFacesDataset("train", size=32, length=30, target="identity")
    test = SynthFacesDataset("test", size=32, length=30, target="identity")
    tr = {train[i]["target"] for i in range(30)}
    te = {test[i]["target"] for i in range(30)}
    assert max(tr) < 1000 and min(te) >= TEST_IDENTITY_OFFSET


# -- attributes, expression, gaze and age are visible ----------------------------------------------------
def test_attributes_follow_the_drawing(batch: list, gen: SynthFaces) -> None:
    for s in batch:
        a = s.attributes
        assert a[A["Smiling"]] == (EXPRESSIONS[s.expression] == "happiness")
        assert a[A["Young"]] == (s.age < 35)
        facial_hair = a[A["Mustache"]] or a[A["Goatee"]] or gen.identity(s.identity).beard
        assert a[A["No_Beard"]] == (not facial_hair)
        assert a[A["Black_Hair"]] + a[A["Blond_Hair"]] + a[A["Brown_Hair"]] + a[A["Gray_Hair"]] <= 1
        if a[A["Bald"]]:
            assert a[A["Gray_Hair"]] + a[A["Black_Hair"]] + a[A["Blond_Hair"]] + a[A["Brown_Hair"]] == 0
    ages = np.array([s.age for s in batch])
    grey = np.array([s.attribute("Gray_Hair") for s in batch])
    assert grey[ages < 25].sum() == 0
    assert grey[ages > 80].mean() > 0.5


def test_accessories_are_drawn(clean: SynthFaces) -> None:
    """Glasses change the image but not the parsing map; a hat covers hair; baldness removes the top hair."""
    i = 5
    base = clean.identity(clean.identity_of(i))
    var = clean.describe(i)
    plain = clean.render(replace(base, glasses=False, hat=False, bald=False, bangs=False), var)
    glasses = clean.render(replace(base, glasses=True, hat=False, bald=False, bangs=False), var)
    hat = clean.render(replace(base, glasses=False, hat=True, bald=False, bangs=False), var)
    bald = clean.render(replace(base, glasses=False, hat=False, bald=True, bangs=False), var)
    assert glasses.attribute("Eyeglasses") == 1 and plain.attribute("Eyeglasses") == 0
    assert np.array_equal(glasses.parsing, plain.parsing) and not np.array_equal(glasses.image, plain.image)
    assert hat.attribute("Wearing_Hat") == 1
    assert (hat.parsing == 10).sum() < 0.7 * (plain.parsing == 10).sum()
    assert bald.attribute("Bald") == 1
    assert (bald.parsing == 10).sum() < 0.7 * (plain.parsing == 10).sum()
    assert (bald.parsing == 1).sum() > (plain.parsing == 1).sum()


def _as(clean: SynthFaces, i: int, expression: str, gaze=(0.0, 0.0)):
    ident = clean.identity(clean.identity_of(i))
    var = replace(clean.describe(i), expression=EXPRESSIONS.index(expression), intensity=1.0, open_scale=1.0, gaze=gaze)
    return clean.render(ident, var)


def test_expressions_show_in_mouth_brows_and_eyes(clean: SynthFaces) -> None:
    for i in range(10):
        neutral, surprise, happy = (_as(clean, i, e) for e in ("neutral", "surprise", "happiness"))
        sad, angry = _as(clean, i, "sadness"), _as(clean, i, "anger")
        eye_area = [(s.parsing == 4).sum() for s in (neutral, surprise, happy)]
        assert eye_area[1] > eye_area[0] > eye_area[2]  # wide open vs narrowed
        assert surprise.attribute("Mouth_Slightly_Open") and (surprise.parsing == 8).any()
        assert not neutral.attribute("Mouth_Slightly_Open") and not (neutral.parsing == 8).any()
        assert happy.attribute("Smiling") and not neutral.attribute("Smiling")
        corners = lambda s: s.landmarks[[48, 54], 1].mean() - s.landmarks[[51, 57], 1].mean()  # noqa: E731
        assert corners(happy) < corners(neutral) < corners(sad)  # corners up when smiling, down when sad
        brow_y = lambda s: s.landmarks[17:27, 1].mean()  # noqa: E731
        assert brow_y(surprise) < brow_y(neutral) < brow_y(angry)
        inner_gap = lambda s: s.landmarks[22, 0] - s.landmarks[21, 0]  # noqa: E731
        assert inner_gap(angry) < inner_gap(neutral)


def test_gaze_moves_the_pupils() -> None:
    big = SynthFaces(seed=0, size=224, variation=0.0, effects=False)

    def pupils(s) -> np.ndarray:  # (x, y) centre of the pupil pixels of each eye
        dark = np.all(s.image == (15, 12, 12), axis=-1)
        return np.array([np.argwhere(dark & (s.parsing == c)).mean(0)[::-1] for c in (4, 5)])

    for i in range(5):
        right, left = _as(big, i, "surprise", (0.0, 0.45)), _as(big, i, "surprise", (0.0, -0.45))
        up, down = _as(big, i, "surprise", (0.3, 0.0)), _as(big, i, "surprise", (-0.3, 0.0))
        assert (pupils(right)[:, 0] > pupils(left)[:, 0] + 2).all()
        assert (pupils(up)[:, 1] < pupils(down)[:, 1]).all()
        assert right.gaze[1] == pytest.approx(0.45) and up.gaze[0] == pytest.approx(0.3)


def test_age_shows_in_proportions_and_hair(gen: SynthFaces) -> None:
    kids, elders = [], []
    for k in range(400):
        ident = gen.identity(k)
        (kids if ident.age < 10 else elders if ident.age > 75 else []).append(ident)
    assert len(kids) > 10 and len(elders) > 10
    clean = SynthFaces(seed=0, size=112, variation=0.0, effects=False)
    var = replace(clean.describe(0), expression=EXPRESSIONS.index("neutral"), intensity=1.0)

    def eye_to_face(ident) -> float:
        lm = clean.render(ident, var).landmarks
        return float((lm[39, 0] - lm[36, 0]) / (lm[16, 0] - lm[0, 0]))

    assert np.mean([eye_to_face(i) for i in kids]) > np.mean([eye_to_face(i) for i in elders])
    spread = [np.ptp(np.asarray(i.hair_rgb)) for i in elders if not i.bald]
    assert np.median(spread) < 40  # grey hair: nearly equal channels
    assert np.mean([i.wrinkles for i in elders]) > 0.8 and max(i.wrinkles for i in kids) == 0


# -- datasets and pairs ----------------------------------------------------------------------------------
def test_dataset_items_and_targets() -> None:
    ds = SynthFacesDataset("train", size=48, length=5)
    assert len(ds) == 5 and len(SynthFacesDataset("train")) == 20000 and len(SynthFacesDataset("test")) == 500
    item = ds[0]
    assert item["image"].shape == (48, 48, 3) and item["image"].dtype == np.uint8
    assert set(item["target"]) >= set(TARGETS[1:])
    expected = {
        "landmarks": ((68, 2), np.float32),
        "visible": ((68,), np.bool_),
        "parsing": ((48, 48), np.uint8),
        "attributes": ((len(SYNTH_ATTRIBUTES),), np.int64),
        "gaze": ((2,), np.float32),
        "head_pose": ((2,), np.float32),
    }
    for target in TARGETS[1:]:
        t = SynthFacesDataset("train", size=48, length=5, target=target)[1]["target"]
        if target in expected:
            assert (t.shape, t.dtype) == expected[target]
        elif target == "pose":
            assert set(t) == {"roll", "scale", "shift", "yaw_squash"}
        else:
            assert isinstance(t, {"age": float, "expression": int, "identity": int}[target])
    wrapped = SynthFacesDataset("test", size=48, length=3, target="age", transform=lambda it: it["target"] + 1)
    assert wrapped[0] == SynthFacesDataset("test", size=48, length=3, target="age")[0]["target"] + 1
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError):
        SynthFacesDataset("val")


def test_test_split_is_fixed_and_disjoint_from_train() -> None:
    a, b = SynthFacesDataset("test", size=48, length=3), SynthFacesDataset("test", size=48, length=3)
    assert all(np.array_equal(a[i]["image"], b[i]["image"]) for i in range(3))
    assert not np.array_equal(a[0]["image"], SynthFacesDataset("train", size=48, length=3)[0]["image"])


def test_verification_pairs() -> None:
    ia, ib, same = synth_verification_pairs(count=10, size=32, seed=0)
    assert ia.shape == ib.shape == (10, 32, 32, 3) and ia.dtype == np.uint8
    assert same.dtype == bool and same.sum() == 5
    assert not any(np.array_equal(x, y) for x, y in zip(ia, ib, strict=True))


def test_the_tasks_verification_pairs_render_the_same_pairs_when_read() -> None:
    """synth_identity's evaluation split renders each pair when it is read (a short evaluation renders only what
    it scores), and the pairs are the ones synth_verification_pairs lists."""
    from faceptor_tasks.synth_tasks import SynthVerificationPairs

    ia, ib, same = synth_verification_pairs(count=4, size=112, seed=0)
    pairs = SynthVerificationPairs(count=4)
    assert len(pairs) == 4 and np.array_equal(pairs.issame, same)
    for i in (3, 0):
        item = pairs[i]
        assert np.array_equal(item["image"], ia[i]) and np.array_equal(item["image_b"], ib[i])
        assert item["target"] == int(same[i])
    with pytest.raises(IndexError):
        pairs[4]


# -- exports and preview ---------------------------------------------------------------------------------
def test_export_formats(tmp_path) -> None:
    count, size = 8, 32
    n = split_counts(count)
    assert set(EXPORT_FORMATS) >= {"300w", "lapa", "celeba", "utkface", "rafdb"}
    roots = {fmt: export_dataset(fmt, tmp_path / fmt, count=count, seed=0, size=size) for fmt in EXPORT_FORMATS}

    def read_csv(path) -> list[list[str]]:
        with open(path, newline="") as f:
            return list(csv.reader(f))

    rows = read_csv(roots["300w"] / "face_landmarks_300w_train.csv")
    assert len(rows[0]) == 4 + 136 and rows[0][:4] == ["image_name", "scale", "center_w", "center_h"]
    assert len(rows) == 1 + n["train"] and all(len(r) == 140 for r in rows)
    first = SynthFacesDataset("train", size=size, length=1, target="landmarks")[0]["target"]
    np.testing.assert_allclose(np.asarray(rows[1][4:], float).reshape(68, 2) - 1, first, atol=1e-3)
    assert (roots["300w"] / rows[1][0]).is_file()
    assert len(read_csv(roots["300w"] / "face_landmarks_300w_test.csv")) == 1 + n["test"]

    for split in ("train", "test"):
        images = sorted((roots["lapa"] / split / "images").glob("*.jpg"))
        assert len(images) == n[split]
        label = np.asarray(Image.open(roots["lapa"] / split / "labels" / (images[0].stem + ".png")))
        assert label.shape == (size, size) and label.max() <= 10
        lines = (roots["lapa"] / split / "landmarks" / (images[0].stem + ".txt")).read_text().split("\n")
        assert lines[0] == "68" and len([ln for ln in lines[1:] if ln]) == 68

    attr = (roots["celeba"] / "list_attr_celeba.txt").read_text().splitlines()
    assert attr[0] == str(count) and attr[1].split() == list(CELEBA_ATTRIBUTES)
    assert all(len(ln.split()) == 41 and set(ln.split()[1:]) <= {"1", "-1"} for ln in attr[2:])
    part = (roots["celeba"] / "list_eval_partition.txt").read_text().split()
    assert part[1::2].count("0") == n["train"] and part[1::2].count("2") == n["test"]
    assert (roots["celeba"] / "img_align_celeba" / "000001.jpg").is_file()
    modelled = (roots["celeba"] / "faceptor_modelled_attributes.txt").read_text().split()
    assert modelled == list(SYNTH_ATTRIBUTES)

    names = sorted(p.name for p in (roots["utkface"] / "UTKFace").iterdir())
    assert len(names) == count
    assert all(re.fullmatch(r"\d{1,3}_[01]_[0-4]_\d{17}\.jpg\.chip\.jpg", nm) for nm in names)

    labels = (roots["rafdb"] / "basic" / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert len(labels) == count
    for ln in labels:
        m = re.fullmatch(r"(train|test)_(\d{5})\.jpg ([1-7])", ln)
        assert m is not None
        assert (roots["rafdb"] / "basic" / "Image" / "aligned" / f"{m[1]}_{m[2]}_aligned.jpg").is_file()
    with pytest.raises(ValueError):
        export_dataset("wider", tmp_path / "x")


def test_preview_sheet(tmp_path) -> None:
    path = make_preview(tmp_path / "sheet.png", count=6, size=48, columns=3)
    im = Image.open(path)
    assert im.mode == "RGB" and im.size[0] == 3 * 2 * 48 + 2 * 4 and im.size[1] > 2 * 48
