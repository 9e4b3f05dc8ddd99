"""CUDA checks, run on a GPU machine with `pytest -m gpu` (the default run deselects them)."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
import torch.multiprocessing as mp

import shim.core as core
from shim.core.info import ClusterInfo
from tests.conftest import free_port
from tests.gpu import nccl_workers

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300)]


def test_object_collectives_work_beside_an_nccl_training_group(tmp_path: pathlib.Path) -> None:
    mp.spawn(nccl_workers.nccl_job, args=(tmp_path, free_port()), nprocs=2, join=True)
    chief, worker = (json.loads((tmp_path / f"result{r}.json").read_text()) for r in range(2))
    assert chief["backend"] == "nccl"
    assert chief["gathered"] == worker["gathered"] == [[0.0] * 4, [1.0] * 4]
    assert chief["devices"] == ["cuda:0", "cuda:0"]
    assert chief["preempt"] is worker["preempt"] is False
    assert chief["other"] == [1.0] * 4 and worker["other"] == [0.0] * 4


def test_cuda_tensors_are_reported_and_checkpointed(storage: pathlib.Path) -> None:
    with core.local_init(checkpoint_storage=storage, info=ClusterInfo()) as ctx:
        loss = torch.tensor(0.25, device="cuda")
        ctx.train.report_training_metrics(3, {"loss": loss, "bf16": loss.to(torch.bfloat16)})
        state = {"w": torch.randn(1024, device="cuda")}
        with ctx.checkpoint.store_path({"steps_completed": 3}) as (path, sid):
            torch.save(state, path / "state.pth")
        with ctx.checkpoint.restore_path(sid) as path:
            back = torch.load(path / "state.pth", weights_only=True)
    record = json.loads(ctx.train.metrics_path.read_text().splitlines()[0])
    assert record["metrics"] == {"loss": 0.25, "bf16": 0.25}
    assert back["w"].device.type == "cuda" and torch.equal(back["w"], state["w"])
