"""A process killed with SIGKILL while writing a checkpoint leaves no checkpoint-looking folder."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

import shim.core as core
from shim.core.info import ClusterInfo

WRITER = """
import sys, pathlib, torch
import shim.core as core
from shim.core.info import ClusterInfo

ctx = core.local_init(checkpoint_storage=sys.argv[1], info=ClusterInfo())
with ctx.checkpoint.store_path({"steps_completed": 1}) as (path, sid):
    torch.save({"w": torch.ones(10)}, path / "state.pth")
print(sid, flush=True)
with ctx.checkpoint.store_path({"steps_completed": 2}) as (path, sid):
    (path / "state.pth").write_bytes(b"half a checkpoint")
    print("writing", flush=True)
    sys.stdin.readline()  # held here, mid-write, until the test kills the process
"""


def test_sigkill_mid_write_leaves_the_previous_checkpoint_as_the_latest_complete_one(
    storage: pathlib.Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(storage)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    looks_complete = [p.name for p in storage.iterdir() if (p / "metadata.json").is_file()]
    assert looks_complete == [first]
    assert [p.name for p in storage.glob(".*.partial")], "the interrupted write stays hidden"
    ctx = core.local_init(checkpoint_storage=storage, info=ClusterInfo())
    assert ctx.checkpoint.get_metadata(first) == {"steps_completed": 1}
