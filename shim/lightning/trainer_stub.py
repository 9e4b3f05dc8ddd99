"""A small stand-in for ``Trainer`` so a module's public trainer-dependent API works.

Lightning's ``current_epoch``, ``global_step``, ``global_rank``, ``print`` and
``toggle_optimizer`` read these attributes (REFERENCE section 9); legacy code also reads
``max_epochs``, ``num_training_batches``, ``callback_metrics`` and friends, and the Lightning 1.5
attributes that 1.8 and 2.0 removed (hook table LA314-LA316), answered as 1.5 did. ``logger`` is
a TensorBoard logger on the run's TensorBoard folder, as Lightning's default logger. Setting
``trainer.should_stop = True`` asks the runner to stop after the batch, as in Lightning.
"""

from __future__ import annotations

import os
from typing import Any

from shim.errors import ShimError
from shim.lightning.legacy_api import legacy_precision
from shim.lightning.legacy_logger import LegacyTensorBoardLogger

__all__ = ["TrainerStub"]

_UNSET: Any = object()


class TrainerStub:
    def __init__(self, adapter: Any, precision: str | int) -> None:
        self._adapter = adapter
        context = adapter._context
        dist = context.distributed
        self.global_rank = dist.rank
        self.local_rank = dist.local_rank
        self.node_rank = dist.cross_rank
        self.world_size = dist.size
        self.num_devices = dist.local_size
        self.num_nodes = dist.cross_size
        self.is_global_zero = dist.rank == 0
        self.precision = precision
        self.current_epoch = 0
        self.global_step = 0
        self.sanity_checking = False
        self.training = True
        self.validating = False
        self.testing = False
        self.predicting = False
        self.progress_bar_callback = None
        self.datamodule = None
        self._logger: Any = _UNSET
        self.callbacks: list[Any] = []
        self.max_steps = -1
        self._plan: tuple[int, int] | None = None
        self.num_val_batches: list[int] = []
        self.accumulate_grad_batches = 1
        self.gradient_clip_val = None
        self.gradient_clip_algorithm = None
        self.lr_scheduler_configs: list[Any] = []

    # -- logging --------------------------------------------------------------------------------

    @property
    def logger(self) -> LegacyTensorBoardLogger | None:
        """Made on first use; None when the run has no TensorBoard folder (``logger=False``)."""
        if self._logger is _UNSET:
            context = self._adapter._context
            try:
                path = context.get_tensorboard_path()
            except ShimError:
                self._logger = None
            else:
                writer = context.get_tensorboard_writer
                self._logger = LegacyTensorBoardLogger(
                    path, writer, is_global_zero=self.is_global_zero
                )
        return self._logger

    @logger.setter
    def logger(self, value: Any) -> None:
        self._logger = value

    @property
    def loggers(self) -> list[Any]:
        return [] if self.logger is None else [self.logger]

    # -- devices and precision ------------------------------------------------------------------

    @property
    def device_ids(self) -> list[int]:
        """This node's devices, one per process (as ``Trainer.device_ids``)."""
        return list(range(self.num_devices))

    @property
    def num_gpus(self) -> int:
        """1.5: the GPUs of this node the run uses (one per process)."""
        return self.num_devices if self._adapter._context.device.type == "cuda" else 0

    @property
    def gpus(self) -> int | None:
        """1.5: the ``gpus`` Trainer argument (None on the CPU)."""
        return self.num_gpus or None

    @property
    def root_gpu(self) -> int | None:
        device = self._adapter._context.device
        return (device.index or 0) if device.type == "cuda" else None

    @property
    def num_processes(self) -> int:
        """1.5: processes per node (one per device under DDP, 1 otherwise)."""
        return self.num_devices

    @property
    def tpu_cores(self) -> None:
        return None

    @property
    def use_amp(self) -> bool:
        """1.5: True for float16 mixed precision (not for bf16)."""
        return legacy_precision(self.precision) == 16

    @property
    def amp_backend(self) -> str | None:
        """1.5: "native" under mixed precision (float16 or bf16), else None."""
        return "native" if legacy_precision(self.precision) in (16, "bf16") else None

    # -- where files go -------------------------------------------------------------------------

    @property
    def default_root_dir(self) -> str:
        try:
            return str(self._adapter._context.get_tensorboard_path())
        except ShimError:
            return os.getcwd()

    @property
    def log_dir(self) -> str:
        return self.default_root_dir

    def set_plan(self, batches_per_epoch: int, total_batches: int) -> None:
        self._plan = (batches_per_epoch, total_batches)
        self.max_steps = total_batches

    @property
    def num_training_batches(self) -> int:
        return self._planned()[0]

    @property
    def max_epochs(self) -> int:
        per_epoch, total = self._planned()
        return -(-total // per_epoch)

    @property
    def estimated_stepping_batches(self) -> int:
        return self._planned()[1]

    def _planned(self) -> tuple[int, int]:
        if self._plan is None:
            raise ShimError(
                "the trainer's length (num_training_batches, max_epochs, "
                "estimated_stepping_batches) is known once the data loaders are built; read it "
                "in configure_optimizers or later, not in __init__ or setup"
            )
        return self._plan

    @property
    def optimizers(self) -> list[Any]:
        return self._adapter._optimizers

    @property
    def lr_schedulers(self) -> list[dict[str, Any]]:
        """Lightning 1.x's list of scheduler dicts."""
        return [vars(cfg) for cfg in self.lr_scheduler_configs]

    @property
    def callback_metrics(self) -> dict[str, float]:
        return self._adapter._log.callback_metrics

    @property
    def logged_metrics(self) -> dict[str, float]:
        return self._adapter._log.logged_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        return self._adapter._log.progress_bar_metrics

    @property
    def should_stop(self) -> bool:
        return bool(self._adapter._context.get_stop_requested())

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self._adapter._context.set_stop_requested(bool(value))
