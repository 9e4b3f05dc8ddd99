"""``PyTorchTrialContext``: what a legacy trial's ``__init__`` and hooks call on ``context``.

Written only against the Core API surface (``core_context``), so it runs on ``shim.core``'s local
context and on a real ``det.core`` context alike.
"""

from __future__ import annotations

import difflib
import logging
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from shim.errors import ShimError
from shim.pytorch.data import to_device
from shim.pytorch.ddp import needs_ddp, wrap_ddp
from shim.pytorch.lr_scheduler import LRScheduler

__all__ = ["PyTorchExperimentalContext", "PyTorchTrialContext", "TrialPosition"]

logger = logging.getLogger("shim.pytorch")


class TrialPosition:
    """Where the controller is: the global batch index and the epoch length."""

    def __init__(self) -> None:
        self.batch_idx = 0
        self.epoch_len: int | None = None


class PyTorchExperimentalContext:
    def __init__(self, parent: PyTorchTrialContext) -> None:
        self._parent = parent

    def use_amp(self) -> None:
        """Automatic mixed precision, as Determined: wrapped models run forward under float16
        autocast and ``context.backward`` / ``step_optimizer`` use a GradScaler. CUDA only."""
        parent = self._parent
        if parent.models:
            raise ShimError("experimental.use_amp() must be called before wrap_model()")
        if parent.device.type != "cuda":
            logger.warning("experimental.use_amp() has no effect without a CUDA device")
            return
        parent._auto_amp = True
        parent.wrap_scaler(torch.amp.GradScaler("cuda"))

    def disable_dataset_reproducibility_checks(self) -> None:
        """Accepted for compatibility: plain torch DataLoaders are always allowed here."""


class PyTorchTrialContext:
    """Determined 0.38's ``PyTorchTrialContext`` for one trial process."""

    def __init__(
        self,
        core_context: Any,
        trial_seed: int | None,
        hparams: dict[str, Any] | None,
        slots_per_trial: int,
        num_gpus: int,
        exp_conf: dict[str, Any] | None,
        aggregation_frequency: int,
        steps_completed: int,
        managed_training: bool,
        debug_enabled: bool,
        enable_tensorboard_logging: bool = True,
    ) -> None:
        self._core = core_context
        self.distributed = core_context.distributed
        self._hparams = dict(hparams or {})
        self._exp_conf = exp_conf
        self._trial_seed = trial_seed
        self._slots = max(1, slots_per_trial)
        self._num_gpus = num_gpus
        self._aggregation_frequency = aggregation_frequency
        self._steps_completed = steps_completed
        self._managed_training = managed_training
        self._debug_enabled = debug_enabled
        self._tensorboard_logging = enable_tensorboard_logging
        self.device = self._init_device()
        self.models: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_schedulers: list[LRScheduler] = []
        self._scaler: Any = None
        self._auto_amp = False
        self._stop_requested = False
        self._tensorboard_writer: Any = None
        self.position = TrialPosition()
        self.experimental = PyTorchExperimentalContext(self)

    def _init_device(self) -> torch.device:
        if self._num_gpus > 0 and torch.cuda.is_available():
            return torch.device("cuda", self.distributed.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    # -- configuration --------------------------------------------------------------------------

    def get_hparam(self, name: str) -> Any:
        if name not in self._hparams:
            known = sorted(self._hparams)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ShimError(
                f"hyperparameter {name!r} is not in the experiment config (known: {known}){hint}; "
                "add it under `hyperparameters:` or pass --hparam NAME=VALUE"
            )
        return self._hparams[name]

    def get_hparams(self) -> dict[str, Any]:
        return self._hparams

    def get_experiment_config(self) -> dict[str, Any]:
        if self._exp_conf is None:
            raise ShimError("this trial was started without an experiment config")
        return self._exp_conf

    def get_data_config(self) -> dict[str, Any]:
        data = (self._exp_conf or {}).get("data", {})
        return dict(data) if isinstance(data, dict) else {}

    def get_global_batch_size(self) -> int:
        return self._batch_sizes()[1]

    def get_per_slot_batch_size(self) -> int:
        return self._batch_sizes()[0]

    def _batch_sizes(self) -> tuple[int, int]:
        gbs = self._hparams.get("global_batch_size")
        if isinstance(gbs, bool) or not isinstance(gbs, int) or gbs < self._slots:
            raise ShimError(
                f"hyperparameters.global_batch_size must be an int >= slots_per_trial "
                f"({self._slots}); got {gbs!r}"
            )
        per_slot = gbs // self._slots
        return per_slot, per_slot * self._slots

    def get_trial_seed(self) -> int:
        return int(self._trial_seed or 0)

    def get_experiment_id(self) -> int:
        return int(self._core.info.trial.experiment_id) if self._core.info else 0

    def get_trial_id(self) -> int:
        return int(self._core.info.trial.trial_id) if self._core.info else 0

    def get_initial_batch(self) -> int:
        return self._steps_completed

    def get_stop_requested(self) -> bool:
        return self._stop_requested

    def set_stop_requested(self, stop_requested: bool) -> None:
        """Ask the controller to checkpoint and finish after the current batch."""
        if not isinstance(stop_requested, bool):
            raise ShimError(f"set_stop_requested() takes a bool, not {stop_requested!r}")
        self._stop_requested = stop_requested

    def get_enable_tensorboard_logging(self) -> bool:
        return self._tensorboard_logging

    def set_enable_tensorboard_logging(self, enable_tensorboard_logging: bool) -> None:
        self._tensorboard_logging = enable_tensorboard_logging

    # -- position ---------------------------------------------------------------------------------

    def current_train_batch(self) -> int:
        return self.position.batch_idx

    def current_train_epoch(self) -> int:
        return self.position.batch_idx // self._epoch_len()

    def is_epoch_start(self) -> bool:
        return self.position.batch_idx % self._epoch_len() == 0

    def is_epoch_end(self) -> bool:
        return (self.position.batch_idx + 1) % self._epoch_len() == 0

    def _epoch_len(self) -> int:
        if self.position.epoch_len is None:
            raise ShimError("the epoch length is known once the training data loader is built")
        return self.position.epoch_len

    # -- wrapping ---------------------------------------------------------------------------------

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Move to the device and track for checkpoints; under several processes the model is
        returned in ``DistributedDataParallel`` (its forward and backward average the gradients
        across ranks), then in autocast when ``use_amp()``, as Determined wrapped it.

        ``models`` keeps the unwrapped module, so checkpoints hold the same keys (no
        ``module.`` prefix) whatever the number of processes.
        """
        model = self._place_model(model)
        wrapped: nn.Module = model
        if needs_ddp(model, self.distributed.size):
            wrapped = wrap_ddp(model, self.device)
        if self._auto_amp:
            return _Autocast(wrapped, self.device.type)
        return wrapped

    def _place_model(self, model: nn.Module) -> nn.Module:
        """Move to the device and track for checkpoints, without a wrapper (the Lightning
        adapter wraps its module in DDP itself, around ``training_step``)."""
        model = model.to(self.device)
        self.models.append(model)
        return model

    def wrap_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        backward_passes_per_step: int = 1,
        fp16_compression: bool | None = None,
        average_aggregated_gradients: bool | None = None,
    ) -> torch.optim.Optimizer:
        if backward_passes_per_step != 1:
            raise ShimError("wrap_optimizer(backward_passes_per_step != 1) is not supported")
        self.optimizers.append(optimizer)
        return optimizer

    def wrap_lr_scheduler(
        self,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
        step_mode: LRScheduler.StepMode,
        frequency: int = 1,
    ) -> torch.optim.lr_scheduler.LRScheduler:
        self.lr_schedulers.append(LRScheduler(lr_scheduler, step_mode, frequency))
        return lr_scheduler

    def wrap_scaler(self, scaler: Any) -> Any:
        self._scaler = scaler
        return scaler

    def to_device(self, data: Any) -> Any:
        return to_device(data, self.device)

    # -- stepping (for plain PyTorchTrials) -----------------------------------------------------

    def backward(
        self,
        loss: torch.Tensor,
        gradient: torch.Tensor | None = None,
        retain_graph: bool = False,
        create_graph: bool = False,
    ) -> None:
        if self._scaler is not None:
            loss = self._scaler.scale(loss)
        loss.backward(gradient=gradient, retain_graph=retain_graph, create_graph=create_graph)

    def step_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        clip_grads: Callable[[Iterator], None] | None = None,
        auto_zero_grads: bool = True,
        scaler: Any | None = None,
    ) -> None:
        scaler = scaler or self._scaler
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip_grads is not None:
            clip_grads(iter(params))
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if auto_zero_grads:
            optimizer.zero_grad()

    # -- TensorBoard ------------------------------------------------------------------------------

    def get_tensorboard_path(self) -> pathlib.Path:
        path = self._core.train.get_tensorboard_path()
        if path is None:  # Determined's off-cluster context has none
            raise ShimError("this Core API context has no TensorBoard folder")
        return pathlib.Path(path)

    def get_tensorboard_writer(self) -> Any:
        if self._tensorboard_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard_writer = SummaryWriter(log_dir=str(self.get_tensorboard_path()))
        return self._tensorboard_writer

    def _close(self) -> None:
        if self._tensorboard_writer is not None:
            self._tensorboard_writer.close()
            self._tensorboard_writer = None


class _Autocast(nn.Module):
    """Runs the wrapped model's forward under float16 autocast (``use_amp()``)."""

    def __init__(self, module: nn.Module, device_type: str) -> None:
        super().__init__()
        self.module = module
        self._device_type = device_type

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self._device_type, dtype=torch.float16):
            return self.module(*args, **kwargs)
