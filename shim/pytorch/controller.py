"""The trial controller: Determined's run-level semantics for one PyTorchTrial.

Written only against the Core API surface (``core.checkpoint``, ``core.train``, ``core.preempt``,
``core.distributed``), so the same loop runs on ``shim.core`` and on a real ``det.core`` context.
Order per DESIGN section 4: build loaders, create the training iterator, restore the checkpoint
(RNG last, so nothing drawn while building disturbs it), then train until the searcher length,
validating and checkpointing on their periods, checking preemption after every batch. A
LightningAdapter trial gets a new iterator each epoch where Lightning creates it
(``shim.pytorch.train_stream``).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shim.core.batch_poll import BatchPoll
from shim.errors import ShimError
from shim.pytorch.callback import PyTorchCallback
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.data import to_device
from shim.pytorch.loaders import checked_loader
from shim.pytorch.lr_scheduler import LRScheduler, lr_steps_after_batch
from shim.pytorch.periods import Period, total_batches
from shim.pytorch.reducer import average_training_metrics
from shim.pytorch.state import TrialState, seed_everything
from shim.pytorch.train_stream import TrainStream
from shim.pytorch.trial import EndEpoch, PyTorchTrial
from shim.pytorch.trial_io import CheckpointIO
from shim.pytorch.validation import Validator

__all__ = ["RunPlan", "RunResult", "TrialController"]

logger = logging.getLogger("shim.pytorch")


@dataclass
class RunPlan:
    """What the runner decided from the experiment config and the command line."""

    max_length: Any  # a config Length: unit + value
    validation_period: Any = None
    checkpoint_period: Any = None
    scheduling_unit: int = 100
    perform_initial_validation: bool = False
    checkpoint_policy: str = "best"
    searcher_metric: str = "loss"
    smaller_is_better: bool = True
    save_trial_latest: int = 1
    save_trial_best: int = 1
    slots_per_trial: int = 1
    # Names this run's checkpoints in their metadata, so retention and resume find them on disk.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class RunResult:
    status: str
    steps_completed: int
    epochs_completed: float
    latest_checkpoint: str | None
    best_validation: dict[str, Any] | None
    final_validation: dict[str, Any] | None
    seed: int
    validations: list[dict[str, Any]] = field(default_factory=list)


class TrialController:
    """Build the trial, then train, validate, checkpoint and report until done or preempted."""

    def __init__(
        self,
        trial_cls: type[PyTorchTrial],
        core_context: Any,
        plan: RunPlan,
        *,
        hparams: dict[str, Any],
        exp_conf: dict[str, Any],
        seed: int,
        trial_id: int = 1,
        latest_checkpoint: str | None = None,
        start_batch: int = 0,
        reporter: Any = None,
        num_gpus: int = 0,
    ) -> None:
        self._core = core_context
        self._plan = plan
        self._reporter = reporter
        self._latest = latest_checkpoint
        self.state = TrialState(trial_id=trial_id, seed=seed, batches_trained=start_batch)
        seed_everything(seed)
        self.context = PyTorchTrialContext(
            core_context,
            trial_seed=seed,
            hparams=hparams,
            slots_per_trial=plan.slots_per_trial,
            num_gpus=num_gpus,
            exp_conf=exp_conf,
            aggregation_frequency=1,
            steps_completed=start_batch,
            managed_training=True,
            debug_enabled=False,
        )
        self.trial = trial_cls(self.context)
        self.callbacks = dict(self.trial.build_callbacks())

    # -- set-up ---------------------------------------------------------------------------------

    def _build_loaders(self) -> None:
        dist = self._core.distributed
        train = checked_loader(
            self.trial.build_training_data_loader(), "build_training_data_loader"
        )
        if hasattr(train, "set_shuffle_seed"):
            train.set_shuffle_seed(self.state.seed)
        self._val_loader = checked_loader(
            self.trial.build_validation_data_loader(), "build_validation_data_loader"
        )
        epoch_len = len(train.get_data_loader(num_replicas=dist.size, rank=dist.rank))
        if epoch_len < 1:
            raise ShimError("the training data loader yields no batch; check the dataset size")
        self.epoch_len = dist.broadcast(epoch_len)
        self.context.position.epoch_len = self.epoch_len
        gbs = self.context.get_global_batch_size()
        self.total = total_batches(self._plan.max_length, self.epoch_len, gbs)
        self._validate_every = Period.from_length(self._plan.validation_period, gbs)
        self._checkpoint_every = Period.from_length(self._plan.checkpoint_period, gbs)
        # One repeating iterator (Determined), or one per epoch (Lightning: the trial says).
        self._stream = TrainStream(
            train,
            epoch_len=self.epoch_len,
            num_replicas=dist.size,
            rank=dist.rank,
            per_epoch=getattr(self.trial, "_shim_iterator_per_epoch", False),
            first_early=getattr(self.trial, "_shim_first_iterator_early", False),
        )
        start = self.state.batches_trained
        self._stream.seek(start)
        # Created before the restore, as Determined does: creating an iterator draws from
        # torch's RNG, and the restore puts back the RNG of a run that had created it.
        if self._latest is not None and self._stream.open_at_checkpoint(start):
            self._stream.open(start)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        # Until training starts, a failure is a failed set-up: Lightning then calls no module
        # hook (no on_train_end, on_fit_end or teardown), but the trial still ends its run.
        status = "set-up failed"
        started: list[PyTorchCallback] = []  # Determined shuts down only the callbacks it started
        try:
            self._build_loaders()
            self._io = CheckpointIO(
                self._core, self.context, self.callbacks, self._plan, self._plan.run_id
            )
            self._validator = Validator(
                self._core, self.context, self.trial, self.callbacks, self._plan, self._val_loader
            )
            # What a trial could only set up once the data is known (LightningAdapter:
            # optimizers, which may read trainer.estimated_stepping_batches, then on_fit_start).
            self.trial._shim_on_plan(self.epoch_len, self.total)
            if self._latest is not None:
                self.state = self._io.restore(self._latest, self.state)
            start = self.state.batches_trained
            self._last_checkpointed: int | None = start if self._latest else None
            # A run killed after publishing a checkpoint but before deleting old ones left them.
            self._io.collect_garbage()
            self._pending: list[Any] = []
            self._final: dict[str, Any] | None = self.state.last_metrics
            for callback in self.callbacks.values():
                callback.on_trial_startup(start, self._latest)
                started.append(callback)
            self._report(
                "on_start",
                trial=type(self.trial).__name__,
                total_batches=self.total,
                batches_per_epoch=self.epoch_len,
                start_batch=start,
            )
            status = "failed"
            if self._stream.opens_early(start):
                self._stream.open(0)  # Lightning 2.x: before on_train_start
            for callback in self.callbacks.values():
                callback.on_training_start()
            # Not again after a restart from its own checkpoint (Determined: no earlier validation).
            initial = self._plan.perform_initial_validation and start == 0
            initial = initial and self.state.last_validated is None
            if initial and self._validate():
                self._checkpoint()
            status = self._train()
        finally:
            self.trial._shim_on_run_end(status)
            for callback in started:
                callback.on_trial_shutdown()
            self.context._close()
        return self._result(status)

    def _train(self) -> str:
        # Per-batch work is kept to attribute reads: the loop must cost little next to a step.
        device = self.context.device
        on_cpu = device.type == "cpu"  # loader batches are on the CPU already
        auto = LRScheduler.StepMode.MANUAL_STEP
        self._auto_schedulers = [s for s in self.context.lr_schedulers if s._step_mode != auto]
        # Determined ends the epoch before validating; Lightning validates first.
        validate_first = getattr(self.trial, "_shim_validate_before_epoch_end", False)
        train_batch, position = self.trial.train_batch, self.context.position
        batch_poll = BatchPoll(self._core.preempt, self._core.distributed)
        poll = batch_poll.poll
        on_batch = self._reporter.on_batch if self._reporter is not None else None
        epoch_len, unit, state = self.epoch_len, self._plan.scheduling_unit, self.state
        stream = self._stream
        iterator: Iterator[Any] | None = None
        while state.batches_trained < self.total:
            idx = state.batches_trained
            epoch = idx // epoch_len
            if idx % epoch_len == 0:
                for callback in self.callbacks.values():
                    callback.on_training_epoch_start(epoch)
                # After on_train_epoch_start, where Lightning calls iter(train_loader).
                iterator = stream.open(idx)
            elif iterator is None:  # resumed mid-epoch: the one created before the restore
                iterator = stream.open(idx)
            batch = next(iterator)
            position.batch_idx = idx
            try:
                out = train_batch(batch if on_cpu else to_device(batch, device), epoch, idx)
            except EndEpoch:
                iterator = self._end_epoch_early(epoch)
                continue
            self._pending.append(out if isinstance(out, dict) else {"loss": out})
            state.batches_trained = done = idx + 1
            if self._auto_schedulers:
                self._step_schedulers(idx)
            if done % unit == 0:
                self._report_training()
            epoch_ends = done % epoch_len == 0
            if epoch_ends and not validate_first:
                self._finish_epoch(epoch)
            if on_batch is not None:
                on_batch(batches=done, epoch=epoch)
            wants_checkpoint = False
            if self._validate_every.due(done, epoch_len):
                wants_checkpoint = self._validate()
            if epoch_ends and validate_first:
                self._finish_epoch(epoch)
            if done >= self.total:
                break  # the end below validates (if due) before its checkpoint
            # After the epoch's end hooks, so the checkpoint holds what they did.
            if wants_checkpoint or self._checkpoint_every.due(done, epoch_len):
                self._checkpoint()
            preempted, stop = poll(self.context.get_stop_requested())
            if preempted or stop:
                self._report_training()
                self._checkpoint()
                if preempted:
                    return "preempted"
                break
        batch_poll.drain()
        self._report_training()
        if state.last_validated != state.batches_trained:
            self._validate()
        self._checkpoint()  # the end always leaves a current checkpoint
        return "completed"

    def _end_epoch_early(self, epoch: int) -> Iterator[Any] | None:
        """``on_train_batch_start`` returned -1: skip to the next epoch, as Lightning does
        (the epoch ends without its end-of-epoch validation)."""
        self.state.batches_trained = min((epoch + 1) * self.epoch_len, self.total)
        self._finish_epoch(epoch)
        return self._stream.end_epoch((epoch + 1) * self.epoch_len)

    def _finish_epoch(self, epoch: int) -> None:
        self.state.epochs_trained = epoch + 1
        for callback in self.callbacks.values():
            callback.on_training_epoch_end(epoch)

    def _step_schedulers(self, idx: int) -> None:
        for scheduler in self._auto_schedulers:
            mode, frequency = scheduler._step_mode, scheduler._frequency
            for _ in range(lr_steps_after_batch(mode, frequency, idx, self.epoch_len)):
                scheduler.step()

    # -- reporting, validation, checkpoints -----------------------------------------------------

    def _report_training(self) -> None:
        if not self._pending:
            return
        batch_metrics, self._pending = self._pending, []
        metrics = average_training_metrics(batch_metrics)
        dist = self._core.distributed
        if dist.size > 1:
            gathered = dist.allgather((metrics, len(batch_metrics)))
            metrics = _weighted_mean(gathered)
        done = self.state.batches_trained
        metrics = {**metrics, "batches": done, "epochs": done / self.epoch_len}
        for callback in self.callbacks.values():
            callback.on_training_workload_end(metrics, batch_metrics)  # type: ignore[arg-type]
        if dist.rank == 0:
            self._core.train.report_training_metrics(done, metrics)
            self._core.train.report_progress(min(1.0, done / self.total))
        self._report("on_training_metrics", batches=done, metrics=metrics)

    def _validate(self) -> bool:
        """Validate and report; True when the checkpoint policy wants a checkpoint now."""
        done = self.state.batches_trained
        metrics = self._validator.run(done, done / self.epoch_len)
        self.state.last_validated = done
        self._final = self.state.last_metrics = _plain(metrics)
        searcher_value = metrics.get(self._plan.searcher_metric)
        if self._is_better(searcher_value):
            self.state.best_validation = float(searcher_value)  # type: ignore[arg-type]
            self.state.best_metrics = self._final
        self._report("on_validation", batches=done, metrics=metrics)
        policy = self._plan.checkpoint_policy
        return policy == "all" or (
            policy == "best" and self.state.best_validation == searcher_value
        )

    def _is_better(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        best = self.state.best_validation
        if best is None:
            return True
        return value < best if self._plan.smaller_is_better else value > best

    def _checkpoint(self) -> None:
        done = self.state.batches_trained
        if self._last_checkpointed == done:
            return
        metric = (
            self._final.get(self._plan.searcher_metric)
            if self.state.last_validated == done and self._final
            else None
        )
        self._latest = self._io.save(self.state, metric)
        self._last_checkpointed = done
        # The new checkpoint is recorded (trial.json) before any old one goes.
        self._report("on_checkpoint", batches=done, storage_id=self._latest)
        self._io.collect_garbage()

    def _report(self, event: str, **kwargs: Any) -> None:
        if self._reporter is not None:
            getattr(self._reporter, event)(**kwargs)

    def _result(self, status: str) -> RunResult:
        return RunResult(
            status=status,
            steps_completed=self.state.batches_trained,
            epochs_completed=self.state.batches_trained / self.epoch_len,
            latest_checkpoint=self._latest,
            best_validation=self.state.best_metrics,
            final_validation=self._final,
            seed=self.state.seed,
        )


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics as plain Python values, which a checkpoint can hold."""
    plain: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, str)):
            plain[key] = value
        elif isinstance(value, float) or hasattr(value, "__float__"):
            plain[key] = float(value)
    return plain


def _weighted_mean(per_rank: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    total = sum(count for _, count in per_rank) or 1
    keys = per_rank[0][0].keys()
    return {
        key: sum(metrics[key] * count for metrics, count in per_rank if key in metrics) / total
        for key in keys
    }
