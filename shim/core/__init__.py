"""A local Core-API-style context with the names, signatures and semantics of ``determined.core``.

``init()`` returns the real ``det.core`` context on a Determined cluster and a local one elsewhere:
checkpoints in a folder, metrics in JSON Lines and TensorBoard files, preemption by signal,
collectives over ``torch.distributed``.
"""

from shim.core.checkpoint import CheckpointContext, DownloadMode
from shim.core.context import Context, InvalidHP, init, local_init
from shim.core.distributed import DistributedContext, DummyDistributedContext
from shim.core.errors import (
    CheckpointError,
    CheckpointNotFound,
    ChiefOnlyError,
    DistributedSetupError,
    IncompleteCheckpoint,
    InvalidMetadata,
    InvalidStorageId,
    StorageConfigError,
)
from shim.core.info import ClusterInfo, TrialInfo
from shim.core.preempt import PreemptContext, PreemptMode
from shim.core.searcher import SearcherContext, SearcherMode, SearcherOperation, Unit
from shim.core.train import EarlyExitReason, TensorboardMode, TrainContext

__all__ = [
    "CheckpointContext",
    "CheckpointError",
    "CheckpointNotFound",
    "ChiefOnlyError",
    "ClusterInfo",
    "Context",
    "DistributedContext",
    "DistributedSetupError",
    "DownloadMode",
    "DummyDistributedContext",
    "EarlyExitReason",
    "IncompleteCheckpoint",
    "InvalidHP",
    "InvalidMetadata",
    "InvalidStorageId",
    "PreemptContext",
    "PreemptMode",
    "SearcherContext",
    "SearcherMode",
    "SearcherOperation",
    "StorageConfigError",
    "TensorboardMode",
    "TrainContext",
    "TrialInfo",
    "Unit",
    "init",
    "local_init",
]
