"""Face detection as a plugin point, and the YuNet detector that ships with the built-in plugin."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data

import faceptor_core
from faceptor_core import Detections, DetectorError, DetectorNotFoundError, DetectorSpec, TaskRegistry, hookimpl
from faceptor_core.detect import run_detector
from faceptor_tasks.detectors import yunet


class FixedDetector:
    def __init__(self, boxes=((10, 10, 50, 60),)):
        self.boxes = boxes

    def detect(self, image):
        return Detections(np.asarray(self.boxes, np.float32), np.ones(len(self.boxes)))


class DetectorPlugin:
    def __init__(self, *specs, fail: bool = False):
        self.specs, self.fail = specs, fail

    @hookimpl
    def register_detectors(self, register):
        for s in self.specs:
            register(s)
        if self.fail:
            raise RuntimeError("model file not found")


def test_yunet_is_registered_by_the_builtin_plugin_like_any_plugin():
    reg = faceptor_core.default_registry()
    assert "yunet" in [d.name for d in reg.list_detectors()]
    assert reg.detector_owner("yunet") == "faceptor_tasks"
    assert "MIT" in reg.get_detector_spec("yunet").license
    assert reg.detector("yunet") is reg.detector("yunet")  # loaded once, reused


def test_unknown_detector_suggests_close_names():
    with pytest.raises(DetectorNotFoundError, match=r"unknown detector 'yunett'\. Did you mean: yunet\?"):
        faceptor_core.default_registry().detector("yunett")


def test_broken_and_clashing_detector_plugins_are_reported_by_name():
    reg = TaskRegistry(load_entry_points=False)
    good = DetectorSpec(name="fixed", factory=FixedDetector)
    reg.register_plugin(DetectorPlugin(good), name="a_good")
    reg.register_plugin(DetectorPlugin(DetectorSpec(name="other", factory=FixedDetector), fail=True), name="broken")
    reg.register_plugin(DetectorPlugin(DetectorSpec(name="fixed", factory=FixedDetector)), name="z_copycat")
    info = {p.name: p for p in reg.list_plugins()}
    assert info["a_good"].ok and info["a_good"].detectors == ["fixed"]
    assert "failed to register detectors: RuntimeError: model file not found" in info["broken"].error
    assert info["broken"].detectors == ["other"]  # registered before the failure: kept
    assert "detector 'fixed' is registered by both plugin 'a_good' and plugin 'z_copycat'" in info["z_copycat"].error
    with pytest.raises(ValueError, match="registered by both"):
        reg.detector("fixed")


def test_factories_and_detect_that_break_their_contract_are_named():
    reg = TaskRegistry(load_entry_points=False)

    def failing(**kw):
        raise OSError("no weights")

    reg.register_plugin(
        DetectorPlugin(
            DetectorSpec(name="failing", factory=failing), DetectorSpec(name="inert", factory=lambda: object())
        ),
        name="p",
    )
    with pytest.raises(DetectorError, match=r"detector 'failing' \(plugin 'p'\) cannot be loaded: OSError: no weights"):
        reg.detector("failing")
    with pytest.raises(DetectorError, match="detector 'inert': its factory returned object, which has no detect"):
        reg.detector("inert")

    class Garbage:
        def detect(self, image):
            return [[1, 2, 3, 4]]

    with pytest.raises(DetectorError, match="detector 'garbage': detect\\(\\) must return Detections, got list"):
        run_detector(Garbage(), np.zeros((8, 8, 3), np.uint8), "garbage")
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        Detections(np.zeros((2, 4)), np.zeros(1))


def test_a_damaged_model_file_is_refused(monkeypatch):
    monkeypatch.setattr(yunet, "MODEL_SHA256", "0" * 64)
    with pytest.raises(DetectorError, match=r"face_detection_yunet_2023mar\.onnx: sha256 8f2383e4.* reinstall"):
        yunet.YuNetDetector()


def test_yunet_finds_the_astronaut_and_no_face_in_a_cat_or_a_coffee():
    det = faceptor_core.default_registry().detector("yunet")
    found = det.detect(skimage.data.astronaut())
    assert len(found) == 1 and found.scores[0] > 0.7
    (x1, y1, x2, y2), pts = found.boxes[0], found.points[0]
    assert 160 < x1 < x2 < 290 and 40 < y1 < y2 < 200  # her face (about 90 x 110 px at (178, 63))
    assert ((pts >= [x1, y1]) & (pts <= [x2, y2])).all()
    assert pts[0, 0] < pts[2, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # image-left eye and mouth corner first
    assert max(pts[0, 1], pts[1, 1]) < pts[2, 1] < min(pts[3, 1], pts[4, 1])  # eyes, then nose, then mouth
    assert len(det.detect(skimage.data.chelsea())) == 0
    assert len(det.detect(skimage.data.coffee())) == 0


def test_yunet_finds_every_face_of_a_group_scaled_rotated_and_mirrored():
    det = faceptor_core.default_registry().detector("yunet")
    astronaut = skimage.data.astronaut()
    ref = det.detect(astronaut)
    box, pts = ref.boxes[0], ref.points[0]
    side = int(1.8 * max(box[2] - box[0], box[3] - box[1]))
    x0, y0 = int((box[0] + box[2] - side) / 2), int((box[1] + box[3] - side) / 2)
    patch, ppts = astronaut[y0 : y0 + side, x0 : x0 + side], pts - [x0, y0]
    canvas = cv2.resize(skimage.data.coffee(), (900, 600))

    def placed(angle, scale, tx, ty, mirror=False):
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        t = np.array([[c, -s, tx], [s, c, ty], [0, 0, 1]])
        if mirror:
            t = t @ np.array([[-1, 0, side - 1], [0, 1, 0], [0, 0, 1]])
        cv2.warpAffine(patch, t[:2], (900, 600), dst=canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        p = ppts @ t[:2, :2].T + t[:2, 2]
        return p[[1, 0, 2, 4, 3]] if mirror else p  # mirrored: the image-left eye is the other eye

    expected = [
        placed(0, 1.0, 20, 20),
        placed(0, 0.5, 300, 40),
        placed(0.35, 1.1, 450, 250),
        placed(0, 0.9, 40, 300, mirror=True),
        placed(-0.3, 0.7, 700, 60),
    ]
    found = det.detect(canvas)
    assert len(found) == len(expected)
    matched = set()
    for p in expected:
        err = np.linalg.norm(found.points - p[None], axis=2).mean(axis=1) / np.linalg.norm(p[1] - p[0])
        j = int(err.argmin())
        assert err[j] < 0.25 and j not in matched
        matched.add(j)
