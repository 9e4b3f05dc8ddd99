"""``PyTorchCallback``: Determined 0.38's callback base; every hook is a no-op."""

from __future__ import annotations

from typing import Any

__all__ = ["PyTorchCallback"]


class PyTorchCallback:
    """Hooks the controller calls during a trial's life. Override the ones you need.

    A stateful callback must also override :meth:`state_dict` and :meth:`load_state_dict`, so its
    state survives checkpoints. Every rank runs its own copy, except
    :meth:`on_checkpoint_write_end`, which only the chief runs.
    """

    def on_trial_startup(self, first_batch_idx: int, checkpoint_uuid: str | None) -> None:
        """Before training, validation or building data loaders.

        ``first_batch_idx`` is the first batch to train (non-zero after a resume);
        ``checkpoint_uuid`` is the checkpoint that will be loaded, if any.
        """

    def on_trial_shutdown(self) -> None:
        """Before the trial process exits gracefully (finished, paused or preempted)."""

    def on_validation_start(self) -> None:
        """Before every validation."""

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        """After every validation, with the reduced validation metrics."""

    def on_checkpoint_load_start(self, checkpoint: dict[str, Any]) -> None:
        """Before the state in ``checkpoint`` is restored."""

    def on_checkpoint_save_start(self, checkpoint: dict[str, Any]) -> None:
        """Before ``checkpoint`` is written; may add keys to it."""

    def on_checkpoint_end(self, checkpoint_dir: str) -> None:
        """Deprecated in Determined in favour of :meth:`on_checkpoint_write_end` (chief only)."""

    def on_checkpoint_write_end(self, checkpoint_dir: str) -> None:
        """After a checkpoint is written to ``checkpoint_dir`` (chief only)."""

    def on_checkpoint_upload_end(self, uuid: str) -> None:
        """After the checkpoint ``uuid`` is stored."""

    def state_dict(self) -> dict[str, Any]:
        """This callback's state, saved in checkpoints; must be picklable."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""

    def on_training_start(self) -> None:
        """After the checkpoint is loaded, before training begins."""

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        """At the start of training epoch ``epoch_idx``."""

    def on_training_epoch_end(self, epoch_idx: int) -> None:
        """At the end of training epoch ``epoch_idx``."""

    def on_training_workload_end(
        self, avg_metrics: dict[str, Any], batch_metrics: dict[str, Any]
    ) -> None:
        """After each reporting period (``scheduling_unit`` batches), with its metrics."""

    def on_validation_epoch_start(self) -> None:
        """Before the first validation batch."""

    def on_validation_epoch_end(self, outputs: list[Any]) -> None:
        """After the last validation batch, with this rank's per-batch metric dicts."""
