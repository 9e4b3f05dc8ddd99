"""``training_step`` through ``DistributedDataParallel``, as Lightning's DDP strategy runs it.

Lightning wraps the LightningModule once per fit in a module whose ``forward`` is the module's
``training_step`` (1.9's ``_LightningModuleWrapperBase``; 2.x reroutes ``forward`` with
``_ForwardRedirection`` for the same effect) and wraps that in DDP. Every training step then
passes through DDP's forward: rank 0's buffers are broadcast before it, the reducer learns which
parameters the step used, and its hooks average the gradients in buckets while the backward pass
still runs; by the time ``backward()`` returns (and ``on_after_backward`` runs) every gradient is
the mean over ranks.

In fit, Lightning runs ``validation_step`` through DDP's forward as well; under ``no_grad`` that
forward only broadcasts rank 0's buffers (at the first validation batch), so every rank validates
with rank 0's running statistics. Here validation calls the module directly, after one broadcast
of the buffers at validation start: the same statistics, with no collective per batch, so ranks
may hold different numbers of validation batches (Determined's sharding allows that).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from shim.pytorch.ddp import needs_ddp, wrap_ddp

__all__ = ["TrainingStepCaller", "find_unused_parameters"]


class _TrainingStepModule(nn.Module):
    """What DDP wraps: calling it calls the LightningModule's ``training_step``."""

    def __init__(self, lightning_module: nn.Module) -> None:
        super().__init__()
        self.module = lightning_module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.training_step(*args, **kwargs)  # type: ignore[operator]


def find_unused_parameters(lightning_major: int, optimizer_count: int) -> bool:
    """DDP's ``find_unused_parameters`` as Lightning's DDP strategy would set it.

    Lightning 1.x defaults to True. Lightning 2.x defaults to False (a module that leaves a
    parameter out of its loss fails there, and here, with DDP's own error), but a module with
    several optimizers needs True: ``toggle_optimizer`` turns off ``requires_grad`` on the other
    optimizers' parameters, which then get no gradient in that step, and DDP without the search
    stops the next step with "Expected to have finished reduction in the prior iteration". 1.x
    Lightning ran such modules with its True default.
    """
    return lightning_major < 2 or optimizer_count > 1


class TrainingStepCaller:
    """Calls ``training_step``: through DDP under several processes, directly otherwise."""

    def __init__(self, lightning_module: nn.Module, ddp: DistributedDataParallel | None) -> None:
        self._module = lightning_module
        self.ddp = ddp

    @classmethod
    def build(
        cls,
        lightning_module: nn.Module,
        *,
        world_size: int,
        device: torch.device,
        lightning_major: int,
        optimizer_count: int,
    ) -> TrainingStepCaller:
        """Wrap once per run; every rank must call this at the same point (DDP's constructor
        broadcasts rank 0's parameters and buffers)."""
        if not needs_ddp(lightning_module, world_size):
            return cls(lightning_module, None)
        wrapper = _TrainingStepModule(lightning_module)
        unused = find_unused_parameters(lightning_major, optimizer_count)
        return cls(lightning_module, wrap_ddp(wrapper, device, find_unused_parameters=unused))

    def __call__(self, *args: Any) -> Any:
        if self.ddp is None:
            return self._module.training_step(*args)  # type: ignore[operator]
        return self.ddp(*args)

    def broadcast_buffers(self) -> None:
        """Rank 0's buffers to every rank (what DDP's forward does before a step); every rank
        must call this at the same point."""
        if self.ddp is None:
            return
        for buffer in self._module.buffers():
            dist.broadcast(buffer, src=0, group=self.ddp.process_group)
