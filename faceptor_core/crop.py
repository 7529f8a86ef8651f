"""One crop definition per task, used by its training transforms and by photo inference.

A :class:`CropSpec` says where a task's face crops come from. A crop is a 2x3 affine from photo pixels to
crop pixels (see :mod:`faceptor_core.geometry`), computed by :meth:`CropSpec.matrix` from what is known of
the face:

- five points (eye centres, nose tip, mouth corners; image-left first): a least-squares similarity maps
  them (or the eyes and the mouth centre, ``anchors="eyes_mouth"``) onto ``template``, given in the pixel
  coordinates of a ``frame`` (width x height, the geometry of the task's aligned training images), and the
  frame is then resized to the crop as a whole training image is;
- a face box: the box, squared about its centre (or stretched, ``box_square=False``) and shifted by
  ``box_offset`` (in box sides), fills ``box_scale`` of the crop;
- neither: the whole image is the face (an aligned training image, or a photo that is already a crop).

``method`` says which of points and box a task uses when a face has both (at inference, a detection
always has both); a training item supplies what its dataset has. ``warp_factor > 0`` adds FaRL's tanh warp after
the affine (:mod:`faceptor_core.warp`: the face fills the crop's centre, the rest of the photo is squeezed into
its border), as the reference's LaPa crops; :func:`cut` applies the whole crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .geometry import apply_affine, box_to_crop, compose, invert_affine, resize_matrix, similarity_transform, square_box
from .geometry import warp_image as _warp_affine
from .warp import unwarp_points, warp_points, warp_to_crop

#: FaRL's five-point face template (eye centres, nose tip, mouth corners) as published, in 512-px units.
FARL_POINTS_512 = ((196.0, 226.0), (316.0, 226.0), (256.0, 286.0), (220.0, 360.4), (292.0, 360.4))
#: Order of the five points every detector returns and every template lists.
POINT_NAMES = ("left_eye", "right_eye", "nose_tip", "left_mouth", "right_mouth")


def farl_template(face_scale: float = 1.0, size: int = 512) -> tuple[tuple[float, float], ...]:
    """FaRL's template scaled by ``face_scale`` about the crop centre, in the pixel coordinates of a
    ``size``-px frame, as FaRL maps it: ``[-1, 1]`` onto the centres of the first and last pixels."""
    out = []
    for x, y in FARL_POINTS_512:
        tx, ty = (x / 256.0 - 1.0) * face_scale, (y / 256.0 - 1.0) * face_scale
        out.append(((tx + 1.0) * (size - 1) / 2.0, (ty + 1.0) * (size - 1) / 2.0))
    return tuple(out)


def anchor_points(points5: np.ndarray, anchors: str) -> np.ndarray:
    """The points a template is fitted on: all five, or the eyes and the mouth centre."""
    pts = np.asarray(points5, np.float64).reshape(5, 2)
    if anchors == "five":
        return pts
    return np.stack([pts[0], pts[1], (pts[3] + pts[4]) / 2.0])


class CropSpec(BaseModel):
    """Where a task's face crop comes from (see the module docstring); the crop side is the task's
    input size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["points", "box"] = Field(
        default="points", description="What a face with both points and box is cropped from."
    )
    anchors: Literal["five", "eyes_mouth"] = Field(
        default="five", description="Points fitted to the template: all five, or eyes + mouth centre."
    )
    template: tuple[tuple[float, float], ...] = Field(
        default=farl_template(), description="Anchor positions in frame pixels (pixel centres at integers)."
    )
    frame: tuple[float, float] = Field(
        default=(512.0, 512.0), description="Width and height of the frame the template lives in."
    )
    box_scale: float = Field(default=1.0, gt=0.0, le=10.0, description="Fraction of the crop the squared box fills.")
    box_offset: tuple[float, float] = Field(
        default=(0.0, 0.0), description="Shift of the box centre, in sides of the squared box (x, y)."
    )
    box_square: bool = Field(
        default=True, description="Square the box about its centre (False: its width and height are stretched)."
    )
    warp_factor: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Tanh warp of the aligned crop's border (0: the plain affine crop)."
    )
    source: str = Field(default="", description="Where this geometry comes from (shown in the docs).")

    @model_validator(mode="after")
    def _valid(self) -> CropSpec:
        need = 5 if self.anchors == "five" else 3
        if len(self.template) != need:
            raise ValueError(f"anchors {self.anchors!r} need a template of {need} points, got {len(self.template)}")
        t = np.asarray(self.template, np.float64)
        if not np.isfinite(t).all():
            raise ValueError("template points must be finite")
        if float(((t - t.mean(0)) ** 2).sum()) < 1e-6:
            raise ValueError("template points must not coincide")
        if not all(math.isfinite(v) and v > 0 for v in self.frame):
            raise ValueError(f"frame must be a positive (width, height), got {self.frame}")
        if not all(math.isfinite(v) for v in self.box_offset):
            raise ValueError("box_offset must be finite")
        return self

    # -- the crop function -----------------------------------------------------------------------------
    def align_matrix(self, points5: np.ndarray, size: int) -> np.ndarray:
        """Five points -> the crop (similarity onto the template, then frame -> ``size x size``)."""
        src = anchor_points(points5, self.anchors)
        sim = similarity_transform(src, np.asarray(self.template, np.float64))
        fw, fh = self.frame
        if (fw, fh) == (size, size):
            return sim
        return compose(resize_matrix(fh, fw, size), sim)

    def box_matrix(self, box: Sequence[float], size: int) -> np.ndarray:
        """A face box -> the crop (squared or stretched, shifted by ``box_offset``, filling ``box_scale``)."""
        x1, y1, x2, y2 = square_box(box) if self.box_square else np.asarray(box, np.float64)
        dx, dy = self.box_offset[0] * (x2 - x1), self.box_offset[1] * (y2 - y1)
        return box_to_crop((x1 + dx, y1 + dy, x2 + dx, y2 + dy), size, self.box_scale, square=self.box_square)

    def matrix(
        self,
        size: int,
        *,
        points: np.ndarray | None = None,
        box: Sequence[float] | None = None,
        image_hw: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """The 2x3 photo -> crop affine of a ``size``-px crop from what is known of the face.

        ``method`` picks between ``points`` and ``box`` when both are given; with one of them that one is
        used; with neither, the whole ``image_hw`` image is resized to the crop.
        """
        if points is not None and (self.method == "points" or box is None):
            return self.align_matrix(points, size)
        if box is not None:
            return self.box_matrix(box, size)
        if image_hw is not None:
            return resize_matrix(int(image_hw[0]), int(image_hw[1]), size)
        raise ValueError("a crop needs five points, a box or the image size")


# -- applying a crop (affine, then the optional tanh warp) --------------------------------------------------
def cut(image: np.ndarray, m: np.ndarray, crop: CropSpec, size: int, interpolation: int | None = None) -> np.ndarray:
    """The ``size x size`` crop of ``image`` with affine ``m`` (from :meth:`CropSpec.matrix`) and ``crop``'s warp."""
    import cv2

    interp = cv2.INTER_LINEAR if interpolation is None else interpolation
    if crop.warp_factor > 0:
        return warp_to_crop(image, m, crop.warp_factor, size, interp)
    return _warp_affine(image, m, size, interp)


def to_crop(points: np.ndarray, m: np.ndarray, crop: CropSpec, size: int) -> np.ndarray:
    """Photo pixels -> crop pixels (``N x 2``)."""
    if crop.warp_factor > 0:
        return warp_points(points, m, crop.warp_factor, size).astype(np.float64)
    return apply_affine(points, m)


def to_photo(points: np.ndarray, m: np.ndarray, crop: CropSpec, size: int) -> np.ndarray:
    """Crop pixels -> photo pixels (``N x 2``), the inverse of :func:`to_crop`."""
    if crop.warp_factor > 0:
        return unwarp_points(points, m, crop.warp_factor, size).astype(np.float64)
    return apply_affine(points, invert_affine(m))
