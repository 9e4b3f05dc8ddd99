"""Resolve ``checkpoint_storage`` (a path, a ``file://`` URL or a Determined-style dict)."""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

from shim.core.errors import StorageConfigError

__all__ = ["DEFAULT_STORAGE", "resolve_storage_path", "storage_base_path"]

# Relative to the working directory, so a laptop run keeps its checkpoints where it can see them
# (Determined's own off-cluster default is ~/.local/share/determined).
DEFAULT_STORAGE = "checkpoints"

_REMOTE_SCHEMES = ("s3://", "gs://", "azure://", "hdfs://")
_LOCAL_TYPES = ("shared_fs", "directory")


def resolve_storage_path(
    checkpoint_storage: str | os.PathLike | Mapping[str, Any] | None,
) -> pathlib.Path:
    """Return the folder that holds ``<uuid>/`` checkpoints, created and checked writable."""
    base = storage_base_path(checkpoint_storage)
    _ensure_writable_folder(base)
    return base


def storage_base_path(spec: str | os.PathLike | Mapping[str, Any] | None) -> pathlib.Path:
    """The folder a spec names, without touching the disk."""
    if spec is None:
        return pathlib.Path(DEFAULT_STORAGE).absolute()
    if isinstance(spec, Mapping):
        return _from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text.startswith(_REMOTE_SCHEMES):
            raise StorageConfigError(
                f"checkpoint_storage {text!r} is cloud storage, which this local runner cannot "
                "write; use a local folder (or a shared_fs dict), or run on a Determined cluster"
            )
        if text.startswith("file://"):
            text = text[len("file://") :]
        if not text:
            raise StorageConfigError("checkpoint_storage is an empty path; give a folder")
        return pathlib.Path(text).expanduser().absolute()
    raise StorageConfigError(
        f"checkpoint_storage must be a path, a file:// URL or a dict, not {type(spec).__name__}"
    )


def _from_dict(spec: Mapping[str, Any]) -> pathlib.Path:
    kind = spec.get("type")
    if kind not in _LOCAL_TYPES:
        raise StorageConfigError(
            f"checkpoint_storage.type {kind!r} is not supported locally; use "
            "'shared_fs' (host_path, storage_path) or 'directory' (container_path)"
        )
    if kind == "directory":
        return _required_path(spec, "container_path", kind)
    host = _required_path(spec, "host_path", kind)
    storage_path = spec.get("storage_path")
    if storage_path is None:
        return host
    if not isinstance(storage_path, str):
        raise StorageConfigError("checkpoint_storage.storage_path must be a string path")
    full = (host / storage_path).resolve()
    # Determined requires storage_path to stay under host_path; so do we.
    if full != host.resolve() and host.resolve() not in full.parents:
        raise StorageConfigError(
            f"checkpoint_storage.storage_path {storage_path!r} leaves host_path {str(host)!r}; "
            "give a path inside host_path"
        )
    return full


def _required_path(spec: Mapping[str, Any], key: str, kind: str) -> pathlib.Path:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise StorageConfigError(
            f"checkpoint_storage of type {kind!r} needs {key!r} (a folder path); got {value!r}"
        )
    return pathlib.Path(value).expanduser().absolute()


def _ensure_writable_folder(base: pathlib.Path) -> None:
    if base.exists() and not base.is_dir():
        raise StorageConfigError(
            f"checkpoint storage {str(base)!r} is a file, not a folder; "
            "point checkpoint_storage at a folder"
        )
    try:
        base.mkdir(parents=True, exist_ok=True)
        # A real write, not os.access: access() says yes to root on a read-only mount.
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise StorageConfigError(
            f"checkpoint storage {str(base)!r} is not writable ({exc.strerror}); "
            "fix its permissions or choose another checkpoint_storage"
        ) from exc
