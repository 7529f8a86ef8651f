"""Photos in, every face out: :func:`analyze`, its results and the versioned JSON record of a photo."""

from .analyze import analyze, crop_groups, face_crop_matrix, task_crop
from .faces import CUT_BY_BORDER, SMALL, Face
from .inputs import load_photo
from .records import SCHEMA_VERSION, photo_record, prediction_schema
from .results import FaceResult, PhotoParsing, PhotoResult

__all__ = [
    "CUT_BY_BORDER",
    "SCHEMA_VERSION",
    "SMALL",
    "Face",
    "FaceResult",
    "PhotoParsing",
    "PhotoResult",
    "analyze",
    "crop_groups",
    "face_crop_matrix",
    "load_photo",
    "photo_record",
    "prediction_schema",
    "task_crop",
]
