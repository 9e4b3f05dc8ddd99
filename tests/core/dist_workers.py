"""Bodies of the 2-process tests; each runs in a real torch.distributed (gloo) process."""

from __future__ import annotations

import json
import os
import pathlib
import signal
from collections.abc import Callable
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

import shim.core as core
from shim.core.info import ClusterInfo
from tests.conftest import torchrun_env


def run(
    body: Callable[[core.Context, pathlib.Path], Any], tmp: pathlib.Path, port: int
) -> list[Any]:
    """Run ``body`` on 2 ranks; return each rank's JSON result."""
    mp.spawn(_entry, args=(body, tmp, port), nprocs=2, join=True)
    return [json.loads((tmp / f"result{rank}.json").read_text()) for rank in range(2)]


def _entry(rank: int, body: Callable, tmp: pathlib.Path, port: int) -> None:
    os.environ.update(torchrun_env(rank, 2, port))
    dist_ctx = core.DistributedContext.from_torch_distributed()
    with core.local_init(
        distributed=dist_ctx, checkpoint_storage=tmp / "storage", info=ClusterInfo()
    ) as ctx:
        result = body(ctx, tmp)
    (tmp / f"result{rank}.json").write_text(json.dumps(result))


def collectives(ctx: core.Context, tmp: pathlib.Path) -> Any:
    d = ctx.distributed
    me = {"rank": d.rank, "items": list(range(d.rank + 1))}
    return {
        "broadcast": d.broadcast({"from": d.rank}),
        "allgather": d.allgather(me),
        "gather": d.gather(me),
        "broadcast_local": d.broadcast_local(f"local-{d.rank}"),
        "allgather_local": d.allgather_local(d.rank * 10),
        "gather_local": d.gather_local(d.rank),
        "ranks": [d.get_rank(), d.get_size(), d.get_local_rank(), d.get_num_agents()],
        "process_group": dist.is_initialized(),
    }


def preempt_on_chief(ctx: core.Context, tmp: pathlib.Path) -> Any:
    seen = []
    for step in range(1, 6):
        if ctx.distributed.rank == 0 and step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # only the chief is signalled
        if ctx.preempt.should_preempt():
            seen.append(step)
            break
    return seen


def worker_store_without_shard(ctx: core.Context, tmp: pathlib.Path) -> Any:
    if ctx.distributed.rank == 0:
        return "chief"
    try:
        with ctx.checkpoint.store_path({"steps_completed": 1}):
            return "no error"
    except core.ChiefOnlyError as exc:
        return str(exc)


def sharded_store(ctx: core.Context, tmp: pathlib.Path) -> Any:
    rank = ctx.distributed.rank
    with ctx.checkpoint.store_path({"steps_completed": 4, f"rank{rank}": rank}, shard=True) as (
        path,
        storage_id,
    ):
        (path / f"shard{rank}.bin").write_bytes(bytes([rank]))
    with ctx.checkpoint.restore_path(storage_id) as path:
        files = sorted(p.name for p in path.iterdir())
    return {"id": storage_id, "files": files, "metadata": ctx.checkpoint.get_metadata(storage_id)}


def searcher_in_step(ctx: core.Context, tmp: pathlib.Path) -> Any:
    ctx.searcher._config = {"searcher": {"max_length": {"batches": 12}}}
    lengths = []
    for op in ctx.searcher._operations(core.SearcherMode.WorkersAskChief):
        lengths.append(op.length)
        if ctx.distributed.rank == 0:
            op.report_completed(0.0)
    return lengths


def _error_of(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def sharded_error_paths(ctx: core.Context, tmp: pathlib.Path) -> Any:
    rank = ctx.distributed.rank
    checkpoint = ctx.checkpoint
    out: dict[str, Any] = {}

    def failing_store() -> None:
        with checkpoint.store_path({"steps_completed": 1}, shard=True) as (path, _):
            (path / f"part{rank}").write_text("x")
            if rank == 1:
                raise OSError("disk full")

    out["store"] = _error_of(failing_store)
    out["leftovers"] = sorted(p.name for p in checkpoint.storage_path.iterdir())

    def conflicting_metadata() -> None:
        with checkpoint.store_path({"steps_completed": 1, "lr": rank}, shard=True):
            pass

    out["metadata"] = _error_of(conflicting_metadata)

    shared = tmp / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "same.bin").write_text("same")
    sid = checkpoint.upload(shared, {"steps_completed": 2}, shard=True)
    out["dedup"] = sorted(p.name for p in (checkpoint.storage_path / sid).iterdir())

    own = tmp / f"own{rank}"
    own.mkdir(exist_ok=True)
    (own / "clash.bin").write_text(str(rank))
    out["clash"] = _error_of(lambda: checkpoint.upload(own, {"steps_completed": 3}, shard=True))
    missing = tmp / "missing" if rank == 1 else own
    out["missing"] = _error_of(
        lambda: checkpoint.upload(missing, {"steps_completed": 3}, shard=True)
    )
    return out


def chief_only_preempt(ctx: core.Context, tmp: pathlib.Path) -> Any:
    preempt = core.PreemptContext(ctx.distributed, core.PreemptMode.ChiefOnly).start()
    try:
        if ctx.distributed.rank == 0:
            return preempt.should_preempt()
        return _error_of(preempt.should_preempt)
    finally:
        preempt.close()


def signal_on_worker_only(ctx: core.Context, tmp: pathlib.Path) -> Any:
    if ctx.distributed.rank == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    return [ctx.preempt.should_preempt() for _ in range(3)]
