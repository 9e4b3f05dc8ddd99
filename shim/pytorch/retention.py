"""Which local checkpoints a run has, and which of them to keep.

A run's checkpoints are found on disk, from their own ``metadata.json`` (``run_id``,
``steps_completed``, the searcher metric's value when the step was validated), never from a
list carried inside a checkpoint: such a list is stale the moment a newer checkpoint is written or
an older one deleted. Retention follows Determined's ``save_trial_latest`` / ``save_trial_best``
(the union of the latest N and the best M is kept) and never deletes the newest checkpoint, the
one a resume needs.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CheckpointRecord",
    "DamagedMetadata",
    "checkpoints_to_delete",
    "read_record",
    "record_from_metadata",
    "scan_checkpoints",
]

METADATA_FILE = "metadata.json"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class CheckpointRecord:
    uuid: str
    steps: int
    metric: float | None  # the searcher metric at this step, when it was validated
    run_id: str | None
    saved_at: float
    seed: int | None = None

    @property
    def order(self) -> tuple[int, float]:
        """Newer sorts later: more steps, then written later."""
        return (self.steps, self.saved_at)


@dataclass(frozen=True)
class DamagedMetadata:
    """A checkpoint folder whose ``metadata.json`` cannot say what it holds."""

    path: pathlib.Path
    problem: str


def read_record(folder: pathlib.Path) -> CheckpointRecord | DamagedMetadata:
    """The record of one complete checkpoint folder (one with a ``metadata.json``)."""
    path = folder / METADATA_FILE
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return DamagedMetadata(path, f"it is not readable JSON ({exc})")
    if not isinstance(raw, dict):
        return DamagedMetadata(path, f"it holds a {type(raw).__name__}, not a JSON object")
    steps = raw.get("steps_completed")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        return DamagedMetadata(path, f"'steps_completed' is {steps!r}, not a count of batches")
    return record_from_metadata(folder.name, raw)


def record_from_metadata(storage_id: str, raw: dict[str, Any]) -> CheckpointRecord:
    """The record of a checkpoint whose metadata holds a valid ``steps_completed``."""
    metric = raw.get("validation_metric")
    if isinstance(metric, bool) or not isinstance(metric, (int, float)):
        metric = None
    metric = metric if metric is not None and math.isfinite(metric) else None
    run_id = raw.get("run_id")
    saved_at = raw.get("saved_at")
    seed = raw.get("seed")
    return CheckpointRecord(
        uuid=storage_id,
        steps=raw["steps_completed"],
        metric=float(metric) if metric is not None else None,
        run_id=run_id if isinstance(run_id, str) else None,
        saved_at=float(saved_at) if isinstance(saved_at, (int, float)) else 0.0,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def scan_checkpoints(
    base: pathlib.Path,
) -> tuple[list[CheckpointRecord], list[DamagedMetadata]]:
    """Every complete checkpoint under ``base`` (oldest first), and those that are damaged."""
    records: list[CheckpointRecord] = []
    damaged: list[DamagedMetadata] = []
    try:
        folders = sorted(p for p in base.iterdir() if _UUID.match(p.name))
    except FileNotFoundError:
        return [], []
    for folder in folders:
        if not (folder / METADATA_FILE).is_file():
            continue
        found = read_record(folder)
        if isinstance(found, CheckpointRecord):
            records.append(found)
        else:
            damaged.append(found)
    records.sort(key=lambda r: r.order)
    return records, damaged


def checkpoints_to_delete(
    records: Iterable[CheckpointRecord],
    *,
    keep_latest: int,
    keep_best: int,
    smaller_is_better: bool,
) -> list[str]:
    """Storage ids outside the union of the latest ``keep_latest``, the best ``keep_best`` and
    the newest one (which a resume needs, whatever the settings say)."""
    ordered = sorted(records, key=lambda r: r.order)
    if not ordered:
        return []
    keep = {ordered[-1].uuid}
    if keep_latest > 0:
        keep.update(r.uuid for r in ordered[-keep_latest:])
    sign = 1.0 if smaller_is_better else -1.0
    scored = sorted(
        (r for r in ordered if r.metric is not None), key=lambda r: sign * (r.metric or 0.0)
    )
    if keep_best > 0:
        keep.update(r.uuid for r in scored[:keep_best])
    return [r.uuid for r in ordered if r.uuid not in keep]
