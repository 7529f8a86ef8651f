"""Loading pretrained encoder weights: timm layout or OpenAI-CLIP / FaRL layout, never unpickling objects."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .model.encoder import ViTEncoder, resize_pos_grid


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: encoder weights not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a tensors-only checkpoint ({exc})") from exc
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def clip_to_encoder_keys(state: dict[str, torch.Tensor], prefix: str = "visual.") -> dict[str, torch.Tensor]:
    """OpenAI-CLIP visual-tower keys (``visual.conv1.weight`` ...) -> :class:`ViTEncoder` keys."""
    out: dict[str, torch.Tensor] = {}
    simple = {
        "conv1.weight": "patch_embed.weight",
        "class_embedding": "cls_token",
        "positional_embedding": "pos_embed",
        "ln_pre.weight": "norm_pre.weight",
        "ln_pre.bias": "norm_pre.bias",
        "ln_post.weight": "ln_post.weight",
        "ln_post.bias": "ln_post.bias",
    }
    block = {
        "ln_1": "norm1", "ln_2": "norm2", "attn.in_proj_weight": "attn.qkv.weight",
        "attn.in_proj_bias": "attn.qkv.bias", "attn.out_proj": "attn.proj",
        "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
    }
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        if k in simple:
            name = simple[k]
            if name == "cls_token":
                value = value.reshape(1, 1, -1)
            elif name == "pos_embed":
                value = value.unsqueeze(0)
            out[name] = value
        elif k == "proj":
            out["proj.weight"] = value.t().contiguous()
        elif m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)", k):
            rest = m.group(2)
            for src, dst in block.items():
                if rest.startswith(src):
                    rest = dst + rest[len(src):]
                    break
            out[f"blocks.{m.group(1)}.{rest}"] = value
    return out


def timm_to_encoder_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm VisionTransformer keys -> :class:`ViTEncoder` keys (heads dropped)."""
    out = {}
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            out["patch_embed." + key[len("patch_embed.proj."):]] = value
        elif key.startswith(("blocks.", "norm_pre.", "cls_token", "pos_embed")):
            out[key] = value
        elif key.startswith("norm."):
            out["ln_post." + key[len("norm."):]] = value
    return out


def load_encoder_weights(encoder: ViTEncoder, path: str | os.PathLike) -> list[str]:
    """Load pretrained weights into ``encoder``; the position table is resized to the encoder's grid.

    Returns the encoder keys the file did not provide. Raises when nothing matches.
    """
    path = Path(path)
    state = _read_state(path)
    mapped = clip_to_encoder_keys(state) if any(k.startswith("visual.") for k in state) else timm_to_encoder_keys(state)
    if not mapped:
        raise ValueError(f"{path}: no encoder weights found (expected OpenAI-CLIP 'visual.*' or timm ViT keys)")
    own = encoder.state_dict()
    if "pos_embed" in mapped and mapped["pos_embed"].shape != own["pos_embed"].shape:
        pos = mapped["pos_embed"]
        grid = int(round((own["pos_embed"].shape[1] - 1) ** 0.5))
        mapped["pos_embed"] = torch.cat([pos[:, :1], resize_pos_grid(pos[:, 1:], grid)], dim=1)
    bad = [f"{k}: file {tuple(v.shape)} vs encoder {tuple(own[k].shape)}" for k, v in mapped.items()
           if k in own and v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{path}: shape mismatches: {'; '.join(bad[:5])}")
    unknown = [k for k in mapped if k not in own]
    if unknown:
        raise ValueError(f"{path}: keys the encoder does not have: {unknown[:5]}")
    encoder.load_state_dict(mapped, strict=False)
    return [k for k in own if k not in mapped]
