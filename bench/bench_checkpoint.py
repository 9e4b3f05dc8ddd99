"""Checkpoint store/restore through ``shim.core`` vs a bare ``torch.save``/``torch.load``.

Both write the same ~100 MB state dict to the same disk, interleaved, several rounds; the ratio
of medians is the number that matters (absolute times on a shared machine are noise).

    python bench/bench_checkpoint.py [--mb 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import tempfile
import time

import torch

import shim.core as core
from shim.core.info import ClusterInfo


def make_state(megabytes: int) -> dict[str, torch.Tensor]:
    per_tensor = 1024 * 1024  # 4 MiB of float32, about the size of a large layer
    return {f"layer{i}.weight": torch.randn(per_tensor) for i in range(max(1, megabytes // 4))}


def bare_round(state: dict[str, torch.Tensor], folder: pathlib.Path) -> float:
    start = time.perf_counter()
    target = folder / "bare"
    target.mkdir()
    torch.save(state, target / "state_dict.pth")
    loaded = torch.load(target / "state_dict.pth", weights_only=True)
    elapsed = time.perf_counter() - start
    assert loaded.keys() == state.keys()
    shutil.rmtree(target)
    return elapsed


def shim_round(state: dict[str, torch.Tensor], ctx: core.Context) -> float:
    start = time.perf_counter()
    with ctx.checkpoint.store_path({"steps_completed": 1}) as (path, storage_id):
        torch.save(state, path / "state_dict.pth")
    with ctx.checkpoint.restore_path(storage_id) as path:
        loaded = torch.load(path / "state_dict.pth", weights_only=True)
    elapsed = time.perf_counter() - start
    assert loaded.keys() == state.keys()
    ctx.checkpoint.delete(storage_id)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: temp)")
    args = parser.parse_args()

    state = make_state(args.mb)
    size_mb = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = pathlib.Path(tmp)
        ctx = core.local_init(checkpoint_storage=folder / "storage", info=ClusterInfo())
        durable = core.local_init(
            checkpoint_storage=folder / "durable", info=ClusterInfo(), durable_checkpoints=True
        )
        bare_round(state, folder)  # warm-up: page cache, allocator
        shim_round(state, ctx)
        bare, shim, fsynced = [], [], []
        for _ in range(args.rounds):
            bare.append(bare_round(state, folder))
            shim.append(shim_round(state, ctx))
            fsynced.append(shim_round(state, durable))
        ctx.close()
        durable.close()
    b, s, d = (statistics.median(x) for x in (bare, shim, fsynced))
    print(f"state: {size_mb:.0f} MB in {len(state)} tensors, {args.rounds} rounds, medians")
    print(f"bare torch.save+torch.load        : {b * 1000:8.1f} ms")
    print(f"shim store_path+restore_path      : {s * 1000:8.1f} ms")
    print(f"  with durable_checkpoints (fsync): {d * 1000:8.1f} ms")
    print(f"ratio shim/bare: {s / b:.3f} (bar: <= 1.20); durable/bare: {d / b:.3f}")


if __name__ == "__main__":
    main()
