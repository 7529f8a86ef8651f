"""Prediction records follow the versioned JSON Schema shipped in the package, for every kind of result."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import jsonschema
import numpy as np
import pytest
import skimage.data

from faceptor_core import predictions as P
from faceptor_core.photo import SCHEMA_VERSION, photo_record, prediction_schema
from faceptor_core.photo.records import dumps
from tests.conftest import tiny_build
from tests.toytasks import toy_specs


@dataclass(frozen=True)
class ColourName(P.Prediction):
    name: str = ""

    def item(self, i: int) -> dict:
        return {"colour": self.name}


@pytest.fixture(scope="module")
def records():
    toys = toy_specs()
    model = tiny_build(
        [
            "landmarks_300w",
            "parsing_lapa",
            "age_morph2",
            "expression_rafdb",
            "attributes_celeba",
            "recognition_ms1mv3",
            *toys,
        ]
    )
    model.output_decoders["toy_channel"] = lambda raw, hw: ColourName("toy_channel", "red")  # a plugin's own decoder
    astro, cat = model.analyze([skimage.data.astronaut(), skimage.data.chelsea()])
    return model, astro, cat


def validator():
    schema = prediction_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_result_kind_validates(records):
    model, astro, cat = records
    record = json.loads(
        dumps(photo_record(astro, model=model, source="group.jpg", files={"overlay": "group.overlay.png"}))
    )
    validator().validate(record)
    assert record["version"] == SCHEMA_VERSION and record["photo"] == {
        "source": "group.jpg",
        "width": 512,
        "height": 512,
    }
    kinds = {name: r["kind"] for name, r in record["faces"][0]["tasks"].items()}
    assert kinds == {
        "landmarks_300w": "landmarks",
        "parsing_lapa": "parsing",
        "age_morph2": "age",
        "expression_rafdb": "classification",
        "attributes_celeba": "multilabel",
        "recognition_ms1mv3": "embedding",
        "toy_brightness": "regression",
        "toy_channel": "custom",
    }
    face = record["faces"][0]
    assert face["tasks"]["age_morph2"]["unit"] == "years" and face["tasks"]["landmarks_300w"]["unit"] == "px"
    assert len(face["tasks"]["recognition_ms1mv3"]["embedding"]) == 512
    assert face["tasks"]["toy_channel"] == {"kind": "custom", "frame": "crop", "value": {"colour": "red"}}
    assert record["tasks"]["recognition_ms1mv3"]["crop"]["method"] == "points"
    assert record["parsing"]["parsing_lapa"]["labels"][0] == "background"
    lean = photo_record(astro, embeddings=False)
    validator().validate(lean)
    assert "embedding" not in lean["faces"][0]["tasks"]["recognition_ms1mv3"]


def test_a_photo_without_faces_validates_with_no_faces(records):
    model, _, cat = records
    record = photo_record(cat, model=model)
    validator().validate(record)
    assert record["faces"] == [] and record["parsing"] == {}


def test_the_schema_rejects_what_readers_could_not_rely_on(records):
    model, astro, _ = records
    good = photo_record(astro, model=model)
    for damage in (
        lambda r: r.update(version=2),
        lambda r: r["faces"][0].pop("box"),
        lambda r: r["faces"][0]["tasks"]["age_morph2"].update(unit="months"),
        lambda r: r["faces"][0].update(flags=["blurry"]),
    ):
        bad = copy.deepcopy(good)
        damage(bad)
        with pytest.raises(jsonschema.ValidationError):
            validator().validate(bad)


def test_records_keep_lists_of_numbers_on_one_line(records):
    _, astro, _ = records
    text = dumps(photo_record(astro))
    assert '"box": [' in text and "\n" not in text.split('"box": [')[1].split("]")[0]
    assert json.loads(text) == json.loads(json.dumps(photo_record(astro)))
    np.testing.assert_allclose(json.loads(text)["faces"][0]["box"], astro[0].box, atol=1e-3)
