"""Patch embeddings for from-scratch CPU presets: the conv stem (stride-2 3x3 convs, optionally with residual
blocks) and the ResNet stem (ResNet-18's first three stages). Each maps ``B x 3 x H x W`` to the token grid
``B x C x H/p x W/p`` and can also return its map at a quarter of the patch size for the pixel decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """ResNet's basic block: two 3x3 convs with BatchNorm and a shortcut (identity, or a 1x1 conv + BatchNorm when the
    width or the stride changes). With ``zero_init`` the second BatchNorm starts at zero, so a new block starts as
    its shortcut (the conv stem's blocks); without, it starts at one, as torchvision's ResNet (the ResNet stem)."""

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, zero_init: bool = True):
        super().__init__()
        out = out_channels or channels
        self.conv1 = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        if zero_init:
            nn.init.zeros_(self.bn2.weight)
        self.shortcut: nn.Module | None = None
        if out != channels or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu((x if self.shortcut is None else self.shortcut(x)) + self.bn2(self.conv2(y)))


class ConvStem(nn.Sequential):
    """A convolutional patch embedding: 3x3 stride-2 convs (BatchNorm, ReLU) down to the patch grid, then a
    1x1 conv to the token width ("early convolutions help transformers see better", Xiao et al. 2021). With
    ``blocks``, each stride-2 conv is followed by that many residual blocks (a hybrid CNN-ViT front end).

    Same input/output contract as the patch conv it replaces: ``B x 3 x H x W -> B x C x H/p x W/p``. Without
    blocks its parameter names are those of the plain stem (checkpoints stay loadable).
    """

    def __init__(self, patch_size: int, embed_dim: int, blocks: int = 0):
        n = patch_size.bit_length() - 1
        if 2**n != patch_size or n < 1:
            raise ValueError(f"a conv stem needs a power-of-two patch size, got {patch_size}")
        layers: list[nn.Module] = []
        ends: list[int] = []
        channels: list[int] = []
        c_in = 3
        for i in range(n):
            c_out = max(16, embed_dim // 2 ** (n - 1 - i))
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                *(ResidualBlock(c_out) for _ in range(blocks)),
            ]
            ends.append(len(layers))
            channels.append(c_out)
            c_in = c_out
        layers.append(nn.Conv2d(c_in, embed_dim, 1))
        super().__init__(*layers)
        self._stage_ends, self._stage_channels = ends, channels

    @property
    def stages(self) -> int:
        """Stride-2 stages (``log2(patch_size)``): conv, BatchNorm, ReLU and the stage's residual blocks."""
        return len(self._stage_ends)

    @property
    def has_skip(self) -> bool:
        """Whether the stem has a map at a quarter of the patch size (3 stages or more: patch size 8 or larger)."""
        return self.stages >= 3

    def skip_channels(self) -> int:
        """Channels of the map at a quarter of the patch size (what :meth:`forward_with_skip` returns)."""
        return self._stage_channels[self.stages - 3]

    def forward_with_skip(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens and the map after the stage at stride ``patch_size / 4`` (the pixel decoder's resolution)."""
        if not self.has_skip:
            raise ValueError("a stem skip needs a patch size of at least 8")
        keep = self._stage_ends[self.stages - 3]  # layers up to the end of that stage
        layers = list(self)  # (slicing a Sequential subclass would rebuild it)
        for layer in layers[:keep]:
            x = layer(x)
        skip = x
        for layer in layers[keep:]:
            x = layer(x)
        return x, skip


class _MaxPoolAndRows(torch.autograd.Function):
    """``max_pool2d(x)`` and copies of the rows ``start:stop`` of ``x`` for each span; the backward adds the rows'
    gradients into the max-pool's gradient in place (the same sums as autograd's, without a whole-batch zero
    gradient per slice)."""

    @staticmethod
    def forward(ctx, x, spans, pool: nn.MaxPool2d):
        ctx.pool = (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
        pooled, indices = torch.ops.aten.max_pool2d_with_indices(x, *ctx.pool)
        ctx.save_for_backward(x, indices)
        ctx.spans = spans
        return (pooled, *(x[a:b].clone() for a, b in spans))

    @staticmethod
    def backward(ctx, grad_pooled, *grad_rows):
        x, indices = ctx.saved_tensors
        grad = torch.ops.aten.max_pool2d_with_indices_backward(grad_pooled, x, *ctx.pool, indices)
        for (a, b), g in zip(ctx.spans, grad_rows, strict=True):
            if g is not None:
                grad[a:b] += g
        return grad, None, None


class ResNetStem(nn.Module):
    """ResNet-18's first three stages as a patch embedding (a hybrid ResNet-ViT front end, as in the ViT paper's
    hybrids): a 7x7 stride-2 conv and a stride-2 max-pool (stride 4), two basic blocks of ``width`` channels, two of
    2 x ``width`` (stride 8), two of 4 x ``width`` (stride 16), then a 1x1 conv to the token width. Patch size 16
    only; the skip map is the first stage's (stride 4). Initialised as torchvision's ResNet (He normal, fan-out;
    every BatchNorm at one): with the residual branches started at zero instead, a ResNet-stem ViT-T learned no
    expression from 2,400 SynthFaces images (accuracy 0.134 against 0.240, docs/results.md)."""

    def __init__(self, patch_size: int, embed_dim: int, width: int = 64):
        super().__init__()
        if patch_size != 16:
            raise ValueError(f"the ResNet stem has stride 16, so it needs patch size 16, got {patch_size}")
        self.entry = nn.Sequential(
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        w1, w2, w3 = width, 2 * width, 4 * width
        self.stage1 = nn.Sequential(ResidualBlock(w1, zero_init=False), ResidualBlock(w1, zero_init=False))
        self.stage2 = nn.Sequential(ResidualBlock(w1, w2, 2, False), ResidualBlock(w2, zero_init=False))
        self.stage3 = nn.Sequential(ResidualBlock(w2, w3, 2, False), ResidualBlock(w3, zero_init=False))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.proj = nn.Conv2d(w3, embed_dim, 1)
        self.width = width

    #: The first stage's map is at a quarter of the patch size.
    has_skip = True

    def skip_channels(self) -> int:
        """Channels of the map at a quarter of the patch size (what :meth:`forward_with_skip` returns)."""
        return self.width

    def forward_with_skip(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens and the first stage's map (stride 4, the pixel decoder's resolution)."""
        tokens, skip, *_ = self.forward_with_skips(x)
        return tokens, skip

    def forward_with_skips(
        self, x: torch.Tensor, fine_rows: Sequence[tuple[int, int]] = ()
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
        """The tokens, the first stage's map (stride 4), the second's (stride 8), the entry convolution's (stride 2,
        before the max-pool), and that map's rows ``start:stop`` for each span of ``fine_rows`` (copies; while
        gradients are recorded, the max-pool's backward adds theirs in place, where slices of the whole map would
        each cost a whole-batch gradient: a tenth of a demo training step)."""
        fine = self.entry[:3](x.contiguous(memory_format=torch.channels_last))
        pool: nn.MaxPool2d = self.entry[3]
        spans = tuple(dict.fromkeys(fine_rows))
        if spans and torch.is_grad_enabled() and fine.requires_grad:
            pooled, *parts = _MaxPoolAndRows.apply(fine, spans, pool)
        else:
            pooled, parts = pool(fine), [fine[a:b] for a, b in spans]
        skip = self.stage1(pooled)
        mid = self.stage2(skip)
        return self.proj(self.stage3(mid)), skip, mid, fine, dict(zip(spans, parts, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_skip(x)[0]
