from __future__ import annotations

import json
import pathlib

import pytest
import torch

import shim.core as core
from shim.core.distributed import DummyDistributedContext
from shim.core.info import ClusterInfo


def make_context(storage: pathlib.Path) -> core.Context:
    return core.local_init(checkpoint_storage=str(storage), info=ClusterInfo())


def test_store_then_restore_round_trips_tensors_and_metadata(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    state = {"w": torch.arange(10.0)}
    with ctx.checkpoint.store_path({"steps_completed": 7, "note": "x"}) as (path, storage_id):
        torch.save(state, path / "state.pt")
    with ctx.checkpoint.restore_path(storage_id) as path:
        assert torch.equal(torch.load(path / "state.pt", weights_only=True)["w"], state["w"])
    assert ctx.checkpoint.get_metadata(storage_id) == {"steps_completed": 7, "note": "x"}


def test_checkpoint_layout_is_uuid_folder_with_metadata_json(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with ctx.checkpoint.store_path({"steps_completed": 1}) as (path, storage_id):
        (path / "a.txt").write_text("a")
        assert not (storage / storage_id).exists(), "visible before it is complete"
    folder = storage / storage_id
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "metadata.json"]
    assert json.loads((folder / "metadata.json").read_text()) == {"steps_completed": 1}
    assert not list(storage.glob(".*partial"))


def test_an_error_inside_store_path_leaves_nothing_behind(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with (
        pytest.raises(RuntimeError, match="boom"),
        ctx.checkpoint.store_path({"steps_completed": 1}) as (path, _),
    ):
        (path / "half.pt").write_bytes(b"x" * 100)
        raise RuntimeError("boom")
    assert [p.name for p in storage.iterdir() if p.name not in ("metrics", "tensorboard")] == []


def test_metadata_without_steps_completed_is_refused_before_anything_is_written(
    storage: pathlib.Path,
) -> None:
    ctx = make_context(storage)
    before = sorted(storage.iterdir())
    with (
        pytest.raises(core.InvalidMetadata, match="steps_completed"),
        ctx.checkpoint.store_path({"epoch": 1}),
    ):
        pytest.fail("the body must not run")
    with pytest.raises(core.InvalidMetadata, match="steps_completed"):
        ctx.checkpoint.upload(storage, {})
    assert sorted(storage.iterdir()) == before


def test_metadata_that_is_not_json_is_refused(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with (
        pytest.raises(core.InvalidMetadata, match="JSON"),
        ctx.checkpoint.store_path({"steps_completed": 1, "t": object()}),
    ):
        pass


@pytest.mark.parametrize("bad", ["../x", "..", "/etc", "not-a-uuid", "A" * 36])
def test_restore_path_refuses_ids_that_are_not_uuids(storage: pathlib.Path, bad: str) -> None:
    ctx = make_context(storage)
    with (
        pytest.raises(core.InvalidStorageId, match="not a checkpoint uuid"),
        ctx.checkpoint.restore_path(bad),
    ):
        pass


def test_missing_checkpoint_names_the_path_and_the_storage(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    missing = "3f2c9a6e-1b2d-4c5e-8f90-a1b2c3d4e5f6"
    restore = ctx.checkpoint.restore_path(missing)
    with pytest.raises(core.CheckpointNotFound, match=f"{missing} not found.*{storage}"), restore:
        pass
    with pytest.raises(FileNotFoundError):
        ctx.checkpoint.get_metadata(missing)


def test_a_folder_without_metadata_json_is_an_incomplete_checkpoint(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    truncated = "3f2c9a6e-1b2d-4c5e-8f90-a1b2c3d4e5f6"
    (storage / truncated).mkdir()
    (storage / truncated / "state.pt").write_bytes(b"\x80")
    restore = ctx.checkpoint.restore_path(truncated)
    with pytest.raises(core.IncompleteCheckpoint, match="no metadata.json"), restore:
        pass


def test_damaged_metadata_json_is_reported(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with ctx.checkpoint.store_path({"steps_completed": 1}) as (_, storage_id):
        pass
    (storage / storage_id / "metadata.json").write_text("{")
    with pytest.raises(core.IncompleteCheckpoint, match="not valid JSON"):
        ctx.checkpoint.get_metadata(storage_id)


def test_upload_copies_selected_files_and_download_copies_them_back(
    storage: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    ctx = make_context(storage)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "keep.bin").write_bytes(b"k")
    (src / "sub" / "deep.bin").write_bytes(b"d")
    (src / "skip.tmp").write_bytes(b"s")
    storage_id = ctx.checkpoint.upload(
        src, {"steps_completed": 2}, selector=lambda name: not name.endswith(".tmp")
    )
    out = tmp_path / "out"
    ctx.checkpoint.download(storage_id, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "keep.bin",
        "metadata.json",
        "sub/deep.bin",
    ]
    only = tmp_path / "only"
    ctx.checkpoint.download(
        storage_id, only, core.DownloadMode.NoSharedDownload, selector=lambda n: n == "keep.bin"
    )
    assert [p.name for p in only.iterdir()] == ["keep.bin"]


def test_upload_of_nothing_is_refused(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with pytest.raises(ValueError, match="upload nothing"):
        ctx.checkpoint.upload(None, {"steps_completed": 1})


def test_delete_removes_the_checkpoint(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with ctx.checkpoint.store_path({"steps_completed": 1}) as (path, storage_id):
        (path / "f").write_text("x")
    ctx.checkpoint.delete(storage_id)
    assert not (storage / storage_id).exists()
    with pytest.raises(core.CheckpointNotFound, match="cannot delete"):
        ctx.checkpoint.delete(storage_id)


def test_workers_cannot_store_without_shard(storage: pathlib.Path) -> None:
    dist = DummyDistributedContext()
    dist.rank = 1  # a worker's view, without starting a process group
    checkpoint = core.CheckpointContext(dist, storage)
    with (
        pytest.raises(core.ChiefOnlyError, match=r"rank=1"),
        checkpoint.store_path({"steps_completed": 1}),
    ):
        pass


def test_metadata_that_is_not_a_dict_is_refused(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    store = ctx.checkpoint.store_path(5)  # type: ignore[arg-type]
    with pytest.raises(core.InvalidMetadata, match="must be a dict, not int"), store:
        pass


def test_metadata_json_that_is_not_an_object_is_a_damaged_checkpoint(storage: pathlib.Path) -> None:
    ctx = make_context(storage)
    with ctx.checkpoint.store_path({"steps_completed": 1}) as (_, storage_id):
        pass
    (storage / storage_id / "metadata.json").write_text("[1]")
    with pytest.raises(core.IncompleteCheckpoint, match="holds list, not an object"):
        ctx.checkpoint.get_metadata(storage_id)


def test_durable_checkpoints_round_trip_the_same(storage: pathlib.Path) -> None:
    ctx = core.local_init(checkpoint_storage=storage, info=ClusterInfo(), durable_checkpoints=True)
    with ctx.checkpoint.store_path({"steps_completed": 2}) as (path, storage_id):
        (path / "sub").mkdir()
        (path / "sub" / "w.bin").write_bytes(b"w")
    with ctx.checkpoint.restore_path(storage_id) as path:
        assert (path / "sub" / "w.bin").read_bytes() == b"w"
