"""Interoperability: the authors' checkpoints (:mod:`.official`) and ONNX export (:mod:`.onnx_export`)."""

from .official import ConversionError, ConversionReport, convert_official, save_converted
from .onnx_export import export_onnx, verify_onnx

__all__ = ["ConversionError", "ConversionReport", "convert_official", "export_onnx", "save_converted", "verify_onnx"]
