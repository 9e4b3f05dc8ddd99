from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

from shim.core.errors import StorageConfigError
from shim.core.storage import resolve_storage_path


def test_a_plain_path_and_a_file_url_resolve_to_the_same_folder(tmp_path: pathlib.Path) -> None:
    assert resolve_storage_path(str(tmp_path / "a")) == resolve_storage_path(f"file://{tmp_path}/a")
    assert (tmp_path / "a").is_dir()


def test_shared_fs_dict_joins_host_path_and_storage_path(tmp_path: pathlib.Path) -> None:
    spec = {"type": "shared_fs", "host_path": str(tmp_path), "storage_path": "ckpts/run1"}
    assert resolve_storage_path(spec) == tmp_path / "ckpts" / "run1"


def test_shared_fs_without_storage_path_uses_host_path(tmp_path: pathlib.Path) -> None:
    spec = {"type": "shared_fs", "host_path": str(tmp_path), "save_trial_latest": 2}
    assert resolve_storage_path(spec) == tmp_path


def test_storage_path_may_not_leave_host_path(tmp_path: pathlib.Path) -> None:
    spec = {"type": "shared_fs", "host_path": str(tmp_path / "h"), "storage_path": "../../etc"}
    with pytest.raises(StorageConfigError, match="leaves host_path"):
        resolve_storage_path(spec)


def test_shared_fs_needs_host_path() -> None:
    with pytest.raises(StorageConfigError, match="needs 'host_path'"):
        resolve_storage_path({"type": "shared_fs"})


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", None])
def test_unknown_storage_types_are_named_with_the_fix(kind: str | None) -> None:
    with pytest.raises(StorageConfigError, match=f"type {kind!r} is not supported.*shared_fs"):
        resolve_storage_path({"type": kind, "bucket": "b"})


def test_cloud_urls_are_refused_with_the_fix() -> None:
    with pytest.raises(StorageConfigError, match="cloud storage.*local folder"):
        resolve_storage_path("s3://bucket/prefix")


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageConfigError, match="is a file, not a folder"):
        resolve_storage_path(str(tmp_path / "f"))


def test_a_folder_under_a_file_is_not_writable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageConfigError, match="not writable"):
        resolve_storage_path(str(tmp_path / "f" / "sub"))


def test_a_read_only_folder_is_refused(tmp_path: pathlib.Path) -> None:
    # Root may write anywhere, so as root the check runs with the effective uid of 'nobody',
    # in a folder 'nobody' can reach.
    outer = pathlib.Path(tempfile.mkdtemp(prefix="shim-ro-", dir="/tmp"))
    try:
        outer.chmod(0o755)
        locked = outer / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            with pytest.raises(StorageConfigError, match="not writable.*fix its permissions"):
                resolve_storage_path(str(locked))
        finally:
            if as_root:
                os.seteuid(0)
    finally:
        shutil.rmtree(outer)


def test_the_wrong_type_of_spec_is_refused() -> None:
    with pytest.raises(StorageConfigError, match="must be a path"):
        resolve_storage_path(42)  # type: ignore[arg-type]
