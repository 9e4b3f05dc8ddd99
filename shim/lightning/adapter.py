"""``LightningAdapter``: a PyTorchTrial that trains a LightningModule with Lightning's semantics.

Public Lightning surface only: hooks are called directly, ``configure_optimizers`` is parsed
here, ``log``/``log_dict``/``print``/``optimizers``/``lr_schedulers``/``clip_gradients`` are bound
on the instance, and a small trainer stand-in answers ``current_epoch``, ``global_step`` and the
like. Works with ``pytorch_lightning`` 1.9 and 2.x and with ``lightning.pytorch``.
"""

from __future__ import annotations

import contextlib
import types
import warnings
import weakref
from typing import Any

from shim.errors import ShimError
from shim.lightning import legacy_api
from shim.lightning.bindings import (
    HookScope,
    clip_gradients,
    manual_backward_rejected,
    numpy_as_tensors,
    optimizers_of,
    plain_hparams,
    print_on_rank_zero,
    scalar_metrics,
    schedulers_of,
    tensors_as_numpy,
)
from shim.lightning.callback import LightningCallback
from shim.lightning.compat import check_module, where
from shim.lightning.ddp import TrainingStepCaller
from shim.lightning.log import LogCollector
from shim.lightning.module_hooks import ModuleHooks
from shim.lightning.optimizers import parse_configure_optimizers, scheduler_should_step
from shim.lightning.precision import Precision, lightning_major
from shim.lightning.train_step import run_training_batch
from shim.lightning.trainer_stub import TrainerStub
from shim.pytorch.callback import PyTorchCallback
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.lr_scheduler import LRScheduler
from shim.pytorch.trial import PyTorchTrial

__all__ = ["LightningAdapter"]


class LightningAdapter(PyTorchTrial):
    """Determined's ``LightningAdapter(context, lightning_module, precision=32,
    amp_backend="native", amp_level="O2")``; subclasses add the two data loader builders."""

    # Lightning validates at the end of an epoch before training_epoch_end/on_train_epoch_end.
    _shim_validate_before_epoch_end = True
    # Lightning calls iter(train_loader) every epoch, after on_train_epoch_start; each call
    # draws the loader's base seed from torch's RNG (see shim.pytorch.train_stream).
    _shim_iterator_per_epoch = True
    _legacy: legacy_api.LegacyScope
    _training_step: TrainingStepCaller

    def __new__(cls, *args: Any, **kwargs: Any) -> LightningAdapter:
        # Before the subclass's __init__ body, where legacy trials call dm.size(): the removed
        # 1.x APIs exist from here to the end of the run (or until the trial is collected).
        adapter = super().__new__(cls)
        adapter._legacy = legacy_api.install()
        weakref.finalize(adapter, adapter._legacy.close)
        return adapter

    def __init__(
        self,
        context: PyTorchTrialContext,
        lightning_module: Any,
        precision: int | str = 32,
        amp_backend: str = "native",
        amp_level: str = "O2",
    ) -> None:
        self._context = context
        self.lightning_module = lm = lightning_module
        self._precision = Precision.parse(precision, amp_backend, context.device)
        check_module(lm)
        self._hooks = ModuleHooks(lm)
        dist = context.distributed
        self._log = LogCollector(dist.allgather if dist.size > 1 else None)
        self._lightning_major = lightning_major(lm)
        # Where Lightning 2.x creates data iterators: epoch 0's before on_train_start, the
        # validation one before on_validation_start; 1.x creates both after the epoch-start hook.
        self._shim_first_iterator_early = self._shim_validation_iterator_first = (
            self._lightning_major >= 2
        )
        self._trainer = TrainerStub(self, self._precision.lightning_name(self._lightning_major))
        self._epoch_outputs: list[Any] = []
        self._validation_outputs: list[Any] = []
        self._bind_module(lm)
        if self._hooks.prepare_data is not None:
            self._hooks.prepare_data()
        if self._hooks.setup is not None:
            self._hooks.setup("fit")  # before the move to the device, as Lightning does
        context._place_model(lm)  # DDP comes with the optimizers (see _configure_optimizers)
        if self._precision.scaler is not None:
            context.wrap_scaler(self._precision.scaler)

    def _shim_on_plan(self, batches_per_epoch: int, total_batches: int) -> None:
        """Lightning configures optimizers once the data is known (``estimated_stepping_batches``
        may be read there), then calls ``on_fit_start``."""
        self._trainer.set_plan(batches_per_epoch, total_batches)
        self._configure_optimizers()
        if self._hooks.on_fit_start is not None:
            self._hooks.on_fit_start()

    # -- set-up ---------------------------------------------------------------------------------

    def _bind_module(self, lm: Any) -> None:
        lm.trainer = self._trainer
        if self._lightning_major == 1:
            legacy_api.copy_precision(lm, self._trainer.precision)
        lm.log = self._log.log
        lm.log_dict = self._log.log_dict
        lm.print = types.MethodType(print_on_rank_zero, lm)
        lm.optimizers = types.MethodType(optimizers_of(self), lm)
        lm.lr_schedulers = types.MethodType(schedulers_of(self), lm)
        lm.clip_gradients = types.MethodType(clip_gradients, lm)
        lm.manual_backward = types.MethodType(manual_backward_rejected, lm)

    def _configure_optimizers(self) -> None:
        lm = self.lightning_module
        source = self._where("configure_optimizers")
        self._plan = parse_configure_optimizers(lm.configure_optimizers(), source=source)
        self._optimizers = [
            self._context.wrap_optimizer(c.optimizer) for c in self._plan.optimizers
        ]
        for cfg in self._plan.schedulers:
            self._context.wrap_lr_scheduler(cfg.scheduler, LRScheduler.StepMode.MANUAL_STEP)
        self._trainer.lr_scheduler_configs = list(self._plan.schedulers)
        if getattr(self, "_training_step", None) is None:  # one DDP wrapper per run
            self._training_step = TrainingStepCaller.build(
                lm,
                world_size=self._context.distributed.size,
                device=self._context.device,
                lightning_major=self._lightning_major,
                optimizer_count=len(self._optimizers),
            )
        # Without frequencies every optimizer steps on every batch: no per-batch selection.
        count = len(self._optimizers)
        self._every_optimizer = list(range(count)) if self._plan.frequencies is None else None
        hooks = self._hooks
        self._keeps_outputs = (
            hooks.on_train_batch_end is not None or hooks.training_epoch_end is not None
        )
        if len(self._optimizers) > 1 and self._hooks.training_step_takes_idx is False:
            raise ShimError(
                f"{self._where('training_step')}: the module defines {len(self._optimizers)} "
                "optimizers but training_step is missing the optimizer_idx argument"
            )

    def _where(self, name: str) -> str:
        fn = getattr(type(self.lightning_module), name, None)
        return where(fn) if fn is not None else type(self.lightning_module).__qualname__

    # -- the PyTorchTrial interface ---------------------------------------------------------------

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, Any]:
        return run_training_batch(self, batch, epoch_idx, batch_idx)

    def evaluate_batch(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        lm, hooks = self.lightning_module, self._hooks
        self._log.batch = batch
        if hooks.on_validation_batch_start is not None:
            with self._in_hook("on_validation_batch_start"):
                hooks.on_validation_batch_start(batch, batch_idx, *hooks.val_batch_extra)
        with self._autocast(), self._in_hook("validation_step"):
            output = lm.validation_step(batch, batch_idx)
        if hooks.validation_step_end is not None:
            with self._in_hook("validation_step_end"):
                ended = hooks.validation_step_end(output)
            output = output if ended is None else ended
        if hooks.on_validation_batch_end is not None:
            with self._in_hook("on_validation_batch_end"):
                hooks.on_validation_batch_end(output, batch, batch_idx, *hooks.val_batch_end_extra)
        if output is not None:
            self._validation_outputs.append(output)
        return scalar_metrics(output)

    def build_callbacks(self) -> dict[str, PyTorchCallback]:
        return {"_lightning_module": LightningCallback(self)}

    def _shim_validation_metrics(self) -> dict[str, float]:
        """Epoch values logged in validation (batch-size weighted means, as Lightning)."""
        return self._log.finish_epoch("val")

    def _shim_on_run_end(self, status: str) -> None:
        hooks = self._hooks
        try:
            if status == "set-up failed":
                return  # Lightning's fit calls no end or teardown hook when set-up raises
            if status == "completed":
                for hook in (hooks.on_train_end, hooks.on_fit_end):
                    if hook is not None:
                        hook()
            if hooks.teardown is not None:
                hooks.teardown("fit")
        finally:
            self._legacy.close()

    # -- used by the training step and the callback -----------------------------------------------

    def _begin_batch(self, batch: Any, epoch_idx: int) -> None:
        self._trainer.current_epoch = epoch_idx
        self._log.batch = batch

    def _sync_buffers_for_validation(self) -> None:
        """Every rank validates with rank 0's buffers, as through DDP's forward in Lightning."""
        caller = getattr(self, "_training_step", None)
        if caller is not None:
            caller.broadcast_buffers()

    def _in_hook(self, name: str) -> HookScope:
        """Tells ``self.log`` which hook is running (its on_step/on_epoch defaults depend on it)."""
        return HookScope(self._log, name)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self._precision.autocast()

    @property
    def _scaler(self) -> Any:
        return self._precision.scaler

    def _batch_metrics(
        self, outputs: list[dict[str, Any] | None], logged: list[dict[str, float]]
    ) -> dict[str, Any]:
        """The batch's training metrics: scalar outputs and step-logged values of each optimizer,
        ``opt{i}_``-prefixed where several optimizers give the same name (as Determined did)."""
        per_opt = [
            {**scalar_metrics(out), **values} for out, values in zip(outputs, logged, strict=True)
        ]
        rest = self._log.take_step_metrics()  # logged outside the optimizer loop
        if len(per_opt) == 1:
            return {**per_opt[0], **rest}
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

    def _collect_epoch_output(self, batch_output: Any) -> None:
        if self._hooks.training_epoch_end is None or batch_output is None:
            return
        if isinstance(batch_output, list) and all(o is None for o in batch_output):
            return
        self._epoch_outputs.append(batch_output)

    def _step_epoch_schedulers(self, epoch_idx: int) -> None:
        for cfg in self._plan.schedulers:
            due = scheduler_should_step(cfg, interval="epoch", batch_idx=0, epoch=epoch_idx)
            if due and not cfg.reduce_on_plateau:
                cfg.scheduler.step()

    def _step_plateau_schedulers(self, epoch_idx: int) -> None:
        for cfg in self._plan.schedulers:
            if not cfg.reduce_on_plateau or not scheduler_should_step(
                cfg, interval="epoch", batch_idx=0, epoch=epoch_idx
            ):
                continue
            value = self._log.callback_metrics.get(cfg.monitor or "")
            if value is None:
                message = (
                    f"ReduceLROnPlateau conditioned on metric {cfg.monitor!r} which is not "
                    f"available; available metrics are {sorted(self._log.callback_metrics)}"
                )
                if cfg.strict:
                    raise ShimError(f"{self._where('configure_optimizers')}: {message}")
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                continue
            cfg.scheduler.step(value)

    def _adapter_state(self) -> dict[str, Any]:
        return {
            "hyper_parameters": plain_hparams(self.lightning_module),
            "global_step": self._trainer.global_step,
            "epoch_outputs": numpy_as_tensors(self._epoch_outputs),
            "log": self._log.state_dict(),
        }

    def _load_adapter_state(self, state: dict[str, Any]) -> None:
        self._trainer.global_step = int(state.get("global_step", 0))
        self._epoch_outputs = list(tensors_as_numpy(state.get("epoch_outputs", [])))
        self._log.load_state_dict(state.get("log", {}))
