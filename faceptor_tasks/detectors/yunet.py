"""YuNet (OpenCV Zoo ``face_detection_yunet_2023mar.onnx``, MIT, Shiqi Yu) through ``cv2.FaceDetectorYN``.

The ONNX file ships with this package, beside its licence (``LICENSE-yunet.txt``); its SHA-256 is checked
every time it is loaded and the detector is built from the very bytes that were checked. Nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import cv2
import numpy as np

from faceptor_core.detect import Detections, DetectorError, DetectorSpec

MODEL_FILE = "face_detection_yunet_2023mar.onnx"
MODEL_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


def model_bytes() -> bytes:
    """The packaged model, verified against :data:`MODEL_SHA256`."""
    ref = resources.files(__package__) / MODEL_FILE
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise DetectorError(f"{ref}: YuNet model missing ({exc.strerror or exc}); reinstall faceptor") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise DetectorError(
            f"{ref}: sha256 {digest} is not the expected {MODEL_SHA256}; the file is damaged or "
            "was replaced: reinstall faceptor"
        )
    return data


class YuNetDetector:
    """Faces with boxes, scores and five points (eye centres, nose tip, mouth corners; image-left first).

    Args:
        score_threshold: faces scoring lower are dropped (0.7 left no false positive on real group photos).
        nms_threshold: IoU above which overlapping detections are merged.
        top_k: candidates kept before non-maximum suppression.
        max_size: a photo whose longer side exceeds this is shrunk (area) for detection, and the results are
            mapped back to its pixels; faces smaller than about ``10 * longer side / max_size`` px are then
            missed. ``None`` detects at full resolution.

    One instance is not thread-safe (OpenCV's detector keeps the input size); use one per thread.
    """

    def __init__(
        self, score_threshold: float = 0.7, nms_threshold: float = 0.3, top_k: int = 5000, max_size: int | None = 1280
    ):
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_size is not None and max_size < 32:
            raise ValueError(f"max_size must be at least 32 px, got {max_size}")
        self.score_threshold, self.max_size = float(score_threshold), max_size
        data = np.frombuffer(model_bytes(), np.uint8)
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns about targets
        try:
            self._net = cv2.FaceDetectorYN.create(
                "onnx", data, np.zeros(0, np.uint8), (320, 320), self.score_threshold, float(nms_threshold), int(top_k)
            )
        finally:
            cv2.utils.logging.setLogLevel(level)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces of an ``H x W x 3`` uint8 RGB image, sorted by decreasing score."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"YuNet takes H x W x 3 uint8 RGB images, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        k = 1.0
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if self.max_size is not None and max(h, w) > self.max_size:
            k = self.max_size / max(h, w)
            bgr = cv2.resize(bgr, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        sh, sw = bgr.shape[:2]
        self._net.setInputSize((sw, sh))
        _, faces = self._net.detect(bgr)
        if faces is None or len(faces) == 0:
            return Detections.empty()
        faces = faces[np.argsort(-faces[:, 14], kind="stable")].astype(np.float64)
        kx, ky = sw / w, sh / h
        boxes = faces[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        pts = faces[:, 4:14].reshape(-1, 5, 2)
        scale = np.array([kx, ky])
        # resized pixel coordinates -> photo pixels (pixel areas kept, as faceptor_core.geometry.resize_matrix)
        boxes = ((boxes.reshape(-1, 2, 2) + 0.5) / scale - 0.5).reshape(-1, 4)
        pts = (pts + 0.5) / scale - 0.5
        return Detections(boxes, faces[:, 14], pts)


SPEC = DetectorSpec(
    name="yunet",
    factory=YuNetDetector,
    license="MIT (Shiqi Yu, OpenCV Zoo)",
    description="YuNet 2023mar via cv2.FaceDetectorYN: boxes, scores and five points; ships with faceptor",
)
