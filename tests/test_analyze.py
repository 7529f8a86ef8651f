"""analyze(): photos of any size in, every face out, one model pass per input size (tiny random models:
plumbing and geometry, not accuracy)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

import faceptor_core
from faceptor_core.photo import CUT_BY_BORDER, SMALL
from tests.conftest import tiny_build

PAPER = ["landmarks_300w", "parsing_lapa", "age_morph2", "expression_rafdb", "attributes_celeba", "recognition_ms1mv3"]


@pytest.fixture(scope="module")
def model():
    return tiny_build(PAPER)


def test_astronaut_has_one_face_and_the_cat_and_the_coffee_none(model, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    astro, cat, coffee = model.analyze([path, Image.fromarray(skimage.data.chelsea()), skimage.data.coffee()])
    assert (len(astro), len(cat), len(coffee)) == (1, 0, 0)
    assert astro.name == str(path) and (astro.height, astro.width) == (512, 512)
    assert cat.faces == [] and cat.parsing == {} and coffee.faces == []  # no face: no age, no anything
    face = astro[0]
    assert face.face.source == "detector" and face.score > 0.7 and face.flags == ()
    x1, y1, x2, y2 = face.box
    lm = face["landmarks_300w"].points
    assert lm.shape == (68, 2)
    assert ((lm > [x1, y1]) & (lm < [x2, y2])).all()  # on her face
    assert 0 <= face["age_morph2"].age <= 100
    assert abs(sum(face["expression_rafdb"].probabilities.values()) - 1) < 1e-5
    assert abs(np.linalg.norm(face["recognition_ms1mv3"].embedding) - 1) < 1e-5
    parsing = astro.parsing["parsing_lapa"]
    assert parsing.labels.shape == parsing.faces.shape == (512, 512)
    assert set(np.unique(parsing.faces)) <= {-1, 0}
    rx0, ry0, rx1, ry1 = face["parsing_lapa"].region
    assert rx0 < x1 and ry0 < y1 and rx1 > x2 and ry1 > y2  # FaRL's crop holds the whole head
    assert {"detect", "align", "model", "map"} <= set(astro.timings)


def test_all_faces_of_all_photos_go_through_one_encoder_pass_per_input_size():
    model = tiny_build(["synth_age", "synth_expression", "synth_identity", "synth_landmarks", "synth_parsing"])
    calls = []
    model.encoder.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    photos = [np.full((200, 300, 3), 90, np.uint8), np.full((120, 90, 3), 160, np.uint8)]
    faces = [[[20, 20, 80, 90], [150, 40, 210, 110], [100, 100, 160, 170]], [[10, 10, 70, 80]]]
    results = faceptor_core.analyze(model, photos, faces=faces)
    assert [len(r) for r in results] == [3, 1]
    # 32 px: age, expression and identity share SynthFaces' crop (4 rows); 64 px: landmarks (box) + parsing
    assert sorted(calls) == [(4, 3, 32, 32), (8, 3, 64, 64)]
    for r in results:
        for f in r:
            assert set(f.tasks) == set(model.task_names)
            np.testing.assert_array_equal(f.crops["synth_age"], f.crops["synth_expression"])


def test_a_face_gets_the_same_results_alone_or_in_a_crowd(model):
    photo = skimage.data.astronaut()
    faces = [
        {"box": [178, 63, 268, 176]},
        {"points": [[300, 300], [340, 300], [320, 325], [303, 350], [337, 350]]},
        [10, 400, 60, 460],
    ]
    crowd = model.analyze(photo, faces=faces)[0]
    alone = model.analyze(photo, faces=[faces[1]])[0]
    a, b = crowd[1], alone[0]
    np.testing.assert_allclose(a["landmarks_300w"].points, b["landmarks_300w"].points, atol=1e-3)
    np.testing.assert_allclose(a["recognition_ms1mv3"].embedding, b["recognition_ms1mv3"].embedding, atol=1e-4)
    assert abs(a["age_morph2"].age - b["age_morph2"].age) < 1e-3
    assert crowd.faces_from == "given" and crowd[1].score is None


def test_small_and_border_cut_faces_are_flagged_not_dropped(model):
    photo = np.full((240, 320, 3), 128, np.uint8)
    faces = [[100, 60, 200, 180], [5, 5, 25, 30], [280, 100, 360, 200]]
    [r] = model.analyze(photo, faces=faces, min_face=32)
    assert [f.flags for f in r] == [(), (SMALL,), (CUT_BY_BORDER,)]
    assert all("age_morph2" in f.tasks for f in r)


def test_without_detection_each_photo_is_one_face_cropped_like_predict(model):
    """``detector=None``: the photo is an aligned face; analyze then agrees with model.predict (to the
    difference between their resamplings: an OpenCV warp of uint8 pixels vs torch's antialiased resize)."""
    rng = np.random.default_rng(0)
    crops = [(rng.random((96, 80, 3)) * 255).astype(np.uint8), (rng.random((50, 60, 3)) * 255).astype(np.uint8)]
    results = model.analyze(crops, detector=None)
    predicted = model.predict(crops)
    for i, r in enumerate(results):
        assert r.faces_from == "whole_image" and len(r) == 1 and r[0].face.source == "whole_image"
        np.testing.assert_allclose(
            r[0]["landmarks_300w"].points, predicted["landmarks_300w"].points[i].numpy(), atol=0.25
        )
        assert abs(r[0]["age_morph2"].age - float(predicted["age_morph2"].age[i])) < 0.5


def test_malformed_faces_name_the_photo_face_and_field(model):
    photo = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"photo0: face 1\.points: expected five \[x, y\] pairs"):
        model.analyze(photo, faces=[[0, 0, 10, 10], {"points": [[1, 2]]}])
    with pytest.raises(ValueError, match=r"photo0: face 0\.box: x2 > x1 and y2 > y1 needed"):
        model.analyze(photo, faces=[{"box": [10, 10, 5, 20]}])
    with pytest.raises(ValueError, match=r"face 0: unknown field\(s\) \['landmarks'\]"):
        model.analyze(photo, faces=[{"landmarks": []}])
    with pytest.raises(ValueError, match="one entry .* per photo: 2 photo"):
        model.analyze([photo, photo], faces=[[[0, 0, 9, 9]]])


def test_predict_takes_images_of_different_sizes(model):
    rng = np.random.default_rng(1)
    a, b = (rng.random((40, 50, 3)) * 255).astype(np.uint8), (rng.random((64, 30, 3)) * 255).astype(np.uint8)
    both = model.predict([a, b, a])
    alone = model.predict(b)
    torch.testing.assert_close(both["landmarks_300w"].points[1], alone["landmarks_300w"].points[0], atol=1e-4, rtol=0)
    labels = both["parsing_lapa"].labels
    assert [tuple(x.shape) for x in labels] == [(40, 50), (64, 30), (40, 50)]
    assert torch.equal(labels[1], alone["parsing_lapa"].labels[0])
    assert set(both["parsing_lapa"].item(1)) == {"class_pixels"}


def test_photos_of_every_accepted_form_decode_alike():
    from faceptor_core.photo import load_photo

    grey16 = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    want = ((grey16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    for photo in (
        Image.fromarray(grey16),
        grey16,
        torch.from_numpy(grey16.astype(np.float32) / 65535)[None].expand(3, -1, -1),
    ):
        arr, _ = load_photo(photo)
        assert arr.shape == (48, 64, 3) and arr.dtype == np.uint8
        np.testing.assert_allclose(arr[..., 0].astype(int), want.astype(int), atol=1)
    with pytest.raises(TypeError, match="boolean"):
        load_photo(np.zeros((8, 8, 3), bool))
