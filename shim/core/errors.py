"""Errors raised by ``shim.core``; each says what happened, where, and what to do."""

from shim.errors import ApiMisuse, ShimError

__all__ = [
    "CheckpointError",
    "CheckpointNotFound",
    "ChiefOnlyError",
    "DistributedSetupError",
    "IncompleteCheckpoint",
    "InvalidMetadata",
    "InvalidStorageId",
    "StorageConfigError",
]


class StorageConfigError(ShimError, ValueError):
    """``checkpoint_storage`` names something this runner cannot write checkpoints to."""


class CheckpointError(ShimError):
    """Base of the errors about one checkpoint."""


class InvalidStorageId(CheckpointError, ApiMisuse, ValueError):
    """A storage id that is not a uuid (and so could escape the storage folder)."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """No checkpoint folder with that storage id."""


class IncompleteCheckpoint(CheckpointError):
    """A checkpoint folder without ``metadata.json``: its write never finished."""


class InvalidMetadata(CheckpointError, ApiMisuse, ValueError):
    """Checkpoint metadata that cannot be stored (e.g. no ``steps_completed``)."""


class ChiefOnlyError(ApiMisuse, RuntimeError):
    """A chief-only operation called on another rank."""


class DistributedSetupError(ShimError, RuntimeError):
    """The process group does not match the ranks given, or cannot be set up."""
