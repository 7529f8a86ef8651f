"""Canonical face geometry of SynthFaces: the 68 landmarks and every painted shape, from one set of curves.

Each facial part is a parametric curve (:mod:`.curves`); its landmarks are samples of that curve at fixed
parameters and its polygon is a dense sampling of the same curve, so landmarks and the parsing map cannot
disagree. Coordinates are canonical (see :mod:`.identity`); :func:`.pose.pose_transform` maps them to
pixels. The parts that depend on the identity only are in :mod:`.head` (cached per person), those that move
with the expression and the gaze in :mod:`.features`; :func:`face_geometry` assembles them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import numpy as np

from .curves import Array
from .features import (
    EXPRESSION_PARAMS,
    TEETH_EXPRESSIONS,
    brows,
    expression_lines,
    eyes,
    iris_centres,
    jaw_landmarks,
    mouth,
)
from .head import static_geometry
from .identity import Identity

__all__ = ["MOUTH_OPEN", "NARROW_EYES", "FaceGeometry", "face_geometry"]

#: Mouth opening (canonical units at the lip centre) from which Mouth_Slightly_Open is set.
MOUTH_OPEN = 0.03
#: Eye opening / eye width ratio under which Narrow_Eyes is set.
NARROW_EYES = 0.3


@dataclass(frozen=True)
class FaceGeometry:
    """Canonical landmarks (68 x 2) and polygons (N x 2) of one face, plus the values labels are made from.

    After :meth:`transformed` every array holds pixel coordinates instead.
    """

    landmarks: Array
    face: Array
    hair_back: Array
    scalp: Array | None
    hair_front: Array | None
    neck: Array
    torso: Array
    brows: tuple[Array, Array]
    eyes: tuple[Array, Array]
    iris_centres: Array  # 2 x 2
    nose: Array
    nostrils: tuple[Array, Array]
    upper_lip: Array
    lower_lip: Array
    inner_mouth: Array | None
    teeth: Array | None
    lip_line: Array
    mustache: Array | None
    goatee: Array | None
    beard: Array | None
    hat: Array | None
    glasses: tuple[Array, Array] | None
    wrinkles: tuple[Array, ...]
    cheeks: tuple[Array, Array]
    iris_radius: float
    mouth_open: float
    eye_ratio: float

    def transformed(self, tf) -> FaceGeometry:
        """The same geometry mapped by ``tf`` (one call over all points)."""
        arrays: list[Array] = []
        slots = []
        for name in _ARRAY_FIELDS:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                slots.append((name, -1, len(arrays)))
                arrays.append(v)
            elif v is not None:
                slots.append((name, len(v), len(arrays)))
                arrays.extend(v)
        bounds = np.cumsum([0] + [len(a) for a in arrays]).tolist()
        pts = tf(np.concatenate(arrays))
        parts = [pts[bounds[i] : bounds[i + 1]] for i in range(len(arrays))]
        out = copy.copy(self)
        for name, n, i in slots:
            object.__setattr__(out, name, parts[i] if n < 0 else tuple(parts[i : i + n]))
        return out


_ARRAY_FIELDS = tuple(f.name for f in fields(FaceGeometry) if f.type not in ("float",))


def face_geometry(
    ident: Identity, expression: str, intensity: float, gaze: Array | tuple[float, float], open_scale: float = 1.0
) -> FaceGeometry:
    """Canonical geometry of ``ident`` with an expression (``intensity`` 0..1) and gaze (pitch, yaw, radians).

    ``open_scale`` scales the expression's mouth opening (0 gives a closed mouth).
    """
    st = static_geometry(ident)
    e = EXPRESSION_PARAMS[expression]
    k = float(intensity)
    opening = float(intensity) * e.mouth_open * open_scale
    jaw, face = jaw_landmarks(st.outline, opening)
    eye = eyes(ident, e, k)
    brow = brows(ident, e, k, eye.top)
    mth = mouth(ident, e, k, opening, st.nose.base_y, expression in TEETH_EXPRESSIONS)
    lm = np.concatenate([jaw, brow.landmarks, st.nose.landmarks, eye.landmarks, mth.landmarks])
    lines = expression_lines(ident, expression, k, mth.width, lm[54, 1], st.nose.base_y)
    hair_, beard = st.hair, st.facial_hair
    return FaceGeometry(
        landmarks=lm,
        face=face,
        hair_back=hair_.back,
        scalp=hair_.scalp,
        hair_front=hair_.front,
        neck=st.neck,
        torso=st.torso,
        brows=brow.polygons,
        eyes=eye.polygons,
        iris_centres=iris_centres(ident, gaze),
        nose=st.nose.outline,
        nostrils=st.nose.nostrils,
        upper_lip=mth.upper_lip,
        lower_lip=mth.lower_lip,
        inner_mouth=mth.inner_mouth,
        teeth=mth.teeth,
        lip_line=lm[[48, 60, 61, 62, 63, 64, 54]],
        mustache=beard.mustache,
        goatee=beard.goatee,
        beard=beard.beard,
        hat=st.hat,
        glasses=st.glasses,
        wrinkles=st.wrinkles + lines,
        cheeks=st.cheeks,
        iris_radius=ident.eye_w * 0.48,
        mouth_open=opening,
        eye_ratio=float(ident.eye_h * eye.opening * 1.9 / (2 * ident.eye_w)),
    )
