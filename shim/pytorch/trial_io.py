"""Saving and restoring a trial's checkpoint through the Core API's checkpoint context."""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import torch

import shim
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.retention import checkpoints_to_delete
from shim.pytorch.state import (
    STATE_FILE,
    TrialState,
    capture_rng,
    check_loadable,
    load_state_file,
    restore_rng,
)

__all__ = ["CheckpointIO", "steps_completed"]

logger = logging.getLogger("shim.pytorch")


class CheckpointIO:
    def __init__(
        self, core: Any, context: PyTorchTrialContext, callbacks: dict[str, Any], plan: Any
    ) -> None:
        self._core = core
        self._context = context
        self._callbacks = callbacks
        self._plan = plan

    def save(self, state: TrialState, metric: float | None) -> str:
        """Write ``state_dict.pth`` (chief only) and return the storage id on every rank."""
        ctx = self._context
        content: dict[str, Any] = {
            "models_state_dict": [model.state_dict() for model in ctx.models],
            "optimizers_state_dict": [opt.state_dict() for opt in ctx.optimizers],
            "lr_schedulers_state_dict": [s.state_dict() for s in ctx.lr_schedulers],
            "callbacks": {name: cb.state_dict() for name, cb in self._callbacks.items()},
            "rng_state": capture_rng(),
            "trial_state": state.to_dict(),
        }
        if ctx._scaler is not None:
            content["scaler_state_dict"] = ctx._scaler.state_dict()
        for callback in self._callbacks.values():
            callback.on_checkpoint_save_start(content)
        check_loadable(content)
        metadata = {
            "steps_completed": state.batches_trained,
            "epochs_completed": state.epochs_trained,
            "framework": f"torch-{torch.__version__}",
            "format": "pickle",
            "trial_id": state.trial_id,
            "seed": state.seed,
            "shim_version": getattr(shim, "__version__", "0"),
        }
        dist = self._core.distributed
        storage_id = None
        if dist.rank == 0:
            with self._core.checkpoint.store_path(metadata) as (path, storage_id):
                torch.save(content, path / STATE_FILE)
                for callback in self._callbacks.values():
                    callback.on_checkpoint_write_end(str(path))
        storage_id = dist.broadcast(storage_id)
        for callback in self._callbacks.values():
            callback.on_checkpoint_upload_end(storage_id)
        state.checkpoints.append(
            {"uuid": storage_id, "steps": state.batches_trained, "metric": metric}
        )
        self._collect_garbage(state)
        return str(storage_id)

    def restore(self, storage_id: str, state: TrialState) -> TrialState:
        ctx = self._context
        with self._core.checkpoint.restore_path(storage_id) as path:
            content = load_state_file(path, ctx.device)
        for callback in self._callbacks.values():
            callback.on_checkpoint_load_start(content)
        _load_list(ctx.models, content.get("models_state_dict", []), "model")
        _load_list(ctx.optimizers, content.get("optimizers_state_dict", []), "optimizer")
        _load_list(ctx.lr_schedulers, content.get("lr_schedulers_state_dict", []), "LR scheduler")
        if ctx._scaler is not None and "scaler_state_dict" in content:
            ctx._scaler.load_state_dict(content["scaler_state_dict"])
        for name, callback in self._callbacks.items():
            if name in content.get("callbacks", {}):
                callback.load_state_dict(content["callbacks"][name])
        restored = TrialState.from_dict(content.get("trial_state", {}))
        restored.seed = state.seed
        # The RNG comes back last: everything above may have drawn from it.
        restore_rng(content["rng_state"])
        return restored

    def _collect_garbage(self, state: TrialState) -> None:
        if not _is_local(self._core) or self._core.distributed.rank != 0:
            return  # on a cluster the master applies the retention policy
        doomed = checkpoints_to_delete(
            state.checkpoints,
            keep_latest=self._plan.save_trial_latest,
            keep_best=self._plan.save_trial_best,
            smaller_is_better=self._plan.smaller_is_better,
        )
        for storage_id in doomed:
            self._core.checkpoint.delete(storage_id)
        state.checkpoints = [r for r in state.checkpoints if r["uuid"] not in doomed]


def steps_completed(core: Any, storage_id: str) -> int:
    """A checkpoint's ``steps_completed``, read from its ``metadata.json`` (Determined's
    off-cluster context has no ``get_metadata``)."""
    with core.checkpoint.restore_path(storage_id) as path:
        metadata = json.loads((pathlib.Path(path) / "metadata.json").read_text(encoding="utf-8"))
    return int(metadata["steps_completed"])


def _is_local(core: Any) -> bool:
    from shim.core import Context

    return isinstance(core, Context)


def _load_list(targets: list[Any], states: list[Any], what: str) -> None:
    if len(targets) != len(states):
        from shim.errors import ShimError

        raise ShimError(
            f"the checkpoint holds {len(states)} {what} state(s) but the trial wrapped "
            f"{len(targets)}; the trial changed since it was saved: start over with --fresh"
        )
    for target, sd in zip(targets, states, strict=True):
        target.load_state_dict(sd)
