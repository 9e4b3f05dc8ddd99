"""Bodies of the CUDA tests: a job whose training process group is NCCL."""

from __future__ import annotations

import json
import os
import pathlib

import torch
import torch.distributed as dist

import shim.core as core
from shim.core.info import ClusterInfo
from tests.conftest import torchrun_env


def nccl_job(rank: int, tmp: pathlib.Path, port: int) -> None:
    os.environ.update(torchrun_env(rank, 2, port))
    torch.cuda.set_device(0)  # one GPU here: both ranks share it; no NCCL collective runs
    dist.init_process_group("nccl")
    d = core.DistributedContext.from_torch_distributed()
    storage = tmp / "storage"
    with core.local_init(distributed=d, checkpoint_storage=storage, info=ClusterInfo()) as ctx:
        weights = torch.full((4,), float(rank), device="cuda")
        gathered = ctx.distributed.allgather(weights)
        flag = ctx.preempt.should_preempt()
        with ctx.checkpoint.store_path({"steps_completed": 1}, shard=True) as (path, sid):
            torch.save({"w": weights}, path / f"rank{rank}.pth")
        with ctx.checkpoint.restore_path(sid) as path:
            other = torch.load(path / f"rank{1 - rank}.pth", map_location="cuda", weights_only=True)
        ctx.train.report_training_metrics(1, {"loss": weights.sum()})
        result = {
            "gathered": [t.cpu().tolist() for t in gathered],
            "devices": [str(t.device) for t in gathered],
            "preempt": flag,
            "other": other["w"].cpu().tolist(),
            "backend": dist.get_backend(),
        }
    dist.destroy_process_group()
    (tmp / f"result{rank}.json").write_text(json.dumps(result))
