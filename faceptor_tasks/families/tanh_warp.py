"""The tanh face warp of FaRL and the Faceptor reference (LaPa): the core's :mod:`faceptor_core.warp`, re-exported
for the families (one implementation for training transforms, metrics and photo inference)."""

from faceptor_core.warp import (  # noqa: F401
    ARCTANH_CLIP,
    Maps,
    crop_maps,
    original_maps,
    remap,
    tanh_compress,
    tanh_expand,
    unwarp_points,
    warp_points,
    warp_to_crop,
    warp_to_original,
)
