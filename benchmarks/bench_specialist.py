"""The from-scratch specialist anchor: a torchvision ResNet-18 (``resnet18_3stage``: without its fourth stage;
``resnet18_os16``: with it dilated, at stride 16; or,
``--arch vit_conv``, the demo's encoder with a plain pooled head; ``vit_conv_bN`` and ``vit_resnetW[_nols][_dD]``,
other stems; ``faceptor*``, the demo's whole model trained by this loop: see ``ARCHS``) trained on ONE SynthFaces
task.

It sees the same images, in the same order and with the same transforms, as that task's stream in the demo
(``TaskStream`` with the demo's seed), is trained with the task's own loss where the output shapes allow it, and
is scored by the task's own metric on the same test split. Heads: expression (7 logits, cross-entropy), age
(101 logits, DLDL-v2), attributes (logits, masked BCE), landmarks (coordinates regressed directly, mean point
distance), identity (a 512-d embedding from ``fc``, the task's CosFace loss, whose classifier trains with it; scored as
the demo scores it: embedding(image) + embedding(flip), pairs by verification accuracy) and parsing (``resnet18``
becomes :class:`ParsingSpecialist`: ResNet-18 under a light FPN decoder to stride 2, the task's cross-entropy + Dice
loss, F1 as the demo scores it).

    python benchmarks/bench_specialist.py --task synth_expression --images 3200 [--batch 32] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

import torch
import torchvision
from torch import nn

from faceptor_core.data.collate import collate_items
from faceptor_core.data.streams import TaskStream
from faceptor_core.evaluate import eval_dataset
from faceptor_core.registry import default_registry

SUPPORTED = (
    "synth_expression",
    "synth_age",
    "synth_attributes",
    "synth_landmarks",
    "synth_identity",
    "synth_parsing",
    "gaze_synth",  # the example plugin's task (plugins_example/faceptor-task-gaze)
)


def _outputs(spec) -> int:
    if spec.output == "landmarks":
        return spec.num_queries * 2
    if spec.output == "embedding":
        return spec.embedding_dim
    return spec.num_queries


def _raw_to_metric_input(spec, raw: torch.Tensor, size: int) -> torch.Tensor:
    """The tensor the task's metric scores, as Faceptor's decoding would produce it."""
    from faceptor_core.outputs import expected_age

    if spec.output == "landmarks":
        return raw.view(raw.shape[0], -1, 2).sigmoid() * size - 0.5  # the (x + 0.5) / W convention
    if spec.output == "age_distribution":
        return expected_age(raw)
    if spec.output == "segmentation":
        return raw  # the metric takes the logits and upsamples them
    if spec.output == "classification":
        return raw.softmax(-1)
    if spec.output == "regression":
        return raw  # regression's raw outputs are its values
    return raw.sigmoid()


def _loss(spec, raw: torch.Tensor, target, loss_module: nn.Module) -> torch.Tensor:
    if isinstance(raw, tuple):
        return sum(_loss(spec, r, target, loss_module) for r in raw)
    if spec.output == "landmarks":  # target: pixels of the input; compare in normalised coordinates
        pred = raw.view(raw.shape[0], -1, 2).sigmoid()
        return (pred - (target + 0.5) / spec.input_size).norm(dim=-1).mean()
    return loss_module(raw, target)


class ParsingSpecialist(nn.Module):
    """The parsing anchor: torchvision's ResNet-18 body under a light FPN decoder (Panoptic FPN's semantic branch,
    one output level). Each stage's map (strides 2, 4, 8, 16, 32: conv1 and the four stages) is projected to
    ``width`` channels by a 1 x 1 convolution and added top-down with bilinear upsampling; a 3 x 3 convolution,
    BatchNorm, ReLU and a 1 x 1 classifier give logits at stride 2, which the loss and the metric upsample, as the
    demo's are. ``stride=4`` leaves conv1's map out: logits at stride 4, the demo's pixel decoder's resolution. Its
    second stage trains the decoder (:attr:`decoder`), the backbone frozen."""

    def __init__(self, classes: int, width: int = 64, stride: int = 2):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"output stride 2 or 4, got {stride}")
        self.stride = stride
        r = torchvision.models.resnet18()
        self.conv1 = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.stages = nn.ModuleList([nn.Sequential(r.maxpool, r.layer1), r.layer2, r.layer3, r.layer4])
        channels = (64, 64, 128, 256, 512)[1 if stride == 4 else 0 :]  # conv1's map, then the four stages'
        lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in channels])
        head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, classes, 1),
        )
        self.decoder = nn.ModuleDict({"lateral": lateral, "head": head})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [self.conv1(x)]
        for stage in self.stages:
            maps.append(stage(maps[-1]))
        lateral = self.decoder["lateral"]
        out = lateral[-1](maps[-1])
        maps = maps[1:] if self.stride == 4 else maps
        for m, project in zip(reversed(maps[:-1]), reversed(lateral[:-1]), strict=True):
            out = nn.functional.interpolate(out, size=m.shape[-2:], mode="bilinear", align_corners=False) + project(m)
        return self.decoder["head"](out)


#: The demo's encoder.
VIT_CONV = {"name": "vit_t16", "stem": "conv", "depth": 6, "drop_path_rate": 0.05}


class ViTSpecialist(nn.Module):
    """The demo's encoder (conv-stem ViT-T/16, 6 blocks) with a plain head: mean of the last layer's tokens,
    LayerNorm, Linear. It tells apart what the encoder can learn from what the decoder's query path learns."""

    def __init__(self, outputs: int, **encoder: Any):
        super().__init__()
        from faceptor_core.model.config import EncoderConfig
        from faceptor_core.model.encoder import ViTEncoder

        self.encoder = ViTEncoder(EncoderConfig(**{**VIT_CONV, **encoder}))
        self.norm = nn.LayerNorm(self.encoder.embed_dim)
        self.fc = nn.Linear(self.encoder.embed_dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.encoder(x)[-1].flatten(2).mean(-1)))


class FaceptorSpecialist(nn.Module):
    """The demo's Faceptor (``RESNET_MODEL``: encoder, decoders, queries) for one task, trained by this loop instead
    of the demo's trainer: it tells apart what the model learns from what the demo's training recipe does.

    ``pooled``: a LayerNorm and Linear on the mean of the last encoder layer's tokens also trains on the task's loss
    (the encoder is then supervised as the pooled-head specialist's is); ``score_pooled`` scores that head instead of
    the decoder. ``memory_grad``: the share of the decoder's gradient that reaches the encoder through the memory
    (``DecoderConfig.memory_grad``).
    ``key_grad=False``: none through the cross-attention's keys (the values still pass it)."""

    def __init__(
        self,
        task: str,
        outputs: int,
        pooled: bool = False,
        score_pooled: bool = False,
        memory_grad: float = 1.0,
        key_grad: bool = True,
    ):
        super().__init__()
        import faceptor_core
        from faceptor_core.model.config import EncoderConfig
        from faceptor_tasks.synthfaces.demo import RESNET_MODEL as m

        keys = ("stem", "stem_width", "layer_scale", "depth", "drop_path_rate")
        encoder = EncoderConfig(name=m["encoder"], **{k: m[k] for k in keys})
        decoder = {**m["decoder"], "memory_grad": memory_grad}
        self.model = faceptor_core.build([task], encoder=encoder, input_sizes=m["input_size"], decoder=decoder)
        self.task = task
        dim = self.model.encoder.embed_dim
        self.pooled = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, outputs)) if pooled else None
        self.score_pooled = score_pooled
        if not key_grad:
            for layer in self.model.decoder.layers:  # keys = memory + position: detached before the projection
                attend = layer.cross_attn.forward
                layer.cross_attn.forward = lambda q, k, v, *a, _f=attend, **kw: _f(q, k.detach(), v, *a, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Training: the decoder's raw output (and the pooled head's, when there is one); evaluation: the one
        scored."""
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (x * std + mean).clamp(0, 1)  # the model normalises [0, 1] images itself
        if self.pooled is None or not (self.training or self.score_pooled):
            return self.model(x)[self.task]
        size = self.model.tasks[self.task].input_size
        outputs, last = self.model.forward_multitask_features({size: x}, {self.task: slice(None)})
        pooled = self.pooled(last[size].flatten(2).mean(-1))
        return (outputs[self.task], pooled) if self.training else pooled


#: The Faceptor specialists (``--arch``) and their options (docs/results.md, "The decoder, not the encoder").
FACEPTOR_ARCHS: dict[str, dict[str, Any]] = {
    "faceptor": {},
    "faceptor_keydetach": {"key_grad": False},
    "faceptor_pooled": {"pooled": True},
    "faceptor_pooled_scored": {"pooled": True, "score_pooled": True},
    "faceptor_pooled_memgrad0.1": {"pooled": True, "memory_grad": 0.1},
}


ARCHS = (
    "resnet18, resnet18_out4 (parsing: logits at stride 4), resnet18_3stage (without its fourth stage), "
    "resnet18_os16 (its fourth stage dilated: stride 16), "
    "vit_conv, vit_conv_bN (N residual blocks a stem stage), "
    "vit_resnetW (the ResNet stem of width W and LayerScale 1e-5), vit_resnetW_nols (without LayerScale); a ViT's _dD "
    "suffix: D transformer blocks (default 6); or the demo's Faceptor: " + ", ".join(FACEPTOR_ARCHS) + " "
    "(FaceptorSpecialist; with --head-images the second stage trains everything but the encoder, as the demo's does)"
)


def _last_layer(net: nn.Module) -> nn.Module:
    """What the specialist's second stage trains: ResNet-18's ``fc``; a ViT specialist's LayerNorm and Linear; the
    Faceptor specialist's everything but the encoder (as the demo's stage 2)."""
    if isinstance(net, ViTSpecialist):
        return nn.ModuleList([net.norm, net.fc])
    if isinstance(net, FaceptorSpecialist):
        return nn.ModuleList([m for name, m in net.model.named_children() if name != "encoder"])
    if isinstance(net, ParsingSpecialist):
        return net.decoder
    return net.fc


def make_specialist(arch: str, outputs: int, task: str = "") -> nn.Module:
    if arch in ("resnet18", "resnet18_out4") and task == "synth_parsing":
        return ParsingSpecialist(outputs, stride=2 if arch == "resnet18" else 4)
    if arch == "resnet18":
        return torchvision.models.resnet18(num_classes=outputs)
    if arch == "resnet18_3stage":  # without its fourth stage: the depth of the demo's ResNet stem
        net = torchvision.models.resnet18(num_classes=outputs)
        net.layer4, net.fc = nn.Identity(), nn.Linear(256, outputs)
        return net
    if arch == "resnet18_os16":  # the fourth stage dilated instead of strided: stride 16, the demo's token grid
        net = torchvision.models.resnet18(num_classes=outputs)
        net.layer4[0].conv1.stride = net.layer4[0].downsample[0].stride = (1, 1)
        for m in net.layer4.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                m.dilation, m.padding = (2, 2), (2, 2)
        return net
    if arch in FACEPTOR_ARCHS:
        return FaceptorSpecialist(task, outputs, **FACEPTOR_ARCHS[arch])
    depth = re.fullmatch(r"(vit_.+)_d([1-9][0-9]?)", arch)
    extra = {"depth": int(depth[2])} if depth else {}
    name = depth[1] if depth else arch
    if name == "vit_conv":
        return ViTSpecialist(outputs, **extra)
    if name.startswith("vit_conv_b") and name[len("vit_conv_b") :].isdigit():
        return ViTSpecialist(outputs, stem_blocks=int(name[len("vit_conv_b") :]), **extra)
    width, _, plain = name.removeprefix("vit_resnet").partition("_")
    if name.startswith("vit_resnet") and width.isdigit() and plain in ("", "nols"):
        ls = None if plain else 1e-5
        return ViTSpecialist(outputs, stem="resnet", stem_width=int(width), layer_scale=ls, **extra)
    raise SystemExit(f"unknown specialist {arch!r}: {ARCHS}")


def make_loss(spec) -> nn.Module:
    """The task's own loss module (identity's holds the CosFace classifier, trained with the specialist)."""
    return spec.loss(spec)


def train_specialist(
    task: str,
    images: int,
    batch: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    num_workers: int = 1,
    eval_limit: int = 500,
    arch: str = "resnet18",
    head_images: int = 0,
    head_lr: float | None = None,
    outputs: list[tuple[torch.Tensor, object]] | None = None,
) -> dict:
    """Train the specialist on ``images`` images of ``task`` and score it on the test split. With ``head_images``, a
    second stage follows as the demo's does: the backbone frozen (eval mode: BatchNorm held), only its last layer
    trained on that many more images, on a fresh warm-up and one-cycle schedule at ``head_lr`` (``lr`` by default).
    A loss with parameters of its own (identity's CosFace classifier) trains with the net in both stages, as the
    demo's trainer trains it. ``outputs``: a list that each test batch's metric input and target are appended to."""
    spec = default_registry().get_task(task)
    if task not in SUPPORTED:
        raise SystemExit(f"no specialist head for {task}; choose one of {', '.join(SUPPORTED)}")
    size = spec.input_size
    torch.manual_seed(seed)
    net = make_specialist(arch, _outputs(spec), task).to(device)
    loss_module = make_loss(spec).to(device)
    stream = TaskStream(
        spec.dataset(None, "train", transform=None), spec.transforms("train", size), batch, seed, task, num_workers
    )
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def normalise(image: torch.Tensor) -> torch.Tensor:
        return (image.to(device).float() / (255.0 if image.dtype == torch.uint8 else 1.0) - mean) / std

    def fit(params: list[nn.Parameter], n_images: int, peak: float) -> int:
        opt = torch.optim.AdamW(params, lr=peak, weight_decay=0.05)
        steps = max(1, n_images // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=steps, pct_start=0.1)
        for _ in range(steps):
            b = next(stream)
            x = normalise(b["image"])
            target = b["target"]
            target = {k: v.to(device) for k, v in target.items()} if isinstance(target, dict) else target.to(device)
            loss = _loss(spec, net(x), target, loss_module)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        return steps

    t0 = time.perf_counter()
    net.train()
    steps = fit(list(net.parameters()) + list(loss_module.parameters()), images, lr)
    head_steps, head_lr = 0, head_lr or lr
    if head_images:
        head = _last_layer(net)
        for p in net.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
        net.eval()  # the backbone's BatchNorm statistics stay as stage 1 left them
        head_steps = fit(list(head.parameters()) + list(loss_module.parameters()), head_images, head_lr)
    train_s = time.perf_counter() - t0
    net.eval()
    metric = spec.metrics(spec)
    ds = eval_dataset(spec, None, "test", size, eval_limit)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, collate_fn=collate_items)

    def embed(image: torch.Tensor) -> torch.Tensor:  # as the demo's evaluate.embed_with_flip
        x = normalise(image)
        return nn.functional.normalize((net(x) + net(x.flip(-1))).float(), dim=-1).cpu()

    with torch.no_grad():
        for b in loader:
            if "image_a" in b:  # verification pairs
                metric.update_pairs(embed(b["image_a"]), embed(b["image_b"]), b["issame"])
                continue
            values = _raw_to_metric_input(spec, net(normalise(b["image"])), size).cpu()
            metric.update(values, b["target"], b.get("meta"))
            if outputs is not None:
                outputs.append((values, b["target"]))
    return {
        "task": task,
        "arch": arch,
        "images": steps * batch,
        **({"head_images": head_steps * batch, "head_lr": head_lr} if head_images else {}),
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(train_s, 1),
        "metrics": {k: float(v) for k, v in metric.compute().items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=SUPPORTED)
    ap.add_argument("--images", type=int, default=3200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", default="resnet18", help=ARCHS)
    ap.add_argument("--head-images", type=int, default=0, help="a second stage: the last layer alone on N more images")
    ap.add_argument("--head-lr", type=float, default=None, help="the second stage's peak rate (default: --lr)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    rec = train_specialist(
        args.task,
        args.images,
        args.batch,
        args.lr,
        args.seed,
        args.device,
        arch=args.arch,
        head_images=args.head_images,
        head_lr=args.head_lr,
    )
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
