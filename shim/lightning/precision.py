"""Mixed precision as Lightning 2.x's ``MixedPrecision`` plugin: autocast around the step
methods only, a GradScaler for float16 (none for bfloat16)."""

from __future__ import annotations

import contextlib
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
        scaler = torch.amp.GradScaler(device.type) if kind == "16" else None
        return cls(kind, device, scaler)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.kind == "32":
            return _NO_AUTOCAST
        dtype = torch.float16 if self.kind == "16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=False)

    def lightning_name(self, module: Any) -> str | int:
        """What ``trainer.precision`` reads in the installed Lightning (1.x ints, 2.x names)."""
        version = getattr(type(module), "__module__", "")
        legacy = _lightning_major(version) == 1
        if self.kind == "32":
            return 32 if legacy else "32-true"
        if self.kind == "16":
            return 16 if legacy else "16-mixed"
        return "bf16" if legacy else "bf16-mixed"


def _lightning_major(_: str) -> int:
    try:
        import pytorch_lightning

        return int(pytorch_lightning.__version__.split(".")[0])
    except ImportError:  # lightning.pytorch only
        return 2
