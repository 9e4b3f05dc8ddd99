"""Saving and restoring a trial's checkpoint through the Core API's checkpoint context."""

from __future__ import annotations

import contextlib
import logging
import math
import pathlib
import shutil
import time
from typing import Any

import torch

import shim
from shim.core.errors import CheckpointNotFound
from shim.errors import UserInputError
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.retention import (
    CheckpointRecord,
    DamagedMetadata,
    checkpoints_to_delete,
    read_record,
    record_from_metadata,
    scan_checkpoints,
)
from shim.pytorch.state import (
    STATE_FILE,
    TrialState,
    capture_rng,
    check_loadable,
    load_state_file,
    restore_rng,
)

__all__ = ["CheckpointIO", "DamagedCheckpoint", "steps_completed"]

logger = logging.getLogger("shim.pytorch")


class CheckpointIO:
    def __init__(
        self,
        core: Any,
        context: PyTorchTrialContext,
        callbacks: dict[str, Any],
        plan: Any,
        run_id: str,
    ) -> None:
        self._core = core
        self._context = context
        self._callbacks = callbacks
        self._plan = plan
        self._run_id = run_id
        # This run's checkpoints on local storage, found on disk at the first collection.
        self._records: list[CheckpointRecord] | None = None

    def save(self, state: TrialState, metric: float | None) -> str:
        """Write ``state_dict.pth`` (chief only) and return the storage id on every rank.

        Nothing is deleted here: the caller records the new checkpoint (``trial.json``) first,
        then calls :meth:`collect_garbage`, so a kill in between never leaves a record that names
        a deleted checkpoint."""
        ctx = self._context
        content: dict[str, Any] = {
            "models_state_dict": [model.state_dict() for model in ctx.models],
            "optimizers_state_dict": [opt.state_dict() for opt in ctx.optimizers],
            "lr_schedulers_state_dict": [s.state_dict() for s in ctx.lr_schedulers],
            "callbacks": {name: cb.state_dict() for name, cb in self._callbacks.items()},
            "rng_state": capture_rng(),
            "trial_state": state.to_dict(),
        }
        dist = self._core.distributed
        if dist.size > 1:
            # Every rank's generators: ranks that draw differently (rank-dependent shapes,
            # augmentation) then resume exactly too. "rng_state" stays rank 0's, which is all
            # Determined's PyTorchTrial and a migrated script read.
            content["rng_states_by_rank"] = dist.allgather(content["rng_state"])
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
            "run_id": self._run_id,
            "searcher_metric": self._plan.searcher_metric,
            "validation_metric": metric if metric is not None and math.isfinite(metric) else None,
            "saved_at": time.time(),
        }
        storage_id = None
        if dist.rank == 0:
            with self._core.checkpoint.store_path(metadata) as (path, storage_id):
                torch.save(content, path / STATE_FILE)
                for callback in self._callbacks.values():
                    callback.on_checkpoint_write_end(str(path))
        storage_id = dist.broadcast(storage_id)
        for callback in self._callbacks.values():
            callback.on_checkpoint_upload_end(storage_id)
        if self._records is not None and dist.rank == 0:
            self._records.append(record_from_metadata(str(storage_id), metadata))
        return str(storage_id)

    def restore(self, storage_id: str, state: TrialState) -> TrialState:
        ctx = self._context
        with self._core.checkpoint.restore_path(storage_id) as path:
            steps = _metadata_steps(pathlib.Path(path))
            content = load_state_file(path, ctx.device)
        saved_steps = content.get("trial_state", {}).get("batches_trained")
        if saved_steps is not None and saved_steps != steps:
            raise DamagedCheckpoint(
                f"{pathlib.Path(path) / STATE_FILE} holds the state after batch {saved_steps} "
                f"but {pathlib.Path(path) / 'metadata.json'} says {steps}: the checkpoint's files "
                "come from different saves; resuming would mix two positions. Delete that "
                "checkpoint folder to resume from the previous one, or start over with --fresh"
            )
        for callback in self._callbacks.values():
            callback.on_checkpoint_load_start(content)
        state_file = pathlib.Path(path) / STATE_FILE
        for targets, key, what in (
            (ctx.models, "models_state_dict", "model"),
            (ctx.optimizers, "optimizers_state_dict", "optimizer"),
            (ctx.lr_schedulers, "lr_schedulers_state_dict", "LR scheduler"),
        ):
            _load_list(targets, content.get(key, []), what, state_file)
        if ctx._scaler is not None and "scaler_state_dict" in content:
            ctx._scaler.load_state_dict(content["scaler_state_dict"])
        for name, callback in self._callbacks.items():
            if name in content.get("callbacks", {}):
                callback.load_state_dict(content["callbacks"][name])
        restored = TrialState.from_dict(content.get("trial_state", {}))
        restored.seed = state.seed
        # The RNG comes back last: everything above may have drawn from it.
        restore_rng(_own_rng_state(content, self._core.distributed))
        return restored

    def collect_garbage(self) -> list[str]:
        """Delete this run's local checkpoints that the retention settings drop; the newest is
        always kept. On a cluster the master applies the retention policy instead."""
        if not _is_local(self._core) or self._core.distributed.rank != 0:
            return []
        if self._records is None:
            base = self._core.checkpoint.storage_path
            _remove_leftovers(base, self._run_id)
            records, _ = scan_checkpoints(base)
            self._records = [r for r in records if r.run_id == self._run_id]
        doomed = checkpoints_to_delete(
            self._records,
            keep_latest=self._plan.save_trial_latest,
            keep_best=self._plan.save_trial_best,
            smaller_is_better=self._plan.smaller_is_better,
        )
        for storage_id in doomed:
            with contextlib.suppress(CheckpointNotFound):  # deleted by hand meanwhile
                self._core.checkpoint.delete(storage_id)
            self._records = [r for r in self._records if r.uuid != storage_id]
        return doomed


def _remove_leftovers(base: pathlib.Path, run_id: str) -> None:
    """Finish what a killed process of this run left: deletions it had started
    (``.<uuid>.*.deleting``) and checkpoints complete but not yet renamed into place
    (``.<uuid>.partial`` with metadata). Those of other runs sharing the storage are theirs; a
    ``.partial`` folder without metadata cannot say whose it is, so it stays."""
    for leftover in [*base.glob(".*.deleting"), *base.glob(".*.partial")]:
        found = read_record(leftover) if (leftover / "metadata.json").is_file() else None
        if isinstance(found, CheckpointRecord) and found.run_id == run_id:
            shutil.rmtree(leftover, ignore_errors=True)


class DamagedCheckpoint(UserInputError):
    """A checkpoint whose files cannot be resumed from as they are: the user must act."""


def damaged_checkpoint(bad: DamagedMetadata, note: str = "") -> DamagedCheckpoint:
    """The error for a checkpoint a resume needs whose ``metadata.json`` is damaged."""
    return DamagedCheckpoint(
        f"{bad.path} is damaged: {bad.problem}.{note} Restore that file (it must hold "
        '{"steps_completed": <batches>, ...}), delete the checkpoint folder to resume from the '
        "previous checkpoint, or start over with --fresh"
    )


def _metadata_steps(folder: pathlib.Path) -> int:
    found = read_record(folder)
    if isinstance(found, DamagedMetadata):
        raise damaged_checkpoint(found)
    return found.steps


def steps_completed(core: Any, storage_id: str) -> int:
    """A checkpoint's ``steps_completed``, read from its ``metadata.json`` (Determined's
    off-cluster context has no ``get_metadata``); a damaged file is the user's to fix."""
    with core.checkpoint.restore_path(storage_id) as path:
        return _metadata_steps(pathlib.Path(path))


def _is_local(core: Any) -> bool:
    from shim.core import Context

    return isinstance(core, Context)


def _load_list(targets: list[Any], states: list[Any], what: str, path: pathlib.Path) -> None:
    if len(targets) != len(states):
        raise UserInputError(
            f"{path} holds {len(states)} {what} state(s) but the trial wrapped {len(targets)}; "
            "the trial changed since it was saved: start over with --fresh"
        )
    for index, (target, sd) in enumerate(zip(targets, states, strict=True)):
        try:
            target.load_state_dict(sd)
        except (RuntimeError, ValueError, KeyError) as exc:  # torch: shapes, keys, groups
            raise UserInputError(
                f"{path}: {what} {index} does not fit the trial's ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]}); the trial changed since it was saved: start over "
                "with --fresh"
            ) from exc


def _own_rng_state(content: dict[str, Any], dist: Any) -> dict[str, Any]:
    """This rank's generators when the checkpoint holds every rank's for this many ranks; else
    rank 0's (a checkpoint from another number of ranks, one process, or a migrated script)."""
    by_rank = content.get("rng_states_by_rank")
    if isinstance(by_rank, list) and len(by_rank) == dist.size:
        return by_rank[dist.rank]
    return content["rng_state"]
