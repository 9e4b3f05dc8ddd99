"""What a trial checkpoint holds (``state_dict.pth``) and the RNG states that make resume exact.

Determined's layout: ``models_state_dict``, ``optimizers_state_dict``, ``lr_schedulers_state_dict``
(lists in wrap order), ``callbacks`` ({name: state}), ``rng_state``, optional
``scaler_state_dict``, plus ``trial_state``. Only tensors and plain types, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pathlib
import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from shim.errors import ShimError

__all__ = [
    "STATE_FILE",
    "TrialState",
    "capture_rng",
    "check_loadable",
    "load_state_file",
    "restore_rng",
    "seed_everything",
]

STATE_FILE = "state_dict.pth"


@dataclass
class TrialState:
    """Run-level position and bookkeeping, saved in every checkpoint."""

    trial_id: int = 1
    seed: int = 0
    batches_trained: int = 0
    epochs_trained: int = 0
    last_validated: int | None = None
    best_validation: float | None = None
    # The metrics of the best and of the latest validation, so a rerun of a finished run can
    # report them without validating again.
    best_metrics: dict[str, Any] | None = None
    last_metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialState:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (and CUDA) as Determined does from the trial seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "cpu_rng_state": torch.get_rng_state(),
        "np_rng_state": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "random_rng_state": {"version": version, "internal": list(internal), "gauss": gauss_next},
    }
    if torch.cuda.is_available():
        state["gpu_rng_state"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    # The checkpoint may have been loaded onto the GPU; RNG states are CPU byte tensors.
    torch.set_rng_state(state["cpu_rng_state"].cpu())
    np_state = state["np_rng_state"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].cpu().numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    py = state["random_rng_state"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "gpu_rng_state" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["gpu_rng_state"]])


def load_state_file(folder: pathlib.Path, device: torch.device) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise ShimError(
            f"{path} is missing: this checkpoint was not written by a PyTorchTrial; "
            "resume from another checkpoint or start over with --fresh"
        )
    try:
        loaded = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or unsafe pickles
        raise ShimError(
            f"{path} cannot be loaded safely ({type(exc).__name__}: {exc}); the checkpoint is "
            "damaged or holds objects other than tensors and plain types"
        ) from exc
    if not isinstance(loaded, dict):
        raise ShimError(f"{path} does not hold a checkpoint dict")
    return loaded


_LEAVES = (
    torch.Tensor,
    int,
    float,
    bool,
    str,
    bytes,
    complex,
    type(None),
    torch.dtype,
    torch.device,
)
_CONTAINERS = (dict, list, tuple, set, frozenset)


def check_loadable(value: Any, where: str = "checkpoint") -> None:
    """Raise unless ``value`` loads with ``torch.load(weights_only=True)``: finding out at save
    time beats a checkpoint that cannot be resumed from."""
    if isinstance(value, _LEAVES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise ShimError(f"{where} has a key of type {type(key).__name__}: {key!r}")
            check_loadable(item, f"{where}[{key!r}]")
        return
    if isinstance(value, _CONTAINERS) and type(value) in _CONTAINERS:
        for index, item in enumerate(value):
            check_loadable(item, f"{where}[{index}]")
        return
    raise ShimError(
        f"{where} holds a {type(value).__module__}.{type(value).__qualname__}, which a checkpoint "
        "cannot hold safely (only tensors, numbers, strings and lists/dicts of them); convert it "
        "(e.g. to a tensor) where it is made"
    )
