"""The adapter's PyTorchCallback: epoch, validation and checkpoint hooks of the module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shim.pytorch.callback import PyTorchCallback

if TYPE_CHECKING:
    from shim.lightning.adapter import LightningAdapter

__all__ = ["LightningCallback"]


class LightningCallback(PyTorchCallback):
    # validation_epoch_end gets the module's own outputs, not Determined's numpy copies.
    ignores_validation_outputs = True

    def __init__(self, adapter: LightningAdapter) -> None:
        self._adapter = adapter

    def on_training_start(self) -> None:
        if self._adapter._hooks.on_train_start is not None:
            self._adapter._hooks.on_train_start()

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        adapter = self._adapter
        adapter._trainer.current_epoch = epoch_idx
        if adapter._hooks.on_train_epoch_start is not None:
            with adapter._in_hook("on_train_epoch_start"):
                adapter._hooks.on_train_epoch_start()

    def on_training_epoch_end(self, epoch_idx: int) -> None:
        adapter, hooks = self._adapter, self._adapter._hooks
        if hooks.training_epoch_end is not None:
            outputs, adapter._epoch_outputs = adapter._epoch_outputs, []
            with adapter._in_hook("training_epoch_end"):
                hooks.training_epoch_end(outputs)
        if hooks.on_train_epoch_end is not None:
            with adapter._in_hook("on_train_epoch_end"):
                hooks.on_train_epoch_end()
        values = adapter._log.finish_epoch("train")
        core = adapter._context._core
        if values and core.distributed.rank == 0:
            # Training epoch values (on_epoch=True), at the epoch's end as Lightning logs them.
            steps = adapter._context.position.batch_idx + 1
            core.train.report_training_metrics(steps, values)
        adapter._step_plateau_schedulers(epoch_idx)

    def on_validation_start(self) -> None:
        adapter = self._adapter
        adapter._trainer.training, adapter._trainer.validating = False, True
        adapter._validation_outputs = []
        adapter._sync_buffers_for_validation()
        if adapter._hooks.on_validation_start is not None:
            with adapter._in_hook("on_validation_start"):
                adapter._hooks.on_validation_start()

    def on_validation_epoch_start(self) -> None:
        if self._adapter._hooks.on_validation_epoch_start is not None:
            with self._adapter._in_hook("on_validation_epoch_start"):
                self._adapter._hooks.on_validation_epoch_start()

    def on_validation_epoch_end(self, outputs: list[Any]) -> None:
        adapter, hooks = self._adapter, self._adapter._hooks
        if hooks.validation_epoch_end is not None:
            with adapter._in_hook("validation_epoch_end"):
                hooks.validation_epoch_end(adapter._validation_outputs)
        if hooks.on_validation_epoch_end is not None:
            with adapter._in_hook("on_validation_epoch_end"):
                hooks.on_validation_epoch_end()
        adapter._validation_outputs = []

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        adapter = self._adapter
        if adapter._hooks.on_validation_end is not None:
            with adapter._in_hook("on_validation_end"):
                adapter._hooks.on_validation_end()
        adapter._trainer.training, adapter._trainer.validating = True, False

    def on_checkpoint_save_start(self, checkpoint: dict[str, Any]) -> None:
        if self._adapter._hooks.on_save_checkpoint is not None:
            self._adapter._hooks.on_save_checkpoint(checkpoint)

    def on_checkpoint_load_start(self, checkpoint: dict[str, Any]) -> None:
        if self._adapter._hooks.on_load_checkpoint is not None:
            self._adapter._hooks.on_load_checkpoint(checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return self._adapter._adapter_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._adapter._load_adapter_state(state_dict)
