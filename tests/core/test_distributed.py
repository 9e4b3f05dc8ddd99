"""Two real torch.distributed (gloo) processes per test."""

from __future__ import annotations

import pathlib

import pytest

import shim.core as core
from tests.conftest import free_port
from tests.core import dist_workers

pytestmark = pytest.mark.timeout(180)


def test_collectives_carry_python_objects_across_two_ranks(tmp_path: pathlib.Path) -> None:
    chief, worker = dist_workers.run(dist_workers.collectives, tmp_path, free_port())
    everyone = [{"rank": 0, "items": [0]}, {"rank": 1, "items": [0, 1]}]
    assert chief["broadcast"] == worker["broadcast"] == {"from": 0}
    assert chief["allgather"] == worker["allgather"] == everyone
    assert chief["gather"] == everyone and worker["gather"] is None
    assert chief["broadcast_local"] == worker["broadcast_local"] == "local-0"
    assert chief["allgather_local"] == worker["allgather_local"] == [0, 10]
    assert chief["gather_local"] == [0, 1] and worker["gather_local"] is None
    assert chief["ranks"] == [0, 2, 0, 1] and worker["ranks"] == [1, 2, 1, 1]
    assert chief["process_group"] and worker["process_group"]


def test_preemption_signalled_on_the_chief_stops_every_rank_at_the_same_step(
    tmp_path: pathlib.Path,
) -> None:
    assert dist_workers.run(dist_workers.preempt_on_chief, tmp_path, free_port()) == [[3], [3]]


def test_a_worker_calling_store_path_without_shard_gets_a_clear_error(
    tmp_path: pathlib.Path,
) -> None:
    _, worker = dist_workers.run(dist_workers.worker_store_without_shard, tmp_path, free_port())
    assert "non-chief worker (rank=1)" in worker and "shard=True" in worker


def test_sharded_store_merges_files_and_metadata_from_every_rank(tmp_path: pathlib.Path) -> None:
    chief, worker = dist_workers.run(dist_workers.sharded_store, tmp_path, free_port())
    assert chief == worker
    assert chief["files"] == ["metadata.json", "shard0.bin", "shard1.bin"]
    assert chief["metadata"] == {"steps_completed": 4, "rank0": 0, "rank1": 1}


def test_searcher_operations_reach_every_rank(tmp_path: pathlib.Path) -> None:
    assert dist_workers.run(dist_workers.searcher_in_step, tmp_path, free_port()) == [[12], [12]]


def test_a_context_larger_than_one_process_needs_a_process_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(core.DistributedSetupError, match="rank 1 of 2.*torchrun"):
        core.DistributedContext(
            rank=1, size=2, local_rank=1, local_size=2, cross_rank=0, cross_size=1
        )


def test_from_torch_distributed_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(core.DistributedSetupError, match="LOCAL_WORLD_SIZE.*torchrun"):
        core.DistributedContext.from_torch_distributed()


@pytest.mark.parametrize(
    "ranks",
    [
        {"rank": 2, "size": 2, "local_rank": 0, "local_size": 2, "cross_rank": 0, "cross_size": 1},
        {"rank": -1, "size": 2, "local_rank": 0, "local_size": 2, "cross_rank": 0, "cross_size": 1},
    ],
)
def test_inconsistent_ranks_are_refused(ranks: dict[str, int]) -> None:
    with pytest.raises(core.DistributedSetupError, match="non-negative|inconsistent"):
        core.DistributedContext(**ranks)


def test_sharded_writes_fail_together_and_leave_nothing(tmp_path: pathlib.Path) -> None:
    chief, worker = dist_workers.run(dist_workers.sharded_error_paths, tmp_path, free_port())
    assert worker["store"] == "OSError: disk full"
    assert chief["store"].startswith("CheckpointError") and "rank(s) [1] failed" in chief["store"]
    assert chief["leftovers"] == worker["leftovers"] == []
    for result in (chief, worker):
        assert result["metadata"].startswith("InvalidMetadata") and "/lr" in result["metadata"]
        assert result["dedup"] == ["metadata.json", "same.bin"]
        assert "clash.bin (ranks [0, 1])" in result["clash"]
        assert "{1: " in result["missing"] and "is not a folder" in result["missing"]


def test_chief_only_preemption_refuses_a_worker_by_rank(tmp_path: pathlib.Path) -> None:
    chief, worker = dist_workers.run(dist_workers.chief_only_preempt, tmp_path, free_port())
    assert chief is False
    assert worker.startswith("ChiefOnlyError") and "rank=1" in worker


def test_a_signal_to_a_worker_alone_does_not_preempt_when_workers_ask_the_chief(
    tmp_path: pathlib.Path,
) -> None:
    assert dist_workers.run(dist_workers.signal_on_worker_only, tmp_path, free_port()) == [
        [False] * 3,
        [False] * 3,
    ]


def test_each_torchrun_attempt_reads_only_its_own_store_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relaunch reuses the launcher's store; the dead attempt's gloo addresses stay in it."""
    import datetime

    import torch.distributed as dist

    from shim.core.distributed import _attempt_store

    port = free_port()
    server = dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")  # clients of the agent's store
    timeout = datetime.timedelta(seconds=30)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    _attempt_store(0, 2, timeout).set("rank_0", "address of a process that died")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    relaunched = _attempt_store(0, 2, timeout)
    assert not relaunched.check(["rank_0"])
    relaunched.set("rank_0", "new address")
    assert relaunched.get("rank_0") == b"new address"
    del server
