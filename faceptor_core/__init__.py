"""Faceptor: one shared encoder for every face task; tasks come from plugins.

>>> import faceptor_core
>>> model = faceptor_core.build(tasks=["landmarks_300w", "age_morph2"], encoder="vit_t16")
>>> results = model.predict(images)  # face crops -> {"landmarks_300w": LandmarkPrediction, ...}
>>> photos = faceptor_core.analyze(model, ["group.jpg"])  # photos -> every face, results in photo pixels
"""

__version__ = "0.1.0"

from .build import build, from_config, load  # noqa: E402
from .checkpoint import CheckpointError  # noqa: E402
from .command import CommandSpec  # noqa: E402
from .crop import CropSpec  # noqa: E402
from .detect import Detections, DetectorError, DetectorSpec  # noqa: E402
from .flip import FlipRule  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .model.base import FaceptorBase, WeightsMismatchError  # noqa: E402
from .model.config import DecoderConfig, EncoderConfig, ModelConfig, NaiveConfig  # noqa: E402
from .model.faceptor import Faceptor  # noqa: E402
from .model.naive import NaiveFaceptor  # noqa: E402
from .photo import FaceResult, PhotoResult, analyze, photo_record  # noqa: E402
from .registry import (  # noqa: E402
    DetectorNotFoundError,
    DuplicateTaskError,
    PluginInfo,
    TaskNotFoundError,
    TaskRegistry,
    default_registry,
    get_task,
    list_detectors,
    list_plugins,
    list_tasks,
)
from .spec import TaskHead, TaskSpec  # noqa: E402

__all__ = [
    "CheckpointError",
    "CommandSpec",
    "CropSpec",
    "DecoderConfig",
    "Detections",
    "DetectorError",
    "DetectorNotFoundError",
    "DetectorSpec",
    "DuplicateTaskError",
    "EncoderConfig",
    "FaceResult",
    "Faceptor",
    "FaceptorBase",
    "FlipRule",
    "ModelConfig",
    "NaiveConfig",
    "NaiveFaceptor",
    "PhotoResult",
    "PluginInfo",
    "TaskHead",
    "TaskNotFoundError",
    "TaskRegistry",
    "TaskSpec",
    "WeightsMismatchError",
    "__version__",
    "analyze",
    "build",
    "default_registry",
    "from_config",
    "get_task",
    "hookimpl",
    "list_detectors",
    "list_plugins",
    "list_tasks",
    "load",
    "photo_record",
]
