"""``CheckpointContext`` for a local folder, with ``determined.core``'s API and layout.

Layout: ``<storage>/<uuid>/`` holding the user's files and ``metadata.json``. Every checkpoint is
built in ``<storage>/.<uuid>.partial/``; ``metadata.json`` is written last and the folder is then
renamed into place, so a process killed mid-write leaves only a ``.partial`` folder, never
something that looks like a checkpoint. That holds for process crashes (SIGKILL, OOM); with
``durable=True`` every file and folder is also fsynced before the rename, which survives a power
loss too, at about a third more time per checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from shim.core.compat_enum import CompatEnum
from shim.core.distributed import DistributedContext
from shim.core.errors import (
    CheckpointError,
    CheckpointNotFound,
    ChiefOnlyError,
    IncompleteCheckpoint,
    InvalidStorageId,
)
from shim.core.metadata import merge_metadata, validated_metadata

__all__ = ["METADATA_FILE", "CheckpointContext", "DownloadMode"]

METADATA_FILE = "metadata.json"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

Selector = Callable[[str], bool]


class DownloadMode(CompatEnum):
    LocalWorkersShareDownload = "LOCAL_WORKERS_SHARE_DOWNLOAD"
    NoSharedDownload = "NO_SHARED_DOWNLOAD"


class CheckpointContext:
    """Store, restore, upload, download and delete checkpoints under one storage folder."""

    def __init__(
        self,
        dist: DistributedContext,
        storage_path: pathlib.Path,
        on_stored: Callable[[str, dict[str, Any]], None] | None = None,
        durable: bool = False,
    ) -> None:
        self._dist = dist
        self._base = storage_path
        self._on_stored = on_stored
        self._durable = durable

    @property
    def storage_path(self) -> pathlib.Path:
        return self._base

    # -- writing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def store_path(
        self, metadata: dict[str, Any] | None = None, *, shard: bool = False
    ) -> Iterator[tuple[pathlib.Path, str]]:
        """Yield ``(folder, storage_id)`` to write a checkpoint into; publish it on exit.

        ``shard=False``: chief only. ``shard=True``: every rank calls it in step and writes into
        the same folder; metadata from all ranks is merged (conflicting values raise).
        """
        if not shard:
            self._require_chief("store_path(shard=False)")
            validated_metadata(metadata)
            storage_id = str(uuid.uuid4())
            partial = self._new_partial(storage_id)
            with _removed_on_error(partial):
                yield partial, storage_id
                self._publish(partial, storage_id, validated_metadata(metadata))
            return
        validated_metadata(self._merged(metadata))
        storage_id = self._dist.broadcast(str(uuid.uuid4()) if self._dist.rank == 0 else None)
        partial = self._partial_path(storage_id)
        if self._dist.rank == 0:
            partial.mkdir()
        self._dist.allgather(None)  # the folder exists for every rank
        written = False
        try:
            yield partial, storage_id
            written = True
        finally:
            # Every rank learns whether every rank wrote its part, so none waits forever on a
            # rank that failed, and a failed checkpoint is never published.
            self._agree_or_discard(written, partial, storage_id)
        merged = validated_metadata(self._merged(metadata))
        self._finish_sharded(partial, storage_id, merged)

    def upload(
        self,
        ckpt_dir: str | os.PathLike | None,
        metadata: dict[str, Any] | None = None,
        *,
        shard: bool = False,
        selector: Selector | None = None,
    ) -> str:
        """Copy ``ckpt_dir`` (or what ``selector`` picks) into a new checkpoint; return its id."""
        source = pathlib.Path(ckpt_dir) if ckpt_dir is not None else None
        if not shard:
            self._require_chief("upload(shard=False)")
            if source is None:
                raise ValueError("upload(ckpt_dir=None, shard=False) would upload nothing")
            files = _list_files(source, selector)
            storage_id = str(uuid.uuid4())
            partial = self._new_partial(storage_id)
            with _removed_on_error(partial):
                _copy_files(source, files, partial)
                self._publish(partial, storage_id, validated_metadata(metadata))
            return storage_id
        return self._upload_sharded(source, metadata, selector)

    def _upload_sharded(
        self,
        source: pathlib.Path | None,
        metadata: dict[str, Any] | None,
        selector: Selector | None,
    ) -> str:
        merged = validated_metadata(self._merged(metadata))
        problems = self._dist.allgather(_source_problem(source))
        bad = {rank: problem for rank, problem in enumerate(problems) if problem}
        if bad:
            raise CheckpointError(f"sharded upload refused on every rank: {bad}")
        # Ranks that share one folder (same device and inode) upload it once, from the lowest rank.
        ident = (source.stat().st_dev, source.stat().st_ino) if source is not None else None
        idents = self._dist.allgather(ident)
        uploads = source is not None and idents.index(ident) == self._dist.rank
        files = _list_files(source, selector) if uploads and source is not None else []
        all_files = self._dist.allgather(files)
        owners: dict[str, list[int]] = {}
        for rank, rank_files in enumerate(all_files):
            for name in rank_files:
                owners.setdefault(name, []).append(rank)
        conflicts = {name: ranks for name, ranks in owners.items() if len(ranks) > 1}
        if conflicts:
            detail = ", ".join(
                f"{name} (ranks {ranks})" for name, ranks in sorted(conflicts.items())
            )
            raise CheckpointError(
                f"refusing a sharded upload where ranks write the same files: {detail}; "
                "give each rank its own file names"
            )
        storage_id = self._dist.broadcast(str(uuid.uuid4()) if self._dist.rank == 0 else None)
        partial = self._partial_path(storage_id)
        if self._dist.rank == 0:
            partial.mkdir()
        self._dist.allgather(None)
        if uploads and source is not None:
            _copy_files(source, files, partial)
        self._finish_sharded(partial, storage_id, merged)
        return storage_id

    def _agree_or_discard(self, written: bool, partial: pathlib.Path, storage_id: str) -> None:
        failed = [rank for rank, ok in enumerate(self._dist.allgather(written)) if not ok]
        if not failed:
            return
        if self._dist.rank == 0:
            shutil.rmtree(partial, ignore_errors=True)
        self._dist.allgather(None)  # the partial folder is gone before anyone goes on
        if written:  # the failing ranks raise their own error
            raise CheckpointError(
                f"sharded checkpoint {storage_id} was not saved: rank(s) {failed} failed while "
                "writing their part (see their error); nothing was published"
            )

    def _finish_sharded(
        self, partial: pathlib.Path, storage_id: str, metadata: dict[str, Any]
    ) -> None:
        self._dist.allgather(None)  # every rank has written its files
        if self._dist.rank == 0:
            self._publish(partial, storage_id, metadata)
        self._dist.allgather(None)  # the checkpoint is complete before anyone goes on

    def _publish(self, partial: pathlib.Path, storage_id: str, metadata: dict[str, Any]) -> None:
        if self._durable:
            _fsync_tree(partial)
        _write_json(partial / METADATA_FILE, metadata)
        if self._durable:
            _fsync(partial / METADATA_FILE)
            _fsync(partial)
        os.replace(partial, self._base / storage_id)
        if self._durable:
            _fsync(self._base)
        if self._on_stored is not None:
            self._on_stored(storage_id, metadata)

    # -- reading --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def restore_path(
        self,
        storage_id: str,
        download_mode: DownloadMode = DownloadMode.LocalWorkersShareDownload,
        *,
        selector: Selector | None = None,
    ) -> Iterator[pathlib.Path]:
        """Yield the checkpoint's folder (local storage needs no download; ``selector`` is moot)."""
        path = self._complete_checkpoint(storage_id)
        if DownloadMode(download_mode) == DownloadMode.NoSharedDownload:
            yield path
            return
        self._dist.allgather_local(None)
        try:
            yield path
        finally:
            self._dist.allgather_local(None)

    def download(
        self,
        storage_id: str,
        ckpt_dir: str | os.PathLike,
        download_mode: DownloadMode = DownloadMode.LocalWorkersShareDownload,
        *,
        selector: Selector | None = None,
    ) -> None:
        """Copy a checkpoint's files into ``ckpt_dir`` (created if missing)."""
        source = self._complete_checkpoint(storage_id)
        target = pathlib.Path(ckpt_dir)
        files = _list_files(source, selector)
        if DownloadMode(download_mode) == DownloadMode.NoSharedDownload:
            _copy_files(source, files, target)
            return
        # Local ranks share one copy: the local chief copies what any of them selected.
        wanted = self._dist.allgather_local(files)
        if self._dist.local_rank == 0:
            _copy_files(source, sorted(set().union(*wanted)), target)
        self._dist.allgather_local(None)

    def get_metadata(self, storage_id: str) -> dict[str, Any]:
        path = self._complete_checkpoint(storage_id) / METADATA_FILE
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IncompleteCheckpoint(
                f"{path}: metadata.json is not valid JSON ({exc}); the checkpoint is damaged, "
                "resume from an earlier one"
            ) from exc
        if not isinstance(loaded, dict):
            raise IncompleteCheckpoint(
                f"{path}: metadata.json holds {type(loaded).__name__}, not an object; "
                "the checkpoint is damaged, resume from an earlier one"
            )
        return loaded

    def delete(self, storage_id: str) -> None:
        """Remove a checkpoint; it stops looking like one before any file goes."""
        path = self._checkpoint_path(storage_id)
        doomed = self._base / f".{storage_id}.{uuid.uuid4().hex[:8]}.deleting"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            raise CheckpointNotFound(
                f"cannot delete checkpoint {storage_id}: {path} does not exist"
            ) from None
        except OSError as exc:
            raise CheckpointError(f"cannot delete checkpoint {path}: {exc.strerror}") from exc
        shutil.rmtree(doomed)

    # -- helpers --------------------------------------------------------------------------------

    def _require_chief(self, what: str) -> None:
        if self._dist.rank != 0:
            raise ChiefOnlyError(
                f"cannot call CheckpointContext.{what} from non-chief worker "
                f"(rank={self._dist.rank}); call it on rank 0 or use shard=True on every rank"
            )

    def _merged(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return merge_metadata(self._dist.allgather(metadata or {}))

    def _partial_path(self, storage_id: str) -> pathlib.Path:
        return self._base / f".{storage_id}.partial"

    def _new_partial(self, storage_id: str) -> pathlib.Path:
        partial = self._partial_path(storage_id)
        partial.mkdir()
        return partial

    def _checkpoint_path(self, storage_id: str) -> pathlib.Path:
        if not isinstance(storage_id, str) or not _UUID.match(storage_id):
            raise InvalidStorageId(
                f"storage id {storage_id!r} is not a checkpoint uuid (like "
                "'3f2c9a6e-1b2d-4c5e-8f90-a1b2c3d4e5f6'); pass the id that store_path() or "
                "upload() returned"
            )
        return self._base / storage_id

    def _complete_checkpoint(self, storage_id: str) -> pathlib.Path:
        path = self._checkpoint_path(storage_id)
        if not path.is_dir():
            raise CheckpointNotFound(
                f"checkpoint {storage_id} not found: {path} does not exist; check the storage "
                f"folder ({self._base}) and the id"
            )
        if not (path / METADATA_FILE).is_file():
            raise IncompleteCheckpoint(
                f"checkpoint {path} has no {METADATA_FILE}, so its write never finished; "
                "resume from an earlier checkpoint or delete this folder"
            )
        return path


@contextlib.contextmanager
def _removed_on_error(partial: pathlib.Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _source_problem(source: pathlib.Path | None) -> str | None:
    if source is not None and not source.is_dir():
        return f"{source} is not a folder"
    return None


def _list_files(root: pathlib.Path, selector: Selector | None) -> list[str]:
    if not root.is_dir():
        raise CheckpointNotFound(f"checkpoint folder {root} does not exist or is not a folder")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return [name for name in names if selector is None or selector(name)]


def _copy_files(source: pathlib.Path, names: list[str], target: pathlib.Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dest)


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: pathlib.Path) -> None:
    for path in root.rglob("*"):
        _fsync(path)


def _write_json(path: pathlib.Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
