"""The training loop of a trial migrated from Determined's ``LightningAdapter`` to the Core API.

Written beside ``model_def.py`` by ``migrate-trial``; it is yours now: read it, change it. It needs
``determined`` (>= 0.38), ``torch`` and the Lightning your module imports, nothing else.

``train()`` keeps what the old trial did, so a migrated run gives the same metrics and weights:

- Determined's run-level semantics: the length and the validation / checkpoint periods of the old
  config (now entrypoint arguments, see ``RunSettings``), training metrics averaged every
  ``scheduling_unit`` batches, ``checkpoint_policy``, ``perform_initial_validation``; the batches
  in Determined's order (a seeded shuffle per epoch, repeated, sharded by rank, resumed mid-epoch).
- Lightning's per-batch semantics: the module's hooks in Lightning's order, ``configure_optimizers``
  in all its forms (several optimizers take turns, schedulers step by ``interval`` and
  ``frequency``), ``self.log`` with Lightning's defaults, 1.x ``*_epoch_end`` hooks, mixed
  precision (autocast around the steps, a GradScaler for float16).
- Checkpoints in the layout ``run-trial`` writes (``state_dict.pth``: models, optimizers,
  schedulers, RNG, scaler, loader position), so a run can switch between the two mid-training; a
  checkpoint of another trial (Continue Trial, warm start) keeps the weights and restarts the count.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import inspect
import itertools
import json
import math
import pathlib
import random
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils import data

__all__ = [
    "RunSettings",
    "TrialContext",
    "distributed_context",
    "local_cluster_info",
    "seed_everything",
    "train",
]

STATE_FILE = "state_dict.pth"
# What the module needs. migrate-trial writes this file for one module: it keeps the branches of
# these flags (and the hooks) that the module uses and leaves the rest out, flags included.
SEVERAL_OPTIMIZERS: bool = True  # 1.x automatic optimization: training_step(..., optimizer_idx)
LR_SCHEDULERS: bool = True
MIXED_PRECISION: bool = True  # precision 16 (autocast and a GradScaler) or bf16
# Hooks this file does not call (the module did not override them when it was migrated).
_LEFT_OUT_HOOKS: frozenset[str] = frozenset()
_NO_AUTOCAST = contextlib.nullcontext()  # reusable: full precision needs no context
_UNITS = ("batches", "epochs", "records")
# What decides a loader's batches; its other arguments (workers, collate, ...) are kept.
_SAMPLING_ARGS = frozenset(
    {"dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"}
)


# -- what the run is told -------------------------------------------------------------------------


@dataclasses.dataclass
class RunSettings:
    """The old config's length and periods; Determined 0.38 leaves them to the training code."""

    max_length: tuple[str, int]
    validation_period: tuple[str, int] | None = None
    checkpoint_period: tuple[str, int] | None = None
    scheduling_unit: int = 100
    perform_initial_validation: bool = False
    checkpoint_policy: str = "best"
    metric: str = "loss"
    smaller_is_better: bool = True

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> RunSettings:
        parser = argparse.ArgumentParser(description="Train the trial with the Core API.")
        parser.add_argument("--max-length", type=_length, required=True, metavar="UNIT=N")
        parser.add_argument("--validation-period", type=_length, metavar="UNIT=N")
        parser.add_argument("--checkpoint-period", type=_length, metavar="UNIT=N")
        parser.add_argument("--scheduling-unit", type=int, default=100, metavar="N")
        parser.add_argument("--perform-initial-validation", action="store_true")
        parser.add_argument("--checkpoint-policy", choices=("best", "all", "none"), default="best")
        parser.add_argument("--metric", default="loss", help="searcher.metric")
        parser.add_argument("--larger-is-better", action="store_true")
        args = parser.parse_args(argv)
        return cls(
            max_length=args.max_length,
            validation_period=args.validation_period,
            checkpoint_period=args.checkpoint_period,
            scheduling_unit=args.scheduling_unit,
            perform_initial_validation=args.perform_initial_validation,
            checkpoint_policy=args.checkpoint_policy,
            metric=args.metric,
            smaller_is_better=not args.larger_is_better,
        )


def _length(text: str) -> tuple[str, int]:
    unit, _, value = text.partition("=")
    if unit not in _UNITS or not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write UNIT=N, UNIT one of {_UNITS}")
    return unit, int(value)


@dataclasses.dataclass
class TrialContext:
    """What the old ``PyTorchTrialContext`` offered the trial, as plain values."""

    hparams: dict[str, Any]
    data_config: dict[str, Any]
    experiment_config: dict[str, Any]
    per_slot_batch_size: int
    global_batch_size: int
    distributed: Any
    device: torch.device
    trial_id: int
    trial_seed: int

    @classmethod
    def create(cls, info: Any, core_context: Any) -> TrialContext:
        hparams = dict(info.trial.hparams)
        size = core_context.distributed.size
        global_batch_size = int(hparams.get("global_batch_size", size))
        local_rank = core_context.distributed.local_rank
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)  # NCCL and torch.cuda calls use this rank's GPU
        # Off a cluster each process may draw its own seed: every rank takes the chief's.
        seed = int(core_context.distributed.broadcast(int(info.trial.trial_seed)))
        return cls(
            hparams=hparams,
            data_config=dict(info.user_data or {}),
            experiment_config=dict(getattr(info.trial, "_config", None) or {}),
            per_slot_batch_size=global_batch_size // size,
            global_batch_size=global_batch_size,
            distributed=core_context.distributed,
            device=torch.device("cuda", local_rank) if cuda else torch.device("cpu"),
            trial_id=int(info.trial.trial_id),
            trial_seed=seed,
        )


def local_cluster_info(config_path: str | pathlib.Path) -> Any:
    """Off a cluster ``det.get_cluster_info()`` is None: read hparams (constant values) and
    ``data`` from the experiment config instead, as trial 1 of that experiment."""
    import yaml

    path = pathlib.Path(config_path)
    config = yaml.safe_load(path.read_text()) or {}
    hparams = {}
    for name, value in (config.get("hyperparameters") or {}).items():
        if isinstance(value, dict) and "type" in value:
            if value["type"] != "const":
                raise SystemExit(
                    f"{path}: hyperparameter {name!r} is a search space ({value['type']}); "
                    "off a cluster give it a constant value"
                )
            value = value["val"]
        hparams[name] = value
    seed = (config.get("reproducibility") or {}).get("experiment_seed")
    trial = argparse.Namespace(
        trial_id=1,
        trial_seed=int(seed) if seed is not None else random.randrange(2**31),
        hparams=hparams,
        _config=config,
    )
    return argparse.Namespace(
        trial=trial, user_data=config.get("data") or {}, latest_checkpoint=None
    )


def distributed_context() -> Any:
    """Several processes (launched by torchrun or Determined's launcher) need a
    ``DistributedContext``; one process needs none."""
    import os

    import determined as det

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return det.core.DistributedContext.from_torch_distributed()


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch from the trial seed, as Determined did."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- the run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Progress:
    """The run's position, saved in every checkpoint (``trial_state``, as run-trial saves it)."""

    trial_id: int = 1
    seed: int = 0
    batches_trained: int = 0
    epochs_trained: int = 0
    last_validated: int | None = None
    best_validation: float | None = None
    best_metrics: dict[str, Any] | None = None
    last_metrics: dict[str, Any] | None = None


def train(
    core_context: Any,
    context: TrialContext,
    settings: RunSettings,
    trial: Any,
    latest_checkpoint: str | None,
) -> None:
    """Train ``trial.lightning_module`` until the length, validating, checkpointing and
    reporting on the settings' periods; stop with a checkpoint when the cluster preempts."""
    module = _Module(trial, context)
    dist = core_context.distributed
    train_loader = trial.build_training_data_loader()
    val_loader = trial.build_validation_data_loader()
    batches = _Batches(train_loader, context.trial_seed, dist.size, dist.rank, module.major)
    epoch_len = batches.epoch_len
    total = _in_batches(settings.max_length, epoch_len, context.global_batch_size)
    validate_every = _period(settings.validation_period, epoch_len, context.global_batch_size)
    checkpoint_every = _period(settings.checkpoint_period, epoch_len, context.global_batch_size)
    progress = _Progress(trial_id=context.trial_id, seed=context.trial_seed)
    batches.seek(0)
    start = 0
    if latest_checkpoint is not None:
        start = _steps_of(core_context, latest_checkpoint, context.trial_id)
        batches.seek(start)
        if batches.open_at_checkpoint(start):
            batches.open(start)  # created before the restore, which puts the RNG back after it
    module.configure(epoch_len, total)
    if latest_checkpoint is not None:
        progress = _restore(core_context, context, module, latest_checkpoint, progress)
    run = _Run(core_context, context, settings, module, val_loader, progress, epoch_len, total)
    run.last_checkpointed = progress.batches_trained if latest_checkpoint else None
    status = "failed"
    try:
        if batches.opens_early(progress.batches_trained):
            batches.open(0)  # Lightning 2.x: before on_train_start
        module.hook("on_train_start")
        initial = settings.perform_initial_validation and progress.batches_trained == 0
        if initial and progress.last_validated is None and run.validate():
            run.checkpoint()
        status = run.train_until_done(batches, validate_every, checkpoint_every)
    finally:
        module.end(status)


class _Run:
    """The loop of one run: train, report, validate, checkpoint, check for preemption."""

    def __init__(
        self,
        core: Any,
        context: TrialContext,
        settings: RunSettings,
        module: _Module,
        val_loader: data.DataLoader,
        progress: _Progress,
        epoch_len: int,
        total: int,
    ) -> None:
        self.core, self.context, self.settings, self.module = core, context, settings, module
        self.val_loader = _validation_loader(val_loader, core.distributed)
        self.progress, self.epoch_len, self.total = progress, epoch_len, total
        self.pending: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = progress.last_metrics
        self.last_checkpointed: int | None = None
        self.latest: str | None = None

    def train_until_done(
        self, batches: _Batches, validate_every: int | None, checkpoint_every: int | None
    ) -> str:
        progress, epoch_len, module = self.progress, self.epoch_len, self.module
        iterator: Iterator[Any] | None = None
        while progress.batches_trained < self.total:
            idx = progress.batches_trained
            epoch = idx // epoch_len
            if idx % epoch_len == 0:
                module.epoch_start(epoch)
                iterator = batches.open(idx)  # after on_train_epoch_start, as Lightning
            elif iterator is None:  # resumed mid-epoch: the iterator made before the restore
                iterator = batches.open(idx)
            batch = _to_device(next(iterator), self.context.device)
            metrics = module.train_batch(batch, epoch, idx % epoch_len)
            if metrics is None:  # on_train_batch_start returned -1: the epoch ends here
                progress.batches_trained = min((epoch + 1) * epoch_len, self.total)
                self.finish_epoch(epoch, idx)
                batches.end_epoch()
                iterator = None
                if self._preempted():
                    return "preempted"
                continue
            self.pending.append(metrics)
            progress.batches_trained = done = idx + 1
            if done % self.settings.scheduling_unit == 0:
                self.report_training()
            wants_checkpoint = False
            if validate_every and done % validate_every == 0:
                wants_checkpoint = self.validate()
            if done % epoch_len == 0:  # Lightning validates before the epoch's end hooks
                self.finish_epoch(epoch, idx)
            if done >= self.total:
                break
            if wants_checkpoint or (checkpoint_every and done % checkpoint_every == 0):
                self.checkpoint()
            if self._preempted():
                return "preempted"
            if self._should_stop():  # trainer.should_stop = True: end the run here
                self.report_training()
                self.checkpoint()
                break
        self.report_training()
        if progress.last_validated != progress.batches_trained:
            self.validate()
        self.checkpoint()  # the end always leaves a current checkpoint
        return "completed"

    def _preempted(self) -> bool:
        """Every rank asks: the chief decides and tells the others (PreemptMode default)."""
        if not self.core.preempt.should_preempt():
            return False
        self.report_training()
        self.checkpoint()
        return True

    def _should_stop(self) -> bool:
        stop = self.module.should_stop()
        if self.core.distributed.size > 1:  # one rank's request stops every rank
            stop = any(self.core.distributed.allgather(stop))
        return stop

    def finish_epoch(self, epoch: int, idx: int) -> None:
        self.progress.epochs_trained = epoch + 1
        values = self.module.epoch_end(epoch)
        if values and self.core.distributed.rank == 0:
            # Training epoch values (on_epoch=True), logged at the epoch's end as Lightning does.
            self.core.train.report_training_metrics(idx + 1, values)

    def report_training(self) -> None:
        if not self.pending:
            return
        batch_metrics, self.pending = self.pending, []
        metrics = _average(batch_metrics)
        dist = self.core.distributed
        if dist.size > 1:
            gathered = dist.allgather((metrics, len(batch_metrics)))
            metrics = _weighted_mean(gathered)
        done = self.progress.batches_trained
        metrics = {**metrics, "batches": done, "epochs": done / self.epoch_len}
        if dist.rank == 0:
            self.core.train.report_training_metrics(done, metrics)
            self.core.train.report_progress(min(1.0, done / self.total))

    def validate(self) -> bool:
        """Validate and report; True when the checkpoint policy wants a checkpoint now."""
        done, dist = self.progress.batches_trained, self.core.distributed
        outputs, logged = self.module.validate(self.val_loader)
        metrics = {**_reduce_mean(outputs), **logged}
        if dist.size > 1:
            gathered = dist.allgather((metrics, len(outputs)))
            metrics = _weighted_mean([(m, n) for m, n in gathered if n])
        name = self.settings.metric
        if name not in metrics:
            raise ValueError(
                f"the searcher metric {name!r} was not reported by validation; the validation "
                f"metrics are {sorted(metrics)}: log it in validation_step or change --metric"
            )
        if dist.rank == 0:
            report = {**metrics, "batches": done, "epochs": done / self.epoch_len}
            self.core.train.report_validation_metrics(done, report)
        self.progress.last_validated = done
        self.final = self.progress.last_metrics = _plain(metrics)
        value = metrics[name]
        if self._is_better(value):
            self.progress.best_validation = float(value)
            self.progress.best_metrics = self.final
        policy = self.settings.checkpoint_policy
        return policy == "all" or (policy == "best" and self.progress.best_validation == value)

    def _is_better(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        best = self.progress.best_validation
        if best is None:
            return True
        return value < best if self.settings.smaller_is_better else value > best

    def checkpoint(self) -> None:
        done = self.progress.batches_trained
        if self.last_checkpointed == done:
            return
        validated = self.progress.last_validated == done and self.final
        metric = self.final.get(self.settings.metric) if validated and self.final else None
        self.latest = _save(self.core, self.context, self.module, self.progress, metric, self)
        self.last_checkpointed = done


# -- the LightningModule --------------------------------------------------------------------------


class _Module:
    """The trial's LightningModule with a small stand-in for the Trainer it expects."""

    def __init__(self, trial: Any, context: TrialContext) -> None:
        self.trial, self.lm = trial, trial.lightning_module
        self.context = context
        self.major = _lightning_major(self.lm)
        self.base = _lightning_base(self.lm)
        if MIXED_PRECISION:
            precision = str(getattr(trial, "precision", 32)).removesuffix("-mixed")
            if precision == "16" and context.device.type == "cpu":
                message = "precision=16 on the CPU runs as bf16 (as Lightning does)"
                warnings.warn(message, stacklevel=2)
                precision = "bf16"
            self.precision = {"32-true": "32"}.get(precision, precision)
            self.scaler = torch.amp.GradScaler(context.device.type) if precision == "16" else None
        else:
            self.precision = "32"
        dist = context.distributed
        self.log = _Log(dist.allgather if dist.size > 1 else None)
        self.trainer = _Trainer(self, context)
        self._overridden: dict[str, bool] = {}
        added = sorted(name for name in _LEFT_OUT_HOOKS if self.overrides(name))
        if added:
            raise TypeError(
                f"{type(self.lm).__qualname__} overrides {', '.join(added)}, which this "
                "core_loop.py does not call (it was written for the module as it was when "
                "migrated): add the calls where Lightning makes them, or migrate again"
            )
        self.optimizers: list[Any] = []
        self.schedulers: list[dict[str, Any]] = []
        if SEVERAL_OPTIMIZERS:
            self.frequencies: list[int] | None = None
        self.epoch_outputs: list[Any] = []
        self.validation_outputs: list[Any] = []
        lm = self.lm
        lm.trainer = self.trainer
        lm.log, lm.log_dict = self.log.log, self.log.log_dict
        if SEVERAL_OPTIMIZERS:
            lm.optimizers = lambda use_pl_optimizer=True: (
                self.optimizers[0] if len(self.optimizers) == 1 else self.optimizers
            )
        else:
            lm.optimizers = lambda use_pl_optimizer=True: self.optimizers[0]
        if LR_SCHEDULERS:
            lm.lr_schedulers = lambda: (
                None
                if not self.schedulers
                else self.schedulers[0]["scheduler"]
                if len(self.schedulers) == 1
                else [s["scheduler"] for s in self.schedulers]
            )
        else:
            lm.lr_schedulers = lambda: None
        self.hook("prepare_data")
        self.hook("setup", "fit")  # before the move to the device, as Lightning does
        lm.to(context.device)

    def overrides(self, name: str) -> bool:
        overridden = self._overridden.get(name)
        if overridden is None:  # looked up once per name: hooks run on every batch
            method = getattr(type(self.lm), name, None)
            overridden = method is not None and method is not getattr(self.base, name, None)
            self._overridden[name] = overridden
        return overridden

    def hook(self, name: str, *args: Any) -> Any:
        if not self.overrides(name):
            return None
        log = self.log
        previous, log.hook = log.hook, name  # what self.log's defaults depend on
        try:
            return getattr(self.lm, name)(*args)
        finally:
            log.hook = previous

    def configure(self, epoch_len: int, total: int) -> None:
        """Lightning configures optimizers once the data is known, then calls on_fit_start."""
        self.trainer.num_training_batches, self.trainer.estimated_stepping_batches = (
            epoch_len,
            total,
        )
        self.trainer.max_epochs = math.ceil(total / epoch_len)
        conf = self.lm.configure_optimizers()
        self.optimizers, self.schedulers, frequencies = _parse_optimizers(conf)
        if SEVERAL_OPTIMIZERS:
            self.frequencies = frequencies
            self.every_optimizer = list(range(len(self.optimizers)))
        elif len(self.optimizers) != 1:
            raise ValueError(
                f"configure_optimizers returned {len(self.optimizers)} optimizers; this "
                "core_loop.py was written for a module with one (its training_step takes no "
                "optimizer_idx): migrate again from the full template, or return one optimizer"
            )
        self.training_step = _training_step(self.lm, self.context, len(self.optimizers))
        self.hook("on_fit_start")

    def epoch_start(self, epoch: int) -> None:
        """A new training epoch: the trainer's epoch, then the module's hook."""
        self.trainer.current_epoch = epoch
        self.hook("on_train_epoch_start")

    def train_batch(self, batch: Any, epoch: int, batch_idx: int) -> dict[str, Any] | None:
        """One batch, Lightning's automatic optimization; None when the epoch ends early."""
        self.trainer.current_epoch = epoch
        self.log.batch = batch
        if (
            self.overrides("on_train_batch_start")
            and self.hook("on_train_batch_start", batch, batch_idx) == -1
        ):
            if LR_SCHEDULERS and self.major >= 2:  # 2.x steps the schedulers first; 1.x not
                self._step_schedulers("step", batch_idx, epoch, None)
                self._step_schedulers("epoch", batch_idx, epoch, None)
            return None
        if SEVERAL_OPTIMIZERS:
            several = len(self.optimizers) > 1
            outputs, logged = [], []
            for opt_idx in self._active(batch_idx):
                outputs.append(self._optimize(batch, batch_idx, epoch, opt_idx))
                logged.append(self.log.take_step_metrics())
                if LR_SCHEDULERS:
                    self._step_schedulers("step", batch_idx, epoch, opt_idx)
            output: Any = outputs if several else outputs[0] if outputs else None
        else:
            output = self._optimize(batch, batch_idx, epoch, 0)
            step_logged = self.log.take_step_metrics()
            if LR_SCHEDULERS:
                self._step_schedulers("step", batch_idx, epoch, 0)
        if LR_SCHEDULERS and batch_idx + 1 == self.trainer.num_training_batches:
            self._step_schedulers("epoch", batch_idx, epoch, None)
        self.hook("on_train_batch_end", output if output is not None else {}, batch, batch_idx)
        if self.overrides("training_epoch_end"):
            several_none = isinstance(output, list) and all(o is None for o in output)
            if output is not None and not several_none:
                self.epoch_outputs.append(output)
        if SEVERAL_OPTIMIZERS:
            return self._batch_metrics(outputs, logged)
        return {**_scalars(output), **step_logged, **self.log.take_step_metrics()}

    def _active(self, batch_idx: int) -> list[int]:
        if self.frequencies is None:
            return self.every_optimizer
        bounds = list(itertools.accumulate(self.frequencies))
        return [next(i for i, b in enumerate(bounds) if batch_idx % bounds[-1] < b)]

    def _optimize(self, batch: Any, batch_idx: int, epoch: int, opt_idx: int) -> Any:
        optimizer = self.optimizers[opt_idx]
        legacy_idx = (opt_idx,) if self.major == 1 else ()  # 1.x hooks take optimizer_idx
        if SEVERAL_OPTIMIZERS and len(self.optimizers) > 1:
            self.lm.toggle_optimizer(optimizer, *legacy_idx)
        log = self.log
        with self.autocast() if MIXED_PRECISION else _NO_AUTOCAST:
            log.hook = "training_step"
            try:
                if SEVERAL_OPTIMIZERS and len(self.optimizers) > 1:
                    output = self.training_step(batch, batch_idx, opt_idx)
                else:
                    output = self.training_step(batch, batch_idx)
            finally:
                log.hook = ""
        if self.overrides("training_step_end"):
            ended = self.hook("training_step_end", output)
            output = output if ended is None else ended
        loss = output if isinstance(output, torch.Tensor) else None
        if isinstance(output, dict):
            loss = output["loss"]
        self.hook("on_before_zero_grad", optimizer)
        if self.overrides("optimizer_zero_grad"):
            self.hook("optimizer_zero_grad", epoch, batch_idx, optimizer, *legacy_idx)
        else:
            optimizer.zero_grad()
        if loss is not None:
            if MIXED_PRECISION and self.scaler is not None:
                loss = self.scaler.scale(loss)
            self.hook("on_before_backward", loss)
            loss.backward()  # under several ranks DDP has averaged the gradients by now
            self.hook("on_after_backward")
            if MIXED_PRECISION and self.scaler is not None:
                self.scaler.unscale_(optimizer)
        self.hook("on_before_optimizer_step", optimizer, *legacy_idx)
        self.hook("configure_gradient_clipping", optimizer, *legacy_idx, None, None)
        if MIXED_PRECISION and self.scaler is not None:
            if loss is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
        else:
            optimizer.step()
        self.trainer.global_step += 1
        if SEVERAL_OPTIMIZERS and len(self.optimizers) > 1:
            if self.major == 1:
                self.lm.untoggle_optimizer(*legacy_idx)
            else:
                self.lm.untoggle_optimizer(optimizer)
        if output is None or not (
            self.overrides("on_train_batch_end") or self.overrides("training_epoch_end")
        ):
            return output  # nothing reads it later: no need to detach
        if isinstance(output, torch.Tensor):
            return {"loss": output.detach()}
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in output.items()}

    def _step_schedulers(self, interval: str, batch_idx: int, epoch: int, opt: int | None) -> None:
        for cfg in self.schedulers:
            if cfg["reduce_on_plateau"] or cfg["interval"] != interval:
                continue
            if opt is not None and cfg["opt_idx"] != opt:
                continue
            index = batch_idx if interval == "step" else epoch
            if (index + 1) % cfg["frequency"] == 0:
                cfg["scheduler"].step()

    def _batch_metrics(self, outputs: list[Any], logged: list[dict[str, Any]]) -> dict[str, Any]:
        """Scalar outputs and step-logged values of each optimizer, ``opt{i}_``-prefixed where
        several optimizers give the same name (as Determined's adapter reported them)."""
        rest = self.log.take_step_metrics()
        if len(outputs) == 1:
            return {**_scalars(outputs[0]), **logged[0], **rest}
        per_opt = [{**_scalars(out), **values} for out, values in zip(outputs, logged, strict=True)]
        counts: dict[str, int] = {}
        for metrics in per_opt:
            for name in metrics:
                counts[name] = counts.get(name, 0) + 1
        merged = {
            f"opt{idx}_{name}" if counts[name] > 1 else name: value
            for idx, metrics in enumerate(per_opt)
            for name, value in metrics.items()
        }
        return {**merged, **rest}

    def epoch_end(self, epoch: int) -> dict[str, float]:
        if self.overrides("training_epoch_end"):
            outputs, self.epoch_outputs = self.epoch_outputs, []
            self.hook("training_epoch_end", outputs)
        self.hook("on_train_epoch_end")
        values = self.log.finish_epoch("train")
        if LR_SCHEDULERS:
            self._step_plateau_schedulers(epoch)
        return values

    def _step_plateau_schedulers(self, epoch: int) -> None:
        for cfg in self.schedulers:
            due = cfg["interval"] == "epoch" and (epoch + 1) % cfg["frequency"] == 0
            if not cfg["reduce_on_plateau"] or not due:
                continue
            value = self.log.callback_metrics.get(cfg["monitor"])
            if value is None:
                raise ValueError(
                    f"ReduceLROnPlateau conditioned on metric {cfg['monitor']!r} which is not "
                    f"available; available metrics are {sorted(self.log.callback_metrics)}"
                )
            cfg["scheduler"].step(value)

    def validate(self, loader: data.DataLoader) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """One pass: eval mode (each submodule's mode restored), no_grad, Lightning's hooks."""
        batches: Any = iter(loader) if self.major >= 2 else loader  # 2.x creates it first
        modes = [(m, m.training) for m in self.lm.modules()]
        self.lm.eval()
        outputs: list[dict[str, Any]] = []
        try:
            self.trainer.training, self.trainer.validating = False, True
            self.validation_outputs = []
            if isinstance(self.training_step, DistributedDataParallel):
                # Validation skips DDP's forward, which would broadcast rank 0's buffers first.
                for buffer in self.lm.buffers():
                    torch_dist.broadcast(buffer, src=0)
            self.hook("on_validation_start")
            self.hook("on_validation_epoch_start")
            extra = (0,) if self.major == 1 else ()  # 1.x hooks take a dataloader_idx
            with torch.no_grad():
                for idx, batch in enumerate(batches):
                    batch = _to_device(batch, self.context.device)
                    self.log.batch = batch
                    self.hook("on_validation_batch_start", batch, idx, *extra)
                    with self.autocast() if MIXED_PRECISION else _NO_AUTOCAST:
                        self.log.hook = "validation_step"
                        try:
                            output = self.lm.validation_step(batch, idx)
                        finally:
                            self.log.hook = ""
                    if self.overrides("validation_step_end"):
                        ended = self.hook("validation_step_end", output)
                        output = output if ended is None else ended
                    self.hook("on_validation_batch_end", output, batch, idx, *extra)
                    if self.overrides("validation_epoch_end") and output is not None:
                        self.validation_outputs.append(output)
                    outputs.append(_scalars(output))
            if self.overrides("validation_epoch_end"):
                self.hook("validation_epoch_end", self.validation_outputs)
            self.hook("on_validation_epoch_end")
            self.validation_outputs = []
            logged = self.log.finish_epoch("val")
            self.hook("on_validation_end")
            self.trainer.training, self.trainer.validating = True, False
        finally:
            for module, training in modes:
                module.training = training
        return outputs, logged

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Lightning's precision plugin: autocast around the steps (16 or bf16)."""
        if self.precision == "32":
            return _NO_AUTOCAST
        dtype = torch.float16 if self.precision == "16" else torch.bfloat16
        return torch.autocast(self.context.device.type, dtype=dtype, cache_enabled=False)

    def should_stop(self) -> bool:
        return bool(self.trainer.should_stop)

    def end(self, status: str) -> None:
        """Lightning's hooks at the end of fit."""
        if status == "completed":
            self.hook("on_train_end")
            self.hook("on_fit_end")
        self.hook("teardown", "fit")

    def state(self) -> dict[str, Any]:
        hparams = dict(getattr(self.lm, "hparams", None) or {})
        plain = (bool, int, float, str, type(None))
        return {
            "hyper_parameters": {k: v for k, v in hparams.items() if isinstance(v, plain)},
            "global_step": self.trainer.global_step,
            "epoch_outputs": self.epoch_outputs,
            "log": self.log.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.trainer.global_step = int(state.get("global_step", 0))
        self.epoch_outputs = list(state.get("epoch_outputs", []))
        self.log.load_state_dict(state.get("log", {}))


class _Trainer:
    """What a LightningModule reads from its trainer (``current_epoch``, ``global_step``, ...)."""

    def __init__(self, module: _Module, context: TrialContext) -> None:
        dist = context.distributed
        self._module = module
        self.global_rank, self.local_rank, self.world_size = dist.rank, dist.local_rank, dist.size
        self.node_rank, self.num_nodes = dist.cross_rank, dist.cross_size
        self.num_devices = dist.local_size
        self.is_global_zero = dist.rank == 0
        legacy = module.major == 1
        self.precision: Any = {"32": 32, "16": 16}.get(module.precision, module.precision)
        if not legacy:
            self.precision = {"32": "32-true", "16": "16-mixed"}.get(module.precision, "bf16-mixed")
        self.current_epoch = self.global_step = 0
        self.training, self.validating, self.testing, self.predicting = True, False, False, False
        self.sanity_checking = False
        self.should_stop = False
        self.num_training_batches = self.estimated_stepping_batches = self.max_epochs = 0
        self.max_steps = -1
        self.logger = None
        self.loggers: list[Any] = []
        self.callbacks: list[Any] = []

    @property
    def optimizers(self) -> list[Any]:
        return self._module.optimizers

    @property
    def callback_metrics(self) -> dict[str, Any]:
        return self._module.log.callback_metrics

    @property
    def logged_metrics(self) -> dict[str, Any]:
        return self._module.log.logged_metrics


def _lightning_major(module: Any) -> int:
    return _lightning_package(module)[1]


def _lightning_base(module: Any) -> type:
    package, _ = _lightning_package(module)
    return package.LightningModule


def _lightning_package(module: Any) -> tuple[Any, int]:
    for klass in type(module).__mro__:
        name = klass.__module__.split(".")[0]
        if name == "pytorch_lightning":
            package = importlib.import_module(name)
        elif name == "lightning":
            package = importlib.import_module("lightning.pytorch")
        else:
            continue
        return package, int(str(package.__version__).split(".")[0])
    raise TypeError(f"{type(module).__qualname__} is not a LightningModule")


def _parse_optimizers(conf: Any) -> tuple[list[Any], list[dict[str, Any]], list[int] | None]:
    """``configure_optimizers``'s result: optimizers, scheduler configs (with the 1.x
    ``opt_idx``), and the 1.x frequencies (None when every optimizer steps on every batch)."""
    monitor = None
    frequencies: list[int] | None = None
    entries: list[tuple[Any, int | None]] = []
    if isinstance(conf, torch.optim.Optimizer):
        optimizers = [conf]
    elif isinstance(conf, dict):
        optimizers = [conf["optimizer"]]
        monitor = conf.get("monitor") if LR_SCHEDULERS else None
        entries = [(conf["lr_scheduler"], None)] if "lr_scheduler" in conf else []
    elif isinstance(conf, (list, tuple)) and len(conf) == 2 and isinstance(conf[0], list):
        optimizers = list(conf[0])
        scheds = conf[1] if isinstance(conf[1], list) else [conf[1]]
        entries = [(s, None) for s in scheds]
    elif isinstance(conf, (list, tuple)) and all(isinstance(c, dict) for c in conf):
        optimizers = [c["optimizer"] for c in conf]
        if SEVERAL_OPTIMIZERS:  # 1.x: optimizers take turns, `frequency` batches each
            given = [c["frequency"] for c in conf if "frequency" in c]
            frequencies = given if given else None
        entries = [(c["lr_scheduler"], i) for i, c in enumerate(conf) if "lr_scheduler" in c]
    else:
        optimizers = list(conf)
    turns = frequencies if SEVERAL_OPTIMIZERS else None
    if LR_SCHEDULERS:
        return optimizers, _scheduler_configs(entries, optimizers, monitor), turns
    if entries:
        raise ValueError(
            "configure_optimizers returned an LR scheduler; this core_loop.py was written "
            "for a module without one: migrate again from the full template"
        )
    return optimizers, [], turns


def _scheduler_configs(
    entries: list[tuple[Any, int | None]], optimizers: list[Any], monitor: Any
) -> list[dict[str, Any]]:
    """Lightning's scheduler config for each scheduler (``interval``, ``frequency``, ...)."""
    schedulers = []
    for entry, opt_idx in entries:
        cfg = dict(entry) if isinstance(entry, dict) else {"scheduler": entry}
        scheduler = cfg["scheduler"]
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        owner = next(i for i, opt in enumerate(optimizers) if opt is scheduler.optimizer)
        schedulers.append(
            {
                "scheduler": scheduler,
                "interval": cfg.get("interval", "epoch"),
                "frequency": cfg.get("frequency", 1),
                "reduce_on_plateau": cfg.get("reduce_on_plateau", plateau),
                "monitor": cfg.get("monitor", monitor),
                "opt_idx": owner if opt_idx is None else opt_idx,
            }
        )
    return schedulers


class _TrainingStep(torch.nn.Module):
    """What DDP wraps, as Lightning's DDP strategy: calling it runs ``training_step``, so each
    step passes through DDP's forward (rank 0's buffers broadcast first) and its reducer
    averages the gradients in buckets while the backward pass runs."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any) -> Any:
        return self.module.training_step(*args)


def _training_step(lm: Any, context: TrialContext, optimizers: int) -> Any:
    """``training_step`` itself on one process; through DistributedDataParallel on several."""
    trainable = any(p.requires_grad for p in lm.parameters())
    if context.distributed.size < 2 or not trainable:
        return lm.training_step
    device = context.device
    # Lightning 1.x searches for unused parameters by default; 2.x does not, but toggled
    # optimizers leave the others' parameters without gradients in a step.
    unused = _lightning_major(lm) < 2 or optimizers > 1
    return DistributedDataParallel(
        _TrainingStep(lm),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=unused,
    )


# -- self.log -------------------------------------------------------------------------------------

_STEP_HOOKS = frozenset(
    {
        "training_step",
        "training_step_end",
        "on_train_batch_start",
        "on_train_batch_end",
        "on_before_backward",
        "on_after_backward",
        "on_before_optimizer_step",
        "on_before_zero_grad",
        "optimizer_zero_grad",
        "configure_gradient_clipping",
    }
)
_VALIDATION_BATCH_HOOKS = frozenset(
    {
        "validation_step",
        "validation_step_end",
        "on_validation_batch_start",
        "on_validation_batch_end",
    }
)


class _Log:
    """``self.log`` / ``self.log_dict`` with Lightning's arguments and defaults: step values join
    the batch's training metrics, epoch values (batch-size weighted means, accumulated in float32
    as Lightning does) join the epoch's metrics. With several ranks a ``sync_dist=True`` epoch
    value is reduced over every rank's batches, as Lightning's ``sync_dist``: every rank gathers
    at every epoch's end (``allgather``), so one without validation batches still takes part."""

    def __init__(self, allgather: Any = None) -> None:
        self.allgather = allgather
        self.synced: set[str] = set()
        self.hook = ""
        self.batch: Any = None
        self.step_metrics: dict[str, Any] = {}
        self.callback_metrics: dict[str, Any] = {}
        self.logged_metrics: dict[str, Any] = {}
        self.epoch: dict[str, dict[str, list[Any]]] = {"train": {}, "val": {}}
        self.stepped_too: set[str] = set()

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        batch_size: int | None = None,
        sync_dist: bool = False,
        **ignored: Any,
    ) -> None:
        number = value.detach() if isinstance(value, torch.Tensor) else float(value)
        in_step = self.hook in _STEP_HOOKS
        on_step = in_step if on_step is None else on_step
        on_epoch = (not in_step) if on_epoch is None else on_epoch
        if on_step and on_epoch:
            self.stepped_too.add(name)
        if on_step:
            key = f"{name}_step" if on_epoch else name
            if logger is not False:
                self.logged_metrics[key] = number
            if self.hook not in _VALIDATION_BATCH_HOOKS:
                self.step_metrics[key] = self.callback_metrics[key] = number
                self.callback_metrics[name] = number
        if on_epoch:
            stage = "val" if "validation" in self.hook else "train"
            fx = getattr(reduce_fx, "__name__", str(reduce_fx))
            fx = {"amax": "max", "amin": "min", "avg": "mean"}.get(fx, fx)
            size = batch_size if batch_size is not None else _batch_size(self.batch)
            if sync_dist:
                self.synced.add(name)
            bucket = self.epoch[stage].setdefault(name, [fx, 0.0, 0.0, None])
            _accumulate(bucket, float(number), size)

    def log_dict(self, dictionary: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        for name, value in dictionary.items():
            self.log(name, value, *args, **kwargs)

    def take_step_metrics(self) -> dict[str, Any]:
        out, self.step_metrics = self.step_metrics, {}
        return out

    def finish_epoch(self, stage: str) -> dict[str, float]:
        if self.allgather is not None:
            mine = {n: b for n, b in self.epoch[stage].items() if n in self.synced}
            merged: dict[str, list[Any]] = {}
            for per_rank in self.allgather(mine):
                for name, other in per_rank.items():
                    _merge(merged.setdefault(name, [other[0], 0.0, 0.0, None]), other)
            self.epoch[stage].update(merged)
        logged: dict[str, Any] = {}
        callback: dict[str, Any] = {}
        for name, bucket in self.epoch[stage].items():
            key = f"{name}_epoch" if name in self.stepped_too else name
            logged[key] = callback[key] = callback[name] = _result(bucket)
        self.epoch[stage] = {}
        self.callback_metrics.update(callback)
        self.logged_metrics.update(logged)
        return callback if stage == "val" else logged

    def state_dict(self) -> dict[str, Any]:
        return {
            stage: {n: list(b) for n, b in buckets.items()} for stage, buckets in self.epoch.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for stage, buckets in state.items():
            self.epoch[stage] = {name: list(bucket) for name, bucket in buckets.items()}


def _accumulate(bucket: list[Any], value: float, size: int) -> None:
    fx = bucket[0]
    if fx == "mean":
        total = torch.tensor(bucket[1], dtype=torch.float32)
        bucket[1] = float(total + torch.tensor(value, dtype=torch.float32) * size)
        bucket[2] += size
    elif fx == "sum":
        bucket[1] += value
    else:
        extreme = bucket[3]
        bucket[3] = value if extreme is None else (max if fx == "max" else min)(extreme, value)


def _merge(bucket: list[Any], other: list[Any]) -> None:
    """Add another rank's accumulation of the same value (``sync_dist``)."""
    fx, total, weight, extreme = other
    if fx == "mean":
        summed = torch.tensor(bucket[1], dtype=torch.float32) + torch.tensor(
            total, dtype=torch.float32
        )
        bucket[1], bucket[2] = float(summed), bucket[2] + weight
    elif fx == "sum":
        bucket[1] += total
    elif extreme is not None:
        _accumulate(bucket, extreme, 1)


def _result(bucket: list[Any]) -> float:
    fx, total, weight, extreme = bucket
    if fx == "mean":
        return float(torch.tensor(total, dtype=torch.float32) / int(weight)) if weight else math.nan
    if fx == "sum":
        return float(total)
    return float(extreme) if extreme is not None else math.nan


def _batch_size(batch: Any) -> int:
    """Lightning's rule: the first tensor's ``size(0)``, searching containers in order."""
    if isinstance(batch, torch.Tensor):
        return int(batch.size(0)) if batch.dim() else 1
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(batch, (Mapping, list, tuple)):
        for value in values:
            size = _batch_size(value)
            if size:
                return size
    return 1


# -- data -----------------------------------------------------------------------------------------


class _Batches:
    """This rank's training batches in Determined's order (one seeded shuffle per epoch, repeated,
    sharded: rank r gets global batch i when i % size == r), one torch iterator per epoch, created
    where Lightning creates it (creating one draws from torch's RNG): epoch 0's before
    ``on_train_start`` on 2.x, every other right after ``on_train_epoch_start``."""

    def __init__(self, loader: Any, seed: int, size: int, rank: int, major: int):
        self.loader, self.seed, self.size, self.rank = loader, seed, size, rank
        self.first_early = major >= 2
        sampler = loader.batch_sampler
        if sampler is None:
            raise ValueError("the training DataLoader needs a batch size (automatic batching)")
        self.shuffle = isinstance(sampler.sampler, data.RandomSampler) and loader.generator is None
        # The chief's share: every rank counts epochs alike (an epoch is the chief's length).
        self.epoch_len = -(-len(sampler) // size)
        self.epoch: int | None = None
        self.iterator: Iterator[Any] | None = None
        self.slices = _Slices()
        self.torch_loader = _reloaded(loader, self.slices)
        self.reuses_iterator = loader.persistent_workers and loader.num_workers > 0

    def seek(self, start: int) -> None:
        """Continue at global step ``start``; the steps before are never loaded."""
        self.slices.stream = self._stream(start)
        self.epoch, self.iterator = None, None

    def _stream(self, start: int) -> Iterator[list[int]]:
        sampler = self.loader.batch_sampler
        per_epoch = len(sampler)
        first = start * self.size  # global batches before this rank's next one
        epoch, offset = divmod(first, per_epoch)
        position = first
        while True:
            for index, batch in enumerate(self._epoch_batches(epoch)):
                if index < offset:
                    continue
                if position % self.size == self.rank:
                    yield batch
                position += 1
            epoch, offset = epoch + 1, 0

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            return list(self.loader.batch_sampler)
        return _shuffled_batches(self.loader, self.seed, epoch)

    def open_at_checkpoint(self, start: int) -> bool:
        """Whether the iterator for step ``start`` existed when a checkpoint was taken there."""
        if start == 0:
            return self.first_early
        return self.reuses_iterator or start % self.epoch_len != 0

    def opens_early(self, start: int) -> bool:
        return self.first_early and start == 0 and self.epoch != 0

    def open(self, start: int) -> Iterator[Any]:
        epoch, offset = divmod(start, self.epoch_len)
        if self.epoch != epoch:
            self.slices.count = self.epoch_len - offset
            self.iterator, self.epoch = iter(self.torch_loader), epoch
        assert self.iterator is not None
        return self.iterator

    def end_epoch(self) -> None:
        self.slices.drop_rest()
        self.epoch, self.iterator = None, None


def _shuffled_batches(loader: Any, seed: int, epoch: int) -> list[list[int]]:
    """Epoch ``epoch`` of a shuffled loader: a permutation that depends only on (seed, epoch)."""
    sampler = loader.batch_sampler
    order = np.random.default_rng((seed, epoch)).permutation(len(loader.dataset))
    indices, size = order.tolist(), sampler.batch_size
    batches = [indices[i : i + size] for i in range(0, len(indices), size)]
    if batches and sampler.drop_last and len(batches[-1]) < size:
        batches.pop()
    return batches


class _Slices(data.Sampler):
    """Yields the next ``count`` batches of the shared stream on each pass."""

    def __init__(self) -> None:
        self.stream: Iterator[list[int]] = iter(())
        self.count = 0
        self.current: Iterator[list[int]] = iter(())

    def __iter__(self) -> Iterator[list[int]]:
        self.current = itertools.islice(self.stream, self.count)
        return self.current

    def __len__(self) -> int:
        return self.count

    def drop_rest(self) -> None:
        for _ in self.current:
            pass


def _validation_loader(loader: Any, dist: Any) -> Any:
    """This rank's share of the validation batches (global batch i on rank i % size); a
    shuffled loader gets a new seeded order on every pass, drawing nothing from torch's RNG."""
    sampler = loader.batch_sampler
    shuffled = isinstance(getattr(sampler, "sampler", None), data.RandomSampler)
    if dist.size == 1 and not (shuffled and loader.generator is None):
        return loader
    return _reloaded(loader, _ValidationPasses(loader, dist.size, dist.rank))


def _reloaded(loader: Any, batch_sampler: Any) -> data.DataLoader:
    """A loader like ``loader`` (workers, collate, pinning, ...) whose batches come from
    ``batch_sampler``."""
    kwargs = {
        name: getattr(loader, name)
        for name in inspect.signature(data.DataLoader).parameters
        if name not in _SAMPLING_ARGS and hasattr(loader, name)
    }
    return data.DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)


class _ValidationPasses(data.Sampler):
    def __init__(self, loader: Any, size: int, rank: int) -> None:
        self.loader, self.size, self.rank = loader, size, rank
        sampler = loader.batch_sampler
        self.seeded = isinstance(sampler.sampler, data.RandomSampler) and loader.generator is None
        self.passes = 0

    def _batches(self) -> list[list[int]]:
        if not self.seeded:
            return list(self.loader.batch_sampler)
        return _shuffled_batches(self.loader, 0, self.passes)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        self.passes += 1
        return iter(batches[self.rank :: self.size])

    def __len__(self) -> int:
        return len(self._batches()[self.rank :: self.size])


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# -- lengths, metrics -----------------------------------------------------------------------------


def _in_batches(length: tuple[str, int], epoch_len: int, global_batch_size: int) -> int:
    unit, value = length
    if unit == "epochs":
        return value * epoch_len
    if unit == "records":
        return max(value // global_batch_size, 1)
    return value


def _period(length: tuple[str, int] | None, epoch_len: int, global_batch_size: int) -> int | None:
    if length is None or length[1] < 1:
        return None
    return _in_batches(length, epoch_len, global_batch_size)


def _scalars(output: Any) -> dict[str, Any]:
    if isinstance(output, torch.Tensor):
        return {"loss": output.detach()} if output.numel() == 1 else {}
    if isinstance(output, dict):
        return {
            k: v.detach() if isinstance(v, torch.Tensor) else v
            for k, v in output.items()
            if (isinstance(v, torch.Tensor) and v.numel() == 1)
            or (isinstance(v, (int, float)) and not isinstance(v, bool))
        }
    return {}


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)


def _average(batch_metrics: list[dict[str, Any]]) -> dict[str, float]:
    """Each training metric's mean over the batches that report it."""
    values: dict[str, list[Any]] = {}
    for metrics in batch_metrics:
        for name, value in metrics.items():
            if value is not None:
                values.setdefault(name, []).append(value)
    return {name: float(np.mean(_stacked(vs))) for name, vs in values.items()}


def _stacked(values: list[Any]) -> np.ndarray:
    # One device-to-host copy for a report's tensors, not one per batch: the same float32 data.
    if all(isinstance(v, torch.Tensor) for v in values):
        return torch.stack([v.detach() for v in values]).cpu().numpy()
    return np.stack([_numpy(v) for v in values])


def _reduce_mean(outputs: list[dict[str, Any]]) -> dict[str, float]:
    if not outputs:
        return {}
    return {
        name: float(np.average(np.stack([_numpy(o[name]) for o in outputs]))) for name in outputs[0]
    }


def _weighted_mean(per_rank: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    total = sum(count for _, count in per_rank) or 1
    keys = per_rank[0][0].keys() if per_rank else []
    return {
        key: sum(metrics[key] * count for metrics, count in per_rank if key in metrics) / total
        for key in keys
    }


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (bool, int, str)) else float(v)
        for k, v in metrics.items()
        if isinstance(v, (bool, int, str, float)) or hasattr(v, "__float__")
    }


# -- checkpoints ----------------------------------------------------------------------------------


def _save(
    core: Any, context: TrialContext, module: _Module, progress: _Progress, metric: Any, run: _Run
) -> str:
    """``state_dict.pth`` in run-trial's layout, written by the chief; every rank gets the id."""
    content: dict[str, Any] = {
        "models_state_dict": [module.lm.state_dict()],
        "optimizers_state_dict": [opt.state_dict() for opt in module.optimizers],
        "lr_schedulers_state_dict": [cfg["scheduler"].state_dict() for cfg in module.schedulers]
        if LR_SCHEDULERS
        else [],
        "callbacks": {"_lightning_module": module.state()},
        "rng_state": _capture_rng(),
        "trial_state": dataclasses.asdict(progress),
    }
    if MIXED_PRECISION and module.scaler is not None:
        content["scaler_state_dict"] = module.scaler.state_dict()
    module.hook("on_save_checkpoint", content)
    _check_loadable(content, STATE_FILE)
    metadata = {
        "steps_completed": progress.batches_trained,
        "epochs_completed": progress.epochs_trained,
        "framework": f"torch-{torch.__version__}",
        "format": "pickle",
        "trial_id": progress.trial_id,
        "seed": progress.seed,
        "searcher_metric": run.settings.metric,
        "validation_metric": metric if metric is not None and math.isfinite(metric) else None,
        "saved_at": time.time(),
    }
    storage_id = None
    if core.distributed.rank == 0:
        with core.checkpoint.store_path(metadata) as (path, storage_id):
            torch.save(content, pathlib.Path(path) / STATE_FILE)
    return str(core.distributed.broadcast(storage_id))


_LEAVES = (torch.Tensor, int, float, bool, str, bytes, type(None), torch.dtype, torch.device)


def _check_loadable(value: Any, where: str) -> None:
    """Refuse, when saving, what ``torch.load(weights_only=True)`` would refuse when resuming
    (a numpy array in an output kept for ``training_epoch_end``, an object of the module's)."""
    if isinstance(value, _LEAVES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple, set):
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"the checkpoint's {where} is a {type(value).__module__}.{type(value).__qualname__}; a "
        "checkpoint holds tensors, numbers, strings and lists/dicts of them: convert it (e.g. "
        "with torch.as_tensor) where it is made"
    )


def _steps_of(core: Any, storage_id: str, trial_id: int) -> int:
    """Where a checkpoint of this trial left off; 0 for another trial's (warm start)."""
    with core.checkpoint.restore_path(storage_id) as path:
        metadata = json.loads((pathlib.Path(path) / "metadata.json").read_text())
    if int(metadata.get("trial_id", trial_id)) != trial_id:
        return 0
    return int(metadata["steps_completed"])


def _restore(
    core: Any, context: TrialContext, module: _Module, storage_id: str, progress: _Progress
) -> _Progress:
    with core.checkpoint.restore_path(storage_id) as path:
        # Tensors and plain values only (checked when saved): no code runs while loading.
        file = pathlib.Path(path) / STATE_FILE
        content = torch.load(file, map_location=context.device, weights_only=True)
    module.hook("on_load_checkpoint", content)
    module.lm.load_state_dict(content["models_state_dict"][0])
    saved = content.get("trial_state", {})
    if int(saved.get("trial_id", progress.trial_id)) != progress.trial_id:
        return progress  # another trial's checkpoint: its weights, a fresh count (0.38 docs)
    _load_each(module.optimizers, content["optimizers_state_dict"], "optimizer", path)
    if LR_SCHEDULERS:
        schedulers = [cfg["scheduler"] for cfg in module.schedulers]
        _load_each(schedulers, content["lr_schedulers_state_dict"], "LR scheduler", path)
    if MIXED_PRECISION and module.scaler is not None and "scaler_state_dict" in content:
        module.scaler.load_state_dict(content["scaler_state_dict"])
    module.load_state(content.get("callbacks", {}).get("_lightning_module", {}))
    fields = {f.name for f in dataclasses.fields(_Progress)}
    restored = _Progress(**{k: v for k, v in saved.items() if k in fields})
    restored.seed = progress.seed
    _restore_rng(content["rng_state"])
    return restored


def _load_each(targets: list[Any], states: list[Any], what: str, folder: Any) -> None:
    if len(targets) != len(states):
        raise ValueError(
            f"{folder}/{STATE_FILE} holds {len(states)} {what} states but the module has "
            f"{len(targets)}: it was saved by a different configure_optimizers"
        )
    for target, state in zip(targets, states, strict=True):
        target.load_state_dict(state)


def _capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "cpu_rng_state": torch.get_rng_state(),
        "np_rng_state": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "random_rng_state": {"version": version, "internal": list(internal), "gauss": gauss_next},
    }
    if torch.cuda.is_available():
        state["gpu_rng_state"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu_rng_state"].cpu())
    np_state = state["np_rng_state"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].cpu().numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    py = state["random_rng_state"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "gpu_rng_state" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["gpu_rng_state"]])
