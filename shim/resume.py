"""Which checkpoint a rerun resumes from: the newest complete checkpoint of this run on disk.

``trial.json`` names the latest checkpoint, but a process killed between publishing a checkpoint
and rewriting ``trial.json`` leaves it one behind, and a user may delete it. Every checkpoint's
``metadata.json`` carries the run's id (``<run key>:<instance>``, a new instance per ``--fresh``)
and its step, so the storage folder itself says what the newest complete one is.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from shim.pytorch.retention import CheckpointRecord, DamagedMetadata, scan_checkpoints
from shim.pytorch.trial_io import DamagedCheckpoint, damaged_checkpoint

__all__ = ["ResumePoint", "find_resume_point", "new_run_id"]


@dataclass
class ResumePoint:
    checkpoint: str | None
    run_id: str | None  # the instance the checkpoint belongs to (None: start a new one)
    notices: list[str] = field(default_factory=list)
    seed: int | None = None  # the trial seed the checkpoint was written with
    steps: int | None = None


def new_run_id(run_key: str, instance: str) -> str:
    return f"{run_key}:{instance}"


def find_resume_point(
    base: pathlib.Path, run_key: str, run_id: str | None, named: str | None
) -> ResumePoint:
    """The checkpoint to resume from, given ``trial.json``'s run id and checkpoint (either may
    be None when ``trial.json`` is missing or from an older version)."""
    records, damaged = scan_checkpoints(base)
    for bad in damaged:
        if named is not None and bad.path.parent.name == named:
            raise damaged_checkpoint(bad, " It is the checkpoint trial.json names.")
    notices = [_skipped(bad) for bad in damaged]
    if run_id is not None:
        mine = [r for r in records if r.run_id == run_id]
    else:  # no trial.json: the run key's most recently written instance
        keyed = [r for r in records if r.run_id and r.run_id.startswith(f"{run_key}:")]
        newest_instance = max(keyed, key=lambda r: r.saved_at).run_id if keyed else None
        mine = [r for r in keyed if r.run_id == newest_instance]
    if mine:
        newest = max(mine, key=lambda r: r.order)
        if named is not None and newest.uuid != named:
            notices.append(_newer_than_named(newest, named))
        return ResumePoint(newest.uuid, newest.run_id, notices, newest.seed, newest.steps)
    if named is not None:
        if (base / named).is_dir():  # written before checkpoints carried a run id
            return ResumePoint(named, run_id, notices)
        raise DamagedCheckpoint(
            f"trial.json names checkpoint {named}, but {base / named} does not exist and no "
            f"other complete checkpoint of this run is in {base}; put the checkpoint back, or "
            "start over with --fresh"
        )
    return ResumePoint(None, run_id, notices)


def _skipped(bad: DamagedMetadata) -> str:
    return (
        f"skipped checkpoint {bad.path.parent.name}: {bad.path} is damaged ({bad.problem}); "
        "delete that folder if it is not needed"
    )


def _newer_than_named(newest: CheckpointRecord, named: str) -> str:
    return (
        f"resuming from checkpoint {newest.uuid} (batch {newest.steps}), the newest complete "
        f"checkpoint of this run; trial.json still named {named} (the previous run was stopped "
        "before it could record the newer one)"
    )
