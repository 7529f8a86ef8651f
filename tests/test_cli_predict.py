"""``faceptor predict``: files, folders and globs in; a record per photo that validates; nothing overwritten,
never two results under one name, every written file named, a bad photo reported and the rest done."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import skimage.data
from PIL import Image

from faceptor_core.cli import main
from faceptor_core.photo import prediction_schema
from tests.conftest import tiny_build


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("predict") / "ckpt"
    tiny_build(["landmarks_300w", "parsing_lapa", "age_morph2", "recognition_ms1mv3"]).save_pretrained(path)
    return str(path)


def bomb_png() -> bytes:
    """A PNG whose header claims 40000 x 40000 pixels (a decompression bomb) with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def written(stdout: str) -> list[str]:
    return [f.strip() for line in stdout.splitlines() if " -> " in line for f in line.split(" -> ")[1].split(",")]


def test_same_names_in_different_folders_get_their_own_results(checkpoint, tmp_path, capsys):
    for folder, image in (("day1", skimage.data.astronaut()), ("day2", skimage.data.chelsea())):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "photos" / folder / "img.jpg")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "photos" / "day1" / "img.png")  # same stem, same folder
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "photos"), "--checkpoint", checkpoint, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    files = written(stdout)
    assert sorted(files) == sorted(str(p) for p in out.rglob("*") if p.is_file())  # said exactly what it wrote
    assert f"wrote {len(files)} files for 3 photo(s)" in stdout
    validator = jsonschema.Draft202012Validator(prediction_schema())
    r1 = json.loads((out / "day1" / "img.jpg.json").read_text())
    r2 = json.loads((out / "day2" / "img.json").read_text())
    r3 = json.loads((out / "day1" / "img.png.json").read_text())
    for r in (r1, r2, r3):
        validator.validate(r)
    assert r1["photo"]["source"].endswith("day1/img.jpg") and len(r1["faces"]) == 1
    assert r2["photo"]["source"].endswith("day2/img.jpg") and r2["faces"] == []
    assert r3["faces"] == []
    labels = np.asarray(Image.open(out / "day1" / r1["parsing"]["parsing_lapa"]["label_map"]))
    owners = np.asarray(Image.open(out / "day1" / r1["parsing"]["parsing_lapa"]["face_map"]))
    assert labels.shape == owners.shape == (512, 512) and set(np.unique(owners)) <= {0, 1}
    assert ((labels > 0) == (owners == 1)).all()


def test_out_in_the_input_folder_never_touches_an_input(checkpoint, tmp_path, capsys):
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "me.png")
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "cat.jpg")
    before = tree(tmp_path)
    assert main(["predict", str(tmp_path), "--checkpoint", checkpoint, "--out", str(tmp_path)]) == 0
    after = tree(tmp_path)
    assert {k: after[k] for k in before} == before
    assert {"me.json", "me.overlay.png", "cat.json", "cat.overlay.png"} <= set(after)
    capsys.readouterr()
    # a second run does not take the first run's pictures for photos
    assert main(["predict", str(tmp_path), "--checkpoint", checkpoint, "--out", str(tmp_path)]) == 0
    assert "skipped 4 picture(s) an earlier run wrote in the output folder" in capsys.readouterr().err


def test_an_output_that_would_replace_an_input_is_refused_before_anything_is_written(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photos / "me.png")
    Image.fromarray(skimage.data.chelsea()).save(photos / "me.overlay.png")  # me.png's overlay name
    before = tree(tmp_path)
    assert (
        main(
            [
                "predict",
                str(photos / "me.png"),
                str(photos / "me.overlay.png"),
                "--checkpoint",
                checkpoint,
                "--out",
                str(photos),
            ]
        )
        == 2
    )
    assert "would overwrite the input photo" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_photo_that_cannot_be_opened_is_reported_and_the_rest_goes_on(checkpoint, tmp_path, capsys):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "a.jpg")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "z.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "*.*g"), "--checkpoint", checkpoint, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "bomb.png: image too large to decode safely" in captured.err
    assert (out / "a.json").is_file() and (out / "z.json").is_file() and not (out / "bomb.json").exists()
    assert "2 photo(s)" in captured.out and "1 photo(s) failed" in captured.out


def test_given_faces_replace_detection(checkpoint, tmp_path, capsys):
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "cup.jpg")
    faces = tmp_path / "faces.json"
    faces.write_text(
        json.dumps(
            {
                "cup.jpg": [
                    {"box": [100, 100, 220, 240]},
                    {"points": [[300, 150], [350, 150], [325, 180], [305, 210], [345, 210]]},
                ]
            }
        )
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "cup.jpg"),
                "--checkpoint",
                checkpoint,
                "--faces",
                str(faces),
                "--out",
                str(out),
                "--no-embeddings",
                "--no-overlay",
            ]
        )
        == 0
    )
    record = json.loads((out / "cup.json").read_text())
    assert record["faces_from"] == "given" and len(record["faces"]) == 2 and record["files"]["overlay"] is None
    assert "embedding" not in record["faces"][0]["tasks"]["recognition_ms1mv3"]
    faces.write_text(json.dumps({"mug.jpg": []}))
    assert (
        main(
            ["predict", str(tmp_path / "cup.jpg"), "--checkpoint", checkpoint, "--faces", str(faces), "--out", str(out)]
        )
        == 2
    )
    assert "faces.json: key 'mug.jpg' names none of the photos" in capsys.readouterr().err
    faces.write_text(json.dumps({"cup.jpg": [{"box": [1, 2, 3]}]}))
    assert (
        main(
            ["predict", str(tmp_path / "cup.jpg"), "--checkpoint", checkpoint, "--faces", str(faces), "--out", str(out)]
        )
        == 2
    )
    assert "faces.json: cup.jpg: face 0.box: expected [x1, y1, x2, y2]" in capsys.readouterr().err


def test_nothing_to_predict_is_an_error(checkpoint, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nothing*.jpg"), "--checkpoint", checkpoint]) == 2
    err = capsys.readouterr().err
    assert "nothing*.jpg: no such file or folder, and no file matches it" in err


def test_a_bad_checkpoint_task_or_detector_is_one_line(checkpoint, tmp_path, capsys):
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "cup.jpg")
    photo = str(tmp_path / "cup.jpg")
    assert main(["predict", photo, "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main(["predict", photo, "--checkpoint", checkpoint, "--tasks", "age_morph"]) == 2
    assert "unknown task 'age_morph'. Did you mean: age_morph2?" in capsys.readouterr().err
    assert main(["predict", photo, "--checkpoint", checkpoint, "--detector", "yunett"]) == 2
    assert "unknown detector 'yunett'. Did you mean: yunet?" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["predict", photo, "--checkpoint", checkpoint, "--tasks", "age_morph2", "--out", str(out)]) == 0
    record = json.loads((out / "cup.json").read_text())
    assert list(record["tasks"]) == ["age_morph2"]
