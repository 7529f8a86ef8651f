"""Face detectors of the built-in plugin (registered through ``register_detectors``, as a third-party
plugin would)."""

from __future__ import annotations

from faceptor_core.detect import DetectorSpec

from .yunet import SPEC as YUNET


def builtin_detectors() -> list[DetectorSpec]:
    return [YUNET]
