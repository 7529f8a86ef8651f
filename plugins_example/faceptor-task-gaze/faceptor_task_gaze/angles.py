"""Gaze angles and vectors. Convention (as in MPIIGaze/ETH-XGaze): camera looks along +z, y points down;
``g = (-cos(pitch) sin(yaw), -sin(pitch), -cos(pitch) cos(yaw))`` is the unit direction the eyes look in."""

from __future__ import annotations

import numpy as np
import torch


def angles_to_vector(angles: torch.Tensor) -> torch.Tensor:
    """``... x 2`` (pitch, yaw) radians -> ``... x 3`` unit gaze vectors."""
    pitch, yaw = angles[..., 0], angles[..., 1]
    return torch.stack((-pitch.cos() * yaw.sin(), -pitch.sin(), -pitch.cos() * yaw.cos()), dim=-1)


def vector_to_angles(vectors: np.ndarray) -> np.ndarray:
    """``... x 3`` gaze directions (any length) -> ``... x 2`` (pitch, yaw) radians."""
    v = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.stack((np.arcsin(-v[..., 1]), np.arctan2(-v[..., 0], -v[..., 2])), axis=-1).astype(np.float32)


def angular_error_degrees(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between the 3-D gaze vectors of two ``B x 2`` (pitch, yaw) batches."""
    cos = (angles_to_vector(pred.double()) * angles_to_vector(target.double())).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos)).float()
