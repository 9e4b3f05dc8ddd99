"""``torch.nn.parallel.DistributedDataParallel`` for the models of a multi-process run.

DDP registers its reducer's hooks on the parameters, averages gradients in buckets while the
backward pass still runs, and broadcasts rank 0's buffers before every training forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from shim.errors import UserInputError

__all__ = ["PassThroughDDP", "needs_ddp", "wrap_ddp"]


class PassThroughDDP(DistributedDataParallel):
    """DDP whose missing attributes are looked up on the wrapped module, as Determined's
    ``_PyTorchDistributedDataParallel``: ``model.some_layer`` still works on the wrapper."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def needs_ddp(module: nn.Module, world_size: int) -> bool:
    """Several processes and something to train: DDP refuses a module without trainable
    parameters, and such a module has no gradients to average."""
    return world_size > 1 and any(p.requires_grad for p in module.parameters())


def wrap_ddp(
    module: nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> PassThroughDDP:
    """Wrap ``module`` (already on ``device``) in DDP over the default process group.

    ``device_ids`` on CUDA, as Lightning's DDP strategy passes; none on the CPU (gloo). Buffers
    keep DDP's default, rank 0's broadcast before every training forward (named
    ``broadcast_buffers`` before torch 2.13 and ``forward_sync_buffers`` since, so neither is
    passed).
    """
    if not dist.is_initialized():
        raise UserInputError(
            "several ranks but no torch.distributed process group for DistributedDataParallel: "
            "launch with `run-trial --nproc N`, torchrun, or on a cluster under "
            "`python3 -m determined.launch.torch_distributed` (Horovod and DeepSpeed launchers "
            "are not supported)"
        )
    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return PassThroughDDP(
        module,
        device_ids=device_ids,
        find_unused_parameters=find_unused_parameters,
    )
