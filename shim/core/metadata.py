"""Checkpoint metadata: validation and the merge of several ranks' metadata."""

from __future__ import annotations

import copy
import json
from typing import Any

from shim.core.errors import InvalidMetadata

__all__ = ["merge_metadata", "validated_metadata"]


def validated_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Check metadata before anything is written: a JSON object with ``steps_completed``."""
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidMetadata(f"checkpoint metadata must be a dict, not {type(metadata).__name__}")
    if metadata is None or "steps_completed" not in metadata:
        raise InvalidMetadata(
            "checkpoint metadata must contain 'steps_completed' (the number of batches trained); "
            "pass e.g. store_path({'steps_completed': step})"
        )
    steps = metadata["steps_completed"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidMetadata(
            f"checkpoint metadata 'steps_completed' must be a non-negative int, not {steps!r}"
        )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidMetadata(f"checkpoint metadata must be JSON-serializable: {exc}") from exc
    return metadata


def merge_metadata(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge nested dicts from every rank; the same key with different values raises."""
    merged: dict[str, Any] = {}
    conflicts: list[str] = []
    for rank, metadata in enumerate(per_rank):
        _merge_into(merged, metadata, rank, "", conflicts)
    if conflicts:
        raise InvalidMetadata(
            "conflicting checkpoint metadata across ranks: " + "; ".join(conflicts)
        )
    return merged


def _merge_into(
    merged: dict[str, Any], new: dict[str, Any], rank: int, prefix: str, conflicts: list[str]
) -> None:
    for key, value in new.items():
        where = f"{prefix}/{key}"
        if key not in merged:
            merged[key] = copy.deepcopy(value)
        elif isinstance(merged[key], dict) and isinstance(value, dict):
            _merge_into(merged[key], value, rank, where, conflicts)
        elif merged[key] != value:
            conflicts.append(f"{where}: {merged[key]!r} vs {value!r} from rank {rank}")
