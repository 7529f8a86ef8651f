"""The training engine: one batch from every task per step, one encoder pass per input size.

Modes (``train.mode``): ``full`` (Stage 1, multi-task and auxiliary learning), ``layer_attention`` (Stage 2:
new Layer-Attention layers on a frozen model), ``prompt`` (prompt tuning: only new tasks' queries train) and ``heads``
(everything but the frozen encoder trains).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..addons import save_addon
from ..build import build, load
from ..checkpoint import (
    MANIFEST,
    WEIGHTS,
    CheckpointError,
    non_finite_keys,
    read_weights,
    save_state,
    shapes_of,
)
from ..data.collate import group_by_size
from ..data.streams import TaskStream, data_report_line, open_dataset
from ..durable import recover_dir, replace_dir, resolve_dir, write_atomic
from ..errors import FaceptorError, RunDirectoryError, contract_error
from ..evaluate import BaselineUnavailable, TaskEvaluation, evaluate_with_baseline, fit_baseline, primary_value
from ..model.base import FaceptorBase
from ..model.config import EncoderConfig
from ..registry import TaskRegistry, default_registry
from ..spec import Baseline, PriorBaseline, TaskSpec
from .config import ConfigError, ModelSection, RunConfig
from .distributed import DistInfo, average_gradients, barrier, device_for, init_distributed
from .pooled_heads import PooledHeads, pooled_heads_for
from .precision import forward_precision, resolve_precision
from .resume import check_resume_config
from .schedule import lr_at, param_groups
from .weighting import combine_losses, task_weights


class NonFiniteLossError(FaceptorError, FloatingPointError):
    """A loss (a task's, or the weighted total) or the gradient became NaN or infinite; the message names the
    task (or the weights) and the step. Nothing non-finite is ever written to a checkpoint."""


#: The run's configuration in its output directory: written when training starts, compared with on resume.
RUN_CONFIG = "config.json"
#: What a run writes into its output directory (``--overwrite`` removes exactly these).
RUN_OUTPUTS = ("checkpoints", "log.jsonl", "addon")


#: The model section's fields that are encoder options (same names as ``EncoderConfig``'s, passed through as they are).
ENCODER_OPTIONS = set(EncoderConfig.model_fields) & set(ModelSection.model_fields)


#: The trainer's pooled heads in a training checkpoint (``train.pooled_heads``; not part of the model).
POOLED_HEADS = "pooled_heads.safetensors"


class _MultitaskForward(nn.Module):
    """Lets DistributedDataParallel wrap ``forward_multitask`` (and the pooled heads, so that their gradients are
    averaged across processes too). Returns the tasks' outputs and the pooled heads' (empty without them)."""

    def __init__(self, model: FaceptorBase, pooled: PooledHeads | None = None):
        super().__init__()
        self.model = model
        self.pooled = pooled

    def forward(self, batches, rows):
        if self.pooled is None:
            return self.model.forward_multitask(batches, rows), {}
        outputs, last = self.model.forward_multitask_features(batches, rows)
        return outputs, self.pooled(last, rows)


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

    def __init__(
        self,
        config: RunConfig,
        registry: TaskRegistry | None = None,
        resume: bool = False,
        dist_info: DistInfo | None = None,
        overwrite: bool = False,
    ):
        """``resume``: continue from ``output_dir/checkpoints/last``. Without it, an output directory that holds
        an earlier run's checkpoints or log is refused, unless ``overwrite`` (which deletes them)."""
        if resume and overwrite:
            raise RunDirectoryError("--resume and --overwrite contradict each other: choose one")
        self.cfg = config
        self.registry = registry or default_registry()
        self.dist = dist_info or init_distributed()
        self.device = device_for(self.dist)
        self.precision = resolve_precision(config.precision, self.device)
        self.out = Path(config.output_dir)
        # a changed configuration is refused before anything is built; the allowed changes are logged
        changes = check_resume_config(self.out / RUN_CONFIG, config) if resume else {}
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
        self._check_type_weights()
        if not resume:
            self._check_output_dir(overwrite)
        self.entries = {e.name: e for e in config.tasks}
        self.new_tasks: list[str] = []
        self.model, trainable = self._build_model()
        self.model.to(self.device)
        # losses, transforms and metrics see the input size the model really uses
        self.specs = {
            n: s.model_copy(update={"input_size": self.model.tasks[n].input_size}) for n, s in self.specs.items()
        }
        self.losses = nn.ModuleDict({n: self._make_loss(s) for n, s in self.specs.items()}).to(self.device)
        self._freeze(trainable)
        self.pooled = pooled_heads_for(self.model, self.cfg.train, list(self.specs))
        if self.pooled is not None:
            self.pooled.to(self.device)
        self.weights = task_weights(list(self.specs.values()), config.type_weights)
        self.sizes = {n: self.model.tasks[n].input_size for n in self.specs}
        self.main_task = config.main_task or config.tasks[0].name
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, self.losses, opt.lr, opt.weight_decay, opt.head_lr_multiplier, self.pooled)
        )
        self.step = 0
        self.baselines: dict[str, TaskEvaluation] = {}
        self.fitted_baselines: dict[str, Baseline] = {}  # fitted for the output priors, scored at evaluation
        self.metric_meta: dict[str, dict] = {}  # per task: its metric's MetricMeta per value
        self.best: float | None = None
        self.consumed = {n: 0 for n in self.specs}
        self._rng_to_restore: torch.Tensor | None = None
        if resume:
            self._restore(self._resume_dir())
        self.forward = _MultitaskForward(self.model, self.pooled)
        if self.dist.enabled and torch.distributed.is_initialized():
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward,
                device_ids=[self.dist.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self._setup_notes: list[dict] = []
        if changes:  # config.json is rewritten at the first step: the log keeps what it said before
            self._setup_notes.append({"step": self.step, "resumed_with": {k: list(v) for k, v in changes.items()}})
        if not resume:
            self._start_output_priors()
        self.streams = self._make_streams()
        if self._rng_to_restore is not None:  # after the loaders, whose creation draws from the RNG
            torch.set_rng_state(self._rng_to_restore)
        if overwrite and self.dist.is_main:  # the run is set up: only now is the old one deleted
            self._clear_outputs()
        barrier(self.dist)
        for note in self._setup_notes:
            self._log(note)

    # -- set-up --------------------------------------------------------------------------------------
    def _check_type_weights(self) -> None:
        """``type_weights`` name families of this run's tasks and are positive and finite."""
        families = sorted({s.family for s in self.specs.values()})
        for family, weight in self.cfg.type_weights.items():
            if family not in families:
                raise ConfigError(
                    f"type_weights.{family}: no task of this run has family {family!r} (families: "
                    f"{', '.join(families)}); a misspelt family would silently weigh 1.0"
                )
            if not (math.isfinite(weight) and weight > 0):
                raise ConfigError(f"type_weights.{family}: {weight} is not a positive finite weight")

    def _previous_run(self) -> list[Path]:
        ckpt = self.out / "checkpoints"
        found = [p for p in (ckpt, self.out / "log.jsonl") if p.exists()]
        if ckpt.is_dir() and not any(ckpt.iterdir()):
            found.remove(ckpt)
        return found

    def _check_output_dir(self, overwrite: bool) -> None:
        found = self._previous_run()
        if found and not overwrite:
            names = ", ".join(p.name for p in found)
            raise RunDirectoryError(
                f"{self.out} already holds a run ({names}): pass --resume to continue it or "
                "--overwrite to delete it and start over (or choose another output_dir)"
            )

    def _clear_outputs(self) -> None:
        for name in RUN_OUTPUTS:
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _resume_dir(self) -> Path:
        """The newest complete ``last`` checkpoint, after finishing any interrupted save."""
        final = self.out / "checkpoints" / "last"
        if self.dist.is_main:
            recover_dir(final)
        barrier(self.dist)
        found = resolve_dir(final)
        if found is None or not (found / "trainer.pt").is_file():
            raise CheckpointError(f"{final}: no checkpoint to resume from")
        return found

    def _make_loss(self, spec: TaskSpec) -> nn.Module:
        loss = spec.loss(spec)
        if not callable(loss):
            raise contract_error(spec, "loss", f"returned {type(loss).__name__}; expected a callable nn.Module")
        if not isinstance(loss, nn.Module):  # a plain function: wrap it so that it can sit in the ModuleDict
            loss = _FunctionLoss(loss)
        return loss

    def _build_model(self) -> tuple[FaceptorBase, list[str] | None]:
        cfg, m = self.cfg, self.cfg.model
        sizes = {n: m.input_sizes.get(n, m.input_size) for n in self.specs}
        sizes = {n: s for n, s in sizes.items() if s is not None}
        if cfg.init_from is None:
            model = build(
                list(self.specs.values()),
                variant=m.variant,
                encoder=EncoderConfig(name=m.encoder, **m.model_dump(include=ENCODER_OPTIONS)),
                input_sizes=sizes,
                decoder=m.decoder,
                memory_layers=m.memory_layers,
                naive=m.naive,
                encoder_weights=m.encoder_weights,
                registry=self.registry,
            )
            return model, None
        model = load(cfg.init_from, registry=self.registry)
        new_params: list[str] = []
        self.new_tasks = [n for n in self.specs if n not in model.tasks]
        # Faceptor: new attribute-type tasks start at their trivial answer (the trained value interpreter sends
        # untrained queries far from it; the map interpreter's answers for them start near it: docs/results.md)
        affine = cfg.train.output_affine and hasattr(model, "output_gain")
        for name in self.new_tasks:
            head = self.specs[name].head_config()
            if name in sizes:
                head = head.model_copy(update={"input_size": sizes[name]})
            if affine and head.head_type == "attribute":
                head = head.model_copy(update={"output_affine": True})
            new_params += model.add_task(head)
        if cfg.train.add_grid_readout:
            new_params += self._add_grid_readout(model, cfg.train.add_grid_readout)
        if cfg.train.mode == "full":
            return model, None
        if cfg.train.mode == "heads":
            return model, [n for n, _ in model.named_parameters() if not n.startswith("encoder.")]
        if cfg.train.mode == "layer_attention":
            if not hasattr(model, "add_memory_layers"):
                raise ValueError("train.mode 'layer_attention' needs a Faceptor (not Naive) checkpoint")
            new_params += model.add_memory_layers(cfg.train.add_memory_layers)
        if cfg.train.train_queries:
            new_params += [n for n, _ in model.named_parameters() if model.task_of_key(n) in self.specs]
        return model, sorted(set(new_params))

    def _add_grid_readout(self, model: FaceptorBase, cells: int) -> list[str]:
        """``train.add_grid_readout``: the trained model's attribute-type tasks gain a grid readout."""
        where = f"train.add_grid_readout: {self.cfg.init_from}"
        if self.new_tasks:
            raise ConfigError(
                f"{where}: this run adds tasks ({', '.join(self.new_tasks)}), saved as an add-on on the unchanged "
                "model, which a grid readout of its own tasks would change: add the readout in a run of its own"
            )
        if not hasattr(model, "add_grid_readout"):
            raise ConfigError(f"{where} is a Naive Faceptor; grid readouts read for Faceptor's attribute queries")
        if not any(h.head_type == "attribute" for h in model.config.tasks if h.name in self.specs):
            raise ConfigError(f"{where}: no task of this run has an attribute-type head to read for")
        try:
            return model.add_grid_readout(cells)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None

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
            if transform is not None and not callable(transform):
                raise contract_error(spec, "transforms", f"returned {type(transform).__name__}; expected a callable")
            ds = open_dataset(spec, entry.root, entry.train_split, skip_invalid=entry.skip_invalid)
            self._report_data(spec, ds, entry.train_split)
            if entry.train_limit is not None and len(ds) > entry.train_limit:
                ds = torch.utils.data.Subset(ds, range(entry.train_limit))
            streams[name] = TaskStream(
                ds,
                transform,
                entry.batch_size,
                self.cfg.seed,
                name,
                self.cfg.num_workers,
                start=self.consumed[name],
                rank=self.dist.rank,
                world_size=self.dist.world_size,
            )
        return streams

    def _start_output_priors(self) -> None:
        """``DecoderConfig.output_prior`` and tasks added onto a checkpoint (``TaskHead.output_affine``): start each
        task's output prior at its trivial answer (the baseline fitted on the training split, kept for evaluation).
        A checkpoint's own tasks keep the priors they learned."""
        priors = getattr(self.model, "output_prior", None)
        if not priors:
            return
        for name, spec in self.specs.items():
            if name not in priors or (self.cfg.init_from is not None and name not in self.new_tasks):
                continue
            e = self.entries[name]
            try:
                with torch.random.fork_rng(devices=[]):  # the data streams draw the same seeds as without it
                    baseline = fit_baseline(
                        spec,
                        e.root,
                        self.sizes[name],
                        e.train_split,
                        e.eval_split,
                        self.cfg.baseline_limit or None,
                        self.cfg.eval_batch_size,
                        self.cfg.num_workers,
                    )
            except BaselineUnavailable as exc:
                self._note_prior(name, f"output prior left at zero: {exc}")
                continue
            self.fitted_baselines[name] = baseline
            if not isinstance(baseline, PriorBaseline):
                self._note_prior(name, "output prior left at zero: its baseline gives no raw output")
                continue
            self.model.set_output_prior(name, baseline.raw_output(self.model.raw_output_shape(self.model.tasks[name])))
            self._note_prior(name, f"output prior starts at the trivial answer: {baseline.describe()}")

    def _note_prior(self, task: str, text: str) -> None:
        if self.dist.is_main and self.cfg.progress:
            print(f"task {task!r}: {text}", file=sys.stderr)

    def _report_data(self, spec: TaskSpec, ds, split: str) -> None:
        """Print (and log) what the training and evaluation splits left out, and images they share."""
        if not self.dist.is_main:
            return
        entry = self.entries[spec.name]
        lines = [f"{split}: {line}" for line in [data_report_line(ds)] if line]
        eval_ds = None
        reads_files = callable(getattr(ds, "image_keys", None))  # generated datasets have nothing to report
        if reads_files and spec.metrics is not None and entry.eval_split != split:
            try:
                eval_ds = open_dataset(spec, entry.root, entry.eval_split, skip_invalid=entry.skip_invalid)
            except FaceptorError:
                eval_ds = None  # the evaluation reports it when it reads the split
        if eval_ds is not None:
            line = data_report_line(eval_ds)
            if line:
                lines.append(f"{entry.eval_split}: {line}")
            keys, other = getattr(ds, "image_keys", None), getattr(eval_ds, "image_keys", None)
            if callable(keys) and callable(other):
                train_keys, eval_keys = keys(), other()
                shared = sorted(set(train_keys) & set(eval_keys))
                if shared:
                    (f1, l1), (f2, l2) = train_keys[shared[0]], eval_keys[shared[0]]
                    lines.append(
                        f"{len(shared)} image(s) are in both the {split!r} and the {entry.eval_split!r} "
                        f"split, so evaluation scores training images (e.g. {shared[0]}: {f1}:{l1} and "
                        f"{f2}:{l2})"
                    )
        for text in lines:
            print(f"warning: task {spec.name!r}: {text}", file=sys.stderr)
            self._setup_notes.append({"step": self.step, "data": {spec.name: text}})

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def num_trainable_parameters(self) -> int:
        """Trainable parameters of the model (loss parameters excluded)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    # -- training ------------------------------------------------------------------------------------
    def _set_train_modes(self) -> None:
        """Trained modules in train mode; frozen ones in eval mode (their outputs and batch-norm statistics held)."""
        heads = self.cfg.train.mode == "heads"
        self.model.train(not self.frozen_mode or heads)
        if heads:
            self.model.encoder.eval()

    def _task_loss(self, name: str, raw: torch.Tensor, target, what: str) -> torch.Tensor:
        """Task ``name``'s loss of ``raw`` as a scalar: a contract error when the loss is not one, a
        :class:`NonFiniteLossError` naming the task, ``what`` and the step when it is NaN or infinite."""
        loss = self.losses[name](raw, _to(target, self.device))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise contract_error(self.specs[name], "loss", f"returned {_describe(loss)}; expected a scalar tensor")
        loss = loss.reshape(())
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"task {name!r}: {what} is {float(loss.detach())} at step {self.step + 1}; stopping the run "
                f"(last checkpoint: {self.out / 'checkpoints' / 'last'})"
            )
        return loss

    def train_step(self) -> dict[str, float]:
        self._set_train_modes()
        self.losses.train()
        batches = {n: next(s) for n, s in self.streams.items()}
        images = {n: b["image"].to(self.device, non_blocking=True) for n, b in batches.items()}
        grouped, rows = group_by_size(images, self.sizes)
        with forward_precision(self.precision, self.device):
            outputs, pooled = self.forward(grouped, rows)
        outputs = {n: o.float() for n, o in outputs.items()}  # losses in float32 whatever the forward's precision
        losses = {n: self._task_loss(n, outputs[n], b["target"], "loss") for n, b in batches.items()}
        total = combine_losses(losses, self.weights)
        what = "the pooled head's loss (train.pooled_heads)"
        pooled_losses = {n: self._task_loss(n, o.float(), batches[n]["target"], what) for n, o in pooled.items()}
        if pooled_losses:  # each task's pooled loss at its fraction of the task's weight, over the tasks' weight sum
            pooled_total = sum(self.pooled.fractions[n] * self.weights[n] * p for n, p in pooled_losses.items())
            total = total + pooled_total / sum(self.weights[n] for n in losses)
        if not torch.isfinite(total):
            raise NonFiniteLossError(
                f"the weighted total loss is {float(total.detach())} at step {self.step + 1} although every task's "
                f"loss is finite (task weights {self.weights}); stopping the run "
                f"(last checkpoint: {self.out / 'checkpoints' / 'last'})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        average_gradients([p for p in self.losses.parameters() if p.requires_grad], self.dist)  # outside DDP's module
        clip = self.cfg.optimizer.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), clip if clip is not None else math.inf)
        if not torch.isfinite(norm):  # checked before the step: the weights stay as they were
            raise NonFiniteLossError(
                f"the gradient is NaN or infinite at step {self.step + 1} (losses: "
                + ", ".join(f"{n}={float(v.detach()):.4g}" for n, v in losses.items())
                + f"); stopping the run before the weights are updated (last checkpoint: "
                f"{self.out / 'checkpoints' / 'last'})"
            )
        sched = self.cfg.schedule
        lr = lr_at(self.step, self.cfg.optimizer.lr, sched.steps, sched.warmup_steps, sched.warmup_start_lr)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_multiplier"]
        self.optimizer.step()
        self.step += 1
        for name in self.specs:
            self.consumed[name] = self.streams[name].consumed
        stats = torch.stack(
            [total.detach(), *(v.detach() for v in losses.values()), *(v.detach() for v in pooled_losses.values())]
        )
        if self.dist.enabled and torch.distributed.is_initialized():  # log the global batch's losses
            torch.distributed.all_reduce(stats)
            stats /= self.dist.world_size
        values = stats.tolist()
        named = [f"loss/{n}" for n in losses] + [f"pooled/{n}" for n in pooled_losses]
        return {"loss": values[0], "lr": lr, **dict(zip(named, values[1:], strict=True))}

    def evaluate(self, progress: bool = False) -> dict[str, dict[str, float]]:
        """Each task's metrics on its evaluation split; with ``eval_baselines``, beside them
        ``baseline/<metric>`` of the task's trivial answer (fitted and scored once, then reused) and
        ``margin_se/<metric>``, the standard error of the margin between them (:mod:`faceptor_core.margins`)."""
        results = {}
        for name, spec in self.specs.items():
            if spec.metrics is None:
                continue
            e = self.entries[name]
            first = self.cfg.eval_baselines and name not in self.baselines
            ev = evaluate_with_baseline(
                self.model,
                spec,
                e.root,
                e.eval_split,
                self.cfg.eval_batch_size,
                e.eval_limit,
                progress=progress,
                baseline=first,
                baseline_split=e.train_split,
                baseline_limit=self.cfg.baseline_limit or None,
                skip_invalid=e.skip_invalid,
                fitted_baseline=self.fitted_baselines.get(name),
                error_bars=self.cfg.eval_baselines,
            )
            self.metric_meta[name] = ev.meta
            if first:
                self.baselines[name] = ev
            cached = self.baselines.get(name)
            if cached is not None:  # the baseline scored at the first evaluation, on the same items
                ev = replace(ev, baseline=cached.baseline, baseline_groups=cached.baseline_groups)
            results[name] = ev.flat()
        return results

    def close_streams(self) -> None:
        """Stop every task's data workers now; persistent workers otherwise wait, prefetched batches in hand, until
        the trainer is garbage collected. The trainer takes no further steps (a new one resumes from a checkpoint)."""
        for stream in self.streams.values():
            if isinstance(stream, TaskStream):
                stream.close()

    def fit(self, stop_after: int | None = None) -> dict[str, dict[str, float]]:
        """Train to ``schedule.steps`` (or stop after ``stop_after`` more steps), evaluating and saving
        checkpoints on the way. Returns the last evaluation."""
        cfg = self.cfg
        if self.dist.is_main:
            write_atomic(self.out / RUN_CONFIG, cfg.model_dump_json(indent=2).encode())
        self._log({"step": self.step, "precision": self.precision, "device": str(self.device)})
        last_eval: dict[str, dict[str, float]] = {}
        end = cfg.schedule.steps if stop_after is None else min(cfg.schedule.steps, self.step + stop_after)
        bar = tqdm(
            total=cfg.schedule.steps,
            initial=self.step,
            desc=f"train ({cfg.train.mode}, {self.precision})",
            dynamic_ncols=True,
            disable=not (cfg.progress and self.dist.is_main),
        )
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
            score = primary_value(
                self.specs[self.main_task], results[self.main_task], self.metric_meta.get(self.main_task)
            )
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
        """Write ``checkpoints/<name>``: model, loss parameters and the trainer state.

        Crash-safe at every instant (:func:`faceptor_core.durable.replace_dir`): the previous checkpoint stays
        until the new one is complete and fsynced. Weights holding NaN or infinite values are never written
        (:class:`NonFiniteLossError`; the previous checkpoint is kept)."""
        final = self.out / "checkpoints" / name
        if self.dist.is_main:
            model_state, loss_state = self.model.state_dict(), self.losses.state_dict()
            pooled_state = self.pooled.state_dict() if self.pooled is not None else {}
            bad = (
                non_finite_keys(model_state)
                + [f"losses.{k}" for k in non_finite_keys(loss_state)]
                + [f"pooled_heads.{k}" for k in non_finite_keys(pooled_state)]
            )
            if bad:
                raise NonFiniteLossError(
                    f"step {self.step}: NaN or infinite values in {', '.join(bad[:5])}"
                    f"{f' ... ({len(bad)} tensors)' if len(bad) > 5 else ''}; refusing to write {final} "
                    f"(the previous checkpoint, if any, is kept)"
                )
            state = {
                "step": self.step,
                "best": self.best if self.best is not None else float("nan"),
                "consumed": dict(self.consumed),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "config": self.cfg.model_dump_json(),
            }

            def fill(tmp: Path) -> None:
                self.model.save_pretrained(tmp)
                save_state(loss_state, tmp / "losses.safetensors", "loss parameters")
                if self.pooled is not None:
                    save_state(pooled_state, tmp / POOLED_HEADS, "pooled heads")
                torch.save(state, tmp / "trainer.pt")

            replace_dir(final, fill)
        if barrier_after:
            barrier(self.dist)
        return final

    def _restore(self, directory: Path) -> None:
        if not (directory / "trainer.pt").is_file():
            raise CheckpointError(f"{directory}: no checkpoint to resume from")
        from ..checkpoint import read_manifest, verify_digest

        _, manifest = read_manifest(directory)
        verify_digest(directory / WEIGHTS, manifest.get("weights_sha256"), directory / MANIFEST)
        self.model.load_weights(read_weights(directory / WEIGHTS))
        losses = shapes_of(self.losses.state_dict().items())
        self.losses.load_state_dict(read_weights(directory / "losses.safetensors", losses, against="this run's losses"))
        if self.pooled is not None:
            if not (directory / POOLED_HEADS).is_file():
                raise CheckpointError(
                    f"{directory}: no {POOLED_HEADS}, but this run trains pooled heads (train.pooled_heads); resume "
                    "it with the configuration it was started with"
                )
            pooled = shapes_of(self.pooled.state_dict().items())
            against = (
                "this run's pooled heads (train.pooled_heads, pooled_head_hidden, pooled_head_queries, "
                "pooled_head_mean)"
            )
            self.pooled.load_state_dict(read_weights(directory / POOLED_HEADS, pooled, against=against))
        try:
            state = torch.load(directory / "trainer.pt", map_location="cpu", weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            best = float(state["best"])
            consumed = state["consumed"]
            rng = state["torch_rng"]
        except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
            raise CheckpointError(f"{directory / 'trainer.pt'}: cannot read the trainer state: {exc}") from None
        self.best = None if math.isnan(best) else best
        self.consumed = {n: int(consumed.get(n, 0)) for n in self.specs}
        self._rng_to_restore = rng


class _FunctionLoss(nn.Module):
    """A loss given as a plain function."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, raw, target):
        return self.fn(raw, target)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
