"""The training engine: one batch from every task per step, one encoder pass per input size.

Modes (``train.mode``): ``full`` (Stage 1, multi-task and auxiliary learning), ``layer_attention`` (Stage 2:
new Layer-Attention layers on a frozen model) and ``prompt`` (prompt tuning: only new tasks' queries train).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from ..build import build, load
from ..data.collate import group_by_size
from ..data.streams import TaskStream
from ..model.base import FaceptorBase
from ..model.config import EncoderConfig
from ..registry import TaskRegistry, default_registry
from ..spec import TaskSpec
from .addons import save_addon
from .config import RunConfig
from .distributed import DistInfo, barrier, device_for, init_distributed
from .evaluate import TaskEvaluation, evaluate_with_baseline, primary_value
from .schedule import lr_at, param_groups
from .weighting import combine_losses, task_weights


class NonFiniteLossError(FloatingPointError):
    """A task's loss became NaN or infinite; the message names the task and the step."""


class _MultitaskForward(nn.Module):
    """Lets DistributedDataParallel wrap ``forward_multitask``."""

    def __init__(self, model: FaceptorBase):
        super().__init__()
        self.model = model

    def forward(self, batches, rows):
        return self.model.forward_multitask(batches, rows)


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


class Trainer:
    """Trains a model as a :class:`RunConfig` describes; ``fit()`` runs it, ``resume=True`` continues."""

    def __init__(self, config: RunConfig, registry: TaskRegistry | None = None, resume: bool = False,
                 dist_info: DistInfo | None = None):
        self.cfg = config
        self.registry = registry or default_registry()
        self.dist = dist_info or init_distributed()
        self.device = device_for(self.dist)
        self.out = Path(config.output_dir)
        torch.manual_seed(config.seed)
        self.specs: dict[str, TaskSpec] = {}
        for entry in config.tasks:
            spec = self.registry.get_task(entry.name)
            if entry.loss_weight is not None:
                spec = spec.model_copy(update={"loss_weight": entry.loss_weight})
            for field in ("dataset", "loss"):
                if getattr(spec, field) is None:
                    raise ValueError(f"task {spec.name!r} supplies no {field}: it cannot be trained")
            self.specs[entry.name] = spec
        self.entries = {e.name: e for e in config.tasks}
        self.new_tasks: list[str] = []
        self.model, trainable = self._build_model()
        self.model.to(self.device)
        # losses, transforms and metrics see the input size the model really uses
        self.specs = {n: s.model_copy(update={"input_size": self.model.tasks[n].input_size})
                      for n, s in self.specs.items()}
        self.losses = nn.ModuleDict({n: s.loss(s) for n, s in self.specs.items()}).to(self.device)
        self._freeze(trainable)
        self.weights = task_weights(list(self.specs.values()), config.type_weights)
        self.sizes = {n: self.model.tasks[n].input_size for n in self.specs}
        self.main_task = config.main_task or config.tasks[0].name
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, self.losses, opt.lr, opt.weight_decay, opt.head_lr_multiplier)
        )
        self.step = 0
        self.baselines: dict[str, TaskEvaluation] = {}
        self.best: float | None = None
        self.consumed = {n: 0 for n in self.specs}
        self._rng_to_restore: torch.Tensor | None = None
        if resume:
            self._restore(self.out / "checkpoints" / "last")
        self.forward = _MultitaskForward(self.model)
        if self.dist.enabled and torch.distributed.is_initialized():
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[self.dist.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.streams = self._make_streams()
        if self._rng_to_restore is not None:  # after the loaders, whose creation draws from the RNG
            torch.set_rng_state(self._rng_to_restore)

    # -- set-up --------------------------------------------------------------------------------------
    def _build_model(self) -> tuple[FaceptorBase, list[str] | None]:
        cfg, m = self.cfg, self.cfg.model
        sizes = {n: m.input_sizes.get(n, m.input_size) for n in self.specs}
        sizes = {n: s for n, s in sizes.items() if s is not None}
        if cfg.init_from is None:
            model = build(
                list(self.specs.values()), variant=m.variant,
                encoder=EncoderConfig(name=m.encoder, drop_path_rate=m.drop_path_rate, stem=m.stem,
                                      depth=m.depth, patch_size=m.patch_size),
                input_sizes=sizes, decoder=m.decoder, memory_layers=m.memory_layers, naive=m.naive,
                encoder_weights=m.encoder_weights, registry=self.registry,
            )
            return model, None
        model = load(cfg.init_from, registry=self.registry)
        new_params: list[str] = []
        self.new_tasks = [n for n in self.specs if n not in model.tasks]
        for name in self.new_tasks:
            head = self.specs[name].head_config()
            if name in sizes:
                head = head.model_copy(update={"input_size": sizes[name]})
            new_params += model.add_task(head)
        if cfg.train.mode == "full":
            return model, None
        if cfg.train.mode == "layer_attention":
            if not hasattr(model, "add_memory_layers"):
                raise ValueError("train.mode 'layer_attention' needs a Faceptor (not Naive) checkpoint")
            new_params += model.add_memory_layers(cfg.train.add_memory_layers)
        if cfg.train.train_queries:
            new_params += [n for n, _ in model.named_parameters()
                           if model.task_of_key(n) in self.specs]
        return model, sorted(set(new_params))

    def _freeze(self, trainable: list[str] | None) -> None:
        """``None``: train everything. Otherwise only the named parameters train; the rest stays frozen and
        in eval mode, so that its outputs (and batch-norm statistics) stay bit-identical."""
        self.frozen_mode = trainable is not None
        if trainable is None:
            return
        keep = set(trainable)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in keep)
        self.trainable_names = sorted(keep)

    def _make_streams(self) -> dict[str, TaskStream]:
        streams = {}
        for name, spec in self.specs.items():
            entry = self.entries[name]
            transform = spec.transforms(entry.train_split, self.sizes[name]) if spec.transforms else None
            ds = spec.dataset(entry.root, entry.train_split, transform=None)
            if entry.train_limit is not None and len(ds) > entry.train_limit:
                ds = torch.utils.data.Subset(ds, range(entry.train_limit))
            streams[name] = TaskStream(
                ds, transform, entry.batch_size, self.cfg.seed, name, self.cfg.num_workers,
                start=self.consumed[name], rank=self.dist.rank, world_size=self.dist.world_size,
            )
        return streams

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def num_trainable_parameters(self) -> int:
        """Trainable parameters of the model (loss parameters excluded)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    # -- training ------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        self.model.train(not self.frozen_mode)
        self.losses.train()
        batches = {n: next(s) for n, s in self.streams.items()}
        images = {n: b["image"].to(self.device, non_blocking=True) for n, b in batches.items()}
        grouped, rows = group_by_size(images, self.sizes)
        outputs = self.forward(grouped, rows)
        losses = {}
        for name, batch in batches.items():
            loss = self.losses[name](outputs[name], _to(batch["target"], self.device))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"task {name!r}: loss is {float(loss.detach())} at step {self.step + 1}; stopping the run "
                    f"(last checkpoint: {self.out / 'checkpoints' / 'last'})"
                )
            losses[name] = loss
        total = combine_losses(losses, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optimizer.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.optimizer.grad_clip)
        sched = self.cfg.schedule
        lr = lr_at(self.step, self.cfg.optimizer.lr, sched.steps, sched.warmup_steps, sched.warmup_start_lr)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_multiplier"]
        self.optimizer.step()
        self.step += 1
        for name in self.specs:
            self.consumed[name] = self.streams[name].consumed
        stats = torch.stack([total.detach(), *(v.detach() for v in losses.values())])
        if self.dist.enabled and torch.distributed.is_initialized():  # log the global batch's losses
            torch.distributed.all_reduce(stats)
            stats /= self.dist.world_size
        values = stats.tolist()
        return {"loss": values[0], "lr": lr, **{f"loss/{n}": v for n, v in zip(losses, values[1:], strict=True)}}

    def evaluate(self, progress: bool = False) -> dict[str, dict[str, float]]:
        """Each task's metrics on its evaluation split; with ``eval_baselines``, beside them
        ``baseline/<metric>`` of the task's trivial answer (fitted and scored once, then reused)."""
        results = {}
        for name, spec in self.specs.items():
            if spec.metrics is None:
                continue
            e = self.entries[name]
            first = self.cfg.eval_baselines and name not in self.baselines
            ev = evaluate_with_baseline(self.model, spec, e.root, e.eval_split, self.cfg.eval_batch_size,
                                        e.eval_limit, progress=progress, baseline=first, baseline_split=e.train_split,
                                        baseline_limit=self.cfg.baseline_limit or None)
            if first:
                self.baselines[name] = ev
            cached = self.baselines.get(name)
            base = (cached.baseline if cached is not None else None) or {}
            results[name] = {**ev.metrics, **{f"baseline/{k}": v for k, v in base.items()}}
        return results

    def fit(self, stop_after: int | None = None) -> dict[str, dict[str, float]]:
        """Train to ``schedule.steps`` (or stop after ``stop_after`` more steps), evaluating and saving
        checkpoints on the way. Returns the last evaluation."""
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(cfg.model_dump_json(indent=2))
        last_eval: dict[str, dict[str, float]] = {}
        end = cfg.schedule.steps if stop_after is None else min(cfg.schedule.steps, self.step + stop_after)
        bar = tqdm(total=cfg.schedule.steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (cfg.progress and self.dist.is_main))
        t0 = time.perf_counter()
        while self.step < end:
            stats = self.train_step()
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                self._log({"step": self.step, "time": round(time.perf_counter() - t0, 3), **stats})
            if self.step % cfg.eval_every == 0 or self.step == cfg.schedule.steps:
                last_eval = self._eval_and_select()
            if self.step % cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint("last")
        bar.close()
        if self.step == cfg.schedule.steps and self.dist.is_main and cfg.train.mode == "prompt":
            save_addon(self.model, self.new_tasks, self.cfg.init_from, self.out / "addon")
        return last_eval

    def _eval_and_select(self) -> dict[str, dict[str, float]]:
        if not self.dist.is_main:
            barrier(self.dist)
            return {}
        results = self.evaluate()
        self._log({"step": self.step, "eval": results})
        if self.main_task in results:
            score = primary_value(self.specs[self.main_task], results[self.main_task])
            if math.isnan(score):  # not comparable (e.g. parsing F1 with a class absent from the set)
                self._log({"step": self.step, "note": f"primary metric of {self.main_task} is NaN; best not updated"})
            elif self.best is None or score > self.best:
                self.best = score
                self.save_checkpoint("best", barrier_after=False)
        barrier(self.dist)
        return results

    def _log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    # -- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self, name: str, barrier_after: bool = True) -> Path:
        """Write ``checkpoints/<name>`` atomically: model, loss parameters and the trainer state."""
        final = self.out / "checkpoints" / name
        if self.dist.is_main:
            tmp = final.with_name(f".{name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save_pretrained(tmp)
            save_file({k: v.detach().contiguous().cpu() for k, v in self.losses.state_dict().items()},
                      str(tmp / "losses.safetensors"))
            state = {
                "step": self.step,
                "best": self.best if self.best is not None else float("nan"),
                "consumed": dict(self.consumed),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "config": self.cfg.model_dump_json(),
            }
            torch.save(state, tmp / "trainer.pt")
            old = final.with_name(f".{name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        if barrier_after:
            barrier(self.dist)
        return final

    def _restore(self, directory: Path) -> None:
        if not (directory / "trainer.pt").is_file():
            raise FileNotFoundError(f"{directory}: no checkpoint to resume from")
        from ..checkpoint import WEIGHTS, read_weights

        self.model.load_weights(read_weights(directory / WEIGHTS))
        self.losses.load_state_dict(load_file(str(directory / "losses.safetensors")))
        state = torch.load(directory / "trainer.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        best = float(state["best"])
        self.best = None if math.isnan(best) else best
        self.consumed = {n: int(state["consumed"].get(n, 0)) for n in self.specs}
        self._rng_to_restore = state["torch_rng"]
