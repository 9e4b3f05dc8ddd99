"""Mixed precision as Lightning 2.x's ``MixedPrecision`` plugin: autocast around the step
methods only, a GradScaler for float16 (none for bfloat16)."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from shim.errors import ShimError

__all__ = ["Precision"]

_NO_AUTOCAST = contextlib.nullcontext()  # reusable: full precision needs no context

_NAMES = {
    32: "32",
    "32": "32",
    "32-true": "32",
    16: "16",
    "16": "16",
    "16-mixed": "16",
    "bf16": "bf16",
    "bf16-mixed": "bf16",
}


@dataclass
class Precision:
    kind: str  # "32", "16" or "bf16"
    device: torch.device
    scaler: Any = None

    @classmethod
    def parse(cls, precision: Any, amp_backend: str, device: torch.device) -> Precision:
        if amp_backend == "apex":
            raise ShimError(
                "LightningAdapter(amp_backend='apex') (LA110): NVIDIA Apex was removed in "
                "Lightning 2.0 and does not build with current torch; use precision=16"
            )
        if amp_backend != "native":
            raise ShimError(f"amp_backend must be 'native', not {amp_backend!r}")
        kind = _NAMES.get(precision)
        if kind is None:
            raise ShimError(
                f"precision={precision!r} is not supported; use 32, 16 (or '16-mixed') or "
                "'bf16' (or 'bf16-mixed')"
            )
        if kind == "16" and device.type == "cpu":
            # As Lightning 2.x does: float16 autocast is for GPUs; on the CPU use bfloat16.
            warnings.warn(
                "precision=16 on the CPU runs as bf16 (as Lightning does)",
                UserWarning,
                stacklevel=3,
            )
            kind = "bf16"
        scaler = torch.amp.GradScaler(device.type) if kind == "16" else None
        return cls(kind, device, scaler)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.kind == "32":
            return _NO_AUTOCAST
        dtype = torch.float16 if self.kind == "16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=False)

    def lightning_name(self, lightning_major: int) -> str | int:
        """What ``trainer.precision`` reads in that Lightning (1.x ints, 2.x names)."""
        legacy = lightning_major == 1
        if self.kind == "32":
            return 32 if legacy else "32-true"
        if self.kind == "16":
            return 16 if legacy else "16-mixed"
        return "bf16" if legacy else "bf16-mixed"


def lightning_major(module: Any) -> int:
    """The major version of the Lightning package the module's class comes from."""
    import importlib

    for klass in type(module).__mro__:
        package = klass.__module__.split(".")[0]
        if package in ("pytorch_lightning", "lightning"):
            return int(str(importlib.import_module(package).__version__).split(".")[0])
    return 2
