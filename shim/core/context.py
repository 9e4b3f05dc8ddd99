"""``Context`` composes the parts; ``init()`` picks the local context or real Determined."""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
import types
from collections.abc import Mapping
from typing import Any

from shim.core.checkpoint import CheckpointContext
from shim.core.distributed import DistributedContext, DummyDistributedContext
from shim.core.info import ClusterInfo
from shim.core.preempt import PreemptContext, PreemptMode
from shim.core.searcher import SearcherContext
from shim.core.storage import resolve_storage_path, storage_base_path
from shim.core.train import EarlyExitReason, TensorboardMode, TrainContext
from shim.errors import ShimError

__all__ = ["Context", "InvalidHP", "init", "local_init"]

logger = logging.getLogger("shim.core")

StorageSpec = str | os.PathLike | Mapping[str, Any] | None


def _invalid_hp_bases() -> tuple[type[Exception], ...]:
    # Also a det.InvalidHP when Determined is installed, so the real context on a cluster
    # recognises it too.
    if importlib.util.find_spec("determined") is None:
        return (ShimError,)
    from determined import InvalidHP as DeterminedInvalidHP

    return (ShimError, DeterminedInvalidHP)


class InvalidHP(*_invalid_hp_bases()):  # type: ignore[misc]
    """Raise inside ``with init()`` to end a trial whose hyperparameters cannot work."""


class Context:
    """The parts of the Core API: ``checkpoint``, ``distributed``, ``preempt``, ``train``,
    ``searcher`` and ``info``. Use it as ``with init() as context:``."""

    def __init__(
        self,
        checkpoint: CheckpointContext,
        distributed: DistributedContext,
        preempt: PreemptContext,
        train: TrainContext,
        searcher: SearcherContext,
        info: ClusterInfo,
    ) -> None:
        self.checkpoint = checkpoint
        self.distributed = distributed
        self.preempt = preempt
        self.train = train
        self.searcher = searcher
        self.info = info

    def start(self) -> None:
        self.preempt.start()

    def __enter__(self) -> Context:
        self.start()
        return self

    def close(
        self,
        exc_type: type | None = None,
        exc_val: BaseException | None = None,
        exc_tb: types.TracebackType | None = None,
    ) -> None:
        self.preempt.close()
        self.train.close()
        self.distributed.close()

    def __exit__(
        self,
        exc_type: type | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> None:
        self.close(exc_type, exc_val, exc_tb)
        if exc_val is not None and any(c.__name__ == "InvalidHP" for c in type(exc_val).__mro__):
            self.train.report_early_exit(EarlyExitReason.INVALID_HP)
            logger.info("InvalidHP raised: the trial ends early with exit status 0")
            raise SystemExit(0)


def init(
    *,
    distributed: DistributedContext | None = None,
    checkpoint_storage: str | dict[str, Any] | None = None,
    preempt_mode: PreemptMode = PreemptMode.WorkersAskChief,
    tensorboard_mode: TensorboardMode = TensorboardMode.AUTO,
) -> Any:
    """Like ``determined.core.init``: the real context on a Determined cluster, else a local one."""
    real = _determined_init(distributed, checkpoint_storage, preempt_mode, tensorboard_mode)
    if real is not None:
        return real
    return local_init(
        distributed=distributed,
        checkpoint_storage=checkpoint_storage,
        preempt_mode=preempt_mode,
        tensorboard_mode=tensorboard_mode,
    )


def local_init(
    *,
    distributed: DistributedContext | None = None,
    checkpoint_storage: StorageSpec = None,
    preempt_mode: PreemptMode = PreemptMode.WorkersAskChief,
    tensorboard_mode: TensorboardMode = TensorboardMode.AUTO,
    info: ClusterInfo | None = None,
    metrics_path: pathlib.Path | None = None,
    tensorboard_path: pathlib.Path | None = None,
    durable_checkpoints: bool = False,
) -> Context:
    """The local context. ``run-trial`` passes ``info`` and may choose where metrics go; by
    default they sit beside the checkpoints, under ``metrics/`` and ``tensorboard/``.
    ``durable_checkpoints`` fsyncs each checkpoint before publishing it (survives power loss)."""
    info = info if info is not None else ClusterInfo.from_env()
    storage = resolve_storage_path(checkpoint_storage)
    dist = distributed if distributed is not None else DummyDistributedContext()
    trial = f"trial_{info.trial.trial_id}"
    # Each rank gets its own files: appends from several processes would interleave.
    suffix = "" if dist.rank == 0 else f".rank{dist.rank}"
    train = TrainContext(
        dist,
        info,
        metrics_path or storage / "metrics" / f"{trial}{suffix}.jsonl",
        tensorboard_path or storage / "tensorboard" / f"{trial}{suffix}",
        tensorboard_mode,
    )
    checkpoint = CheckpointContext(
        dist, storage, on_stored=lambda *_: train.flush(), durable=durable_checkpoints
    )
    return Context(
        checkpoint=checkpoint,
        distributed=dist,
        preempt=PreemptContext(dist, preempt_mode),
        train=train,
        searcher=SearcherContext(dist, info.trial._config),
        info=info,
    )


def _for_determined(spec: StorageSpec) -> str | dict[str, Any] | None:
    """Determined's init() takes a path string or a cloud dict; it refuses shared_fs dicts."""
    if isinstance(spec, os.PathLike):
        return os.fspath(spec)
    if isinstance(spec, Mapping) and spec.get("type") in ("shared_fs", "directory"):
        return str(storage_base_path(spec))
    return dict(spec) if isinstance(spec, Mapping) else spec


def _determined_init(
    distributed: DistributedContext | None,
    checkpoint_storage: StorageSpec,
    preempt_mode: PreemptMode,
    tensorboard_mode: TensorboardMode,
) -> Any:
    """``det.core.init(...)`` when running as a Determined task, else None."""
    if importlib.util.find_spec("determined") is None:
        return None
    import determined as det

    if getattr(det, "__shim__", False) or det.get_cluster_info() is None:
        return None
    real_dist: Any = distributed
    if isinstance(distributed, DistributedContext):
        real_dist = det.core.DistributedContext(
            rank=distributed.rank,
            size=distributed.size,
            local_rank=distributed.local_rank,
            local_size=distributed.local_size,
            cross_rank=distributed.cross_rank,
            cross_size=distributed.cross_size,
            chief_ip=distributed._chief_ip,
        )
    return det.core.init(
        distributed=real_dist,
        checkpoint_storage=_for_determined(checkpoint_storage),
        preempt_mode=det.core.PreemptMode(PreemptMode(preempt_mode).value),
        tensorboard_mode=det.core.TensorboardMode(TensorboardMode(tensorboard_mode).value),
    )
