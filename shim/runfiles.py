"""The run folder's own files: ``<storage>/runs`` made sure of, and ``trial.json`` (the run's
record: latest checkpoint, run id, seed, status, restarts) checked on load, replaced atomically
(also on a full disk) and kept pointing at the newest checkpoint while the run goes on."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import pathlib
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from shim.errors import UserInputError
from shim.progress import RunReporter

__all__ = [
    "SEED_RANGE",
    "RecordingReporter",
    "RunRecord",
    "check_record",
    "make_runs_folder",
    "write_atomic",
]

# Determined stores reproducibility.experiment_seed as a uint32 (and numpy seeds take no more).
SEED_RANGE = range(0, 2**32)
_STATUSES = ("new", "running", "completed", "preempted", "failed")


def make_runs_folder(run_dir: pathlib.Path) -> None:
    """Create ``<storage>/runs`` before anything runs, or say which path is in the way."""
    runs = run_dir.parent
    fix = (
        f"run-trial keeps checkpoints in {runs.parent} and each run's trial.json, metrics and "
        f"lock in {runs}: move or delete that file, or pass --checkpoint-storage DIR"
    )
    for path in (runs.parent, runs, run_dir):
        if path.exists() and not path.is_dir():
            raise UserInputError(f"{path} is a file, not a folder; {fix}")
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError) as exc:
        raise UserInputError(f"{exc.filename} is in the way ({exc.strerror}); {fix}") from exc
    except PermissionError as exc:
        raise UserInputError(
            f"cannot create {exc.filename or runs} ({exc.strerror}); pass --checkpoint-storage "
            "DIR with a folder you can write to"
        ) from exc


def check_record(raw: Any, path: pathlib.Path) -> dict[str, Any]:
    """``trial.json``'s fields, refused with what is wrong when a hand edit or a damaged disk
    left something the run cannot resume from."""
    if not isinstance(raw, dict):
        _damaged(path, f"it holds a {type(raw).__name__}, not a JSON object")
    checkpoint = raw.get("latest_checkpoint")
    if checkpoint is not None and not _is_storage_id(checkpoint):
        _damaged(path, f"latest_checkpoint {checkpoint!r} is not a checkpoint id (a uuid)")
    run_id = raw.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        _damaged(path, f"run_id {run_id!r} is not a string")
    seed = raw.get("seed")
    if seed is not None and (not _is_int(seed) or seed not in SEED_RANGE):
        _damaged(path, f"seed {seed!r} is not an int from 0 to {SEED_RANGE.stop - 1}")
    for name in ("steps_completed", "restarts"):
        if name in raw and (not _is_int(raw[name]) or raw[name] < 0):
            _damaged(path, f"{name} {raw[name]!r} is not an int >= 0")
    if raw.get("status", "new") not in _STATUSES:
        _damaged(path, f"status {raw['status']!r} is not one of {', '.join(_STATUSES)}")
    return raw


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a temporary file, which never outlives a failed
    write. On a full disk the temporary file cannot be written; a small file that already exists
    is then rewritten in the space it already has, padded with trailing spaces to its old length,
    in one write: valid JSON before and after, and nothing allocated."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if not (full and _rewrite_in_place(path, data)):
            raise


def _write_new(path: pathlib.Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


def _rewrite_in_place(path: pathlib.Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        padded = data + b" " * max(0, info.st_size - len(data))
        if len(padded) > info.st_blocks * 512:  # would need a new block, which there is not
            return False
        return os.pwrite(fd, padded, 0) == len(padded)
    except OSError:
        return False
    finally:
        os.close(fd)


def _damaged(path: pathlib.Path, problem: str) -> NoReturn:
    raise UserInputError(
        f"{path} is damaged: {problem}; restore it, or delete it to resume from the newest "
        "checkpoint of this run, or start over with --fresh"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_storage_id(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


@dataclass
class RunRecord:
    """``trial.json``: what a later invocation needs to resume."""

    latest_checkpoint: str | None = None
    run_id: str | None = None  # written into every checkpoint's metadata; new with --fresh
    seed: int | None = None
    steps_completed: int = 0
    status: str = "new"
    restarts: int = 0

    @classmethod
    def load(cls, path: pathlib.Path) -> RunRecord:
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserInputError(
                f"{path} is damaged ({exc}); delete it to resume from the newest checkpoint of "
                "this run, or start over with --fresh"
            ) from exc
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in check_record(raw, path).items() if k in fields})

    def save(self, path: pathlib.Path) -> None:
        """Replace ``trial.json`` atomically (also on a full disk: see ``write_atomic``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode())

    def save_or_say(self, path: pathlib.Path, reporter: RunReporter) -> None:
        """Save where a failure is already being handled: that failure is the one to report."""
        try:
            self.save(path)
        except OSError as exc:
            reporter.on_message(f"could not update {path} ({exc.strerror}); it is out of date")


class RecordingReporter:
    """Passes events to the reporter and keeps ``trial.json`` pointing at the newest checkpoint."""

    def __init__(self, reporter: RunReporter, record: RunRecord, path: pathlib.Path) -> None:
        self._reporter = reporter
        self._record = record
        self._path = path

    def on_checkpoint(self, *, batches: int, storage_id: str) -> None:
        self._record.latest_checkpoint = storage_id
        self._record.steps_completed = batches
        self._record.status = "running"
        self._record.save(self._path)
        self._reporter.on_checkpoint(batches=batches, storage_id=storage_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)
