"""Preemption latency: from SIGTERM to the exit of a real ``run-trial`` process with a complete
checkpoint, against one training step plus one checkpoint write measured in the same run.

The latency is end to end, as a scheduler sees it: it includes the operating system tearing down
the exited process (tens of milliseconds for a process holding torch), which weighs most when a
step is short.

    python bench/bench_preemption.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
CONFIG = HERE / "trials" / "mlp" / "wide.yaml"


def one_round(storage: pathlib.Path, phase: float, batch_size: int) -> dict[str, float]:
    """Send SIGTERM ``phase`` of a step after a batch boundary (so it lands inside a step)."""
    command = [sys.executable, "-m", "shim.cli", str(CONFIG), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage), "--fresh"]
    command += ["--hparam", f"global_batch_size={batch_size}"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        reports = []
        for line in proc.stderr:
            if ": training " in line:
                reports.append(time.perf_counter())
                if len(reports) == 3:  # two reporting periods of 5 steps: the step time
                    time.sleep(phase * (reports[2] - reports[1]) / 5)
                    sent = time.perf_counter()
                    proc.send_signal(signal.SIGTERM)
                    break
        out, _ = proc.communicate(timeout=300)
        exited = time.perf_counter()
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "preempted", summary
    checkpoint = pathlib.Path(summary["latest_checkpoint_path"])
    assert (checkpoint / "metadata.json").is_file()
    return {
        "latency": exited - sent,
        "step": (reports[2] - reports[1]) / 5,
        "write": checkpoint_write_seconds(checkpoint),
    }


def checkpoint_write_seconds(checkpoint: pathlib.Path) -> float:
    """One checkpoint write of the same content through shim.core, timed here."""
    import torch

    import shim.core as core
    from shim.core.info import ClusterInfo

    content = torch.load(checkpoint / "state_dict.pth", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = core.local_init(checkpoint_storage=tmp, info=ClusterInfo())
        start = time.perf_counter()
        with ctx.checkpoint.store_path({"steps_completed": 1}) as (path, _):
            torch.save(content, path / "state_dict.pth")
        elapsed = time.perf_counter() - start
        ctx.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--batch-size", type=int, default=256, help="larger batches make a step take longer"
    )
    args = parser.parse_args()
    rounds = []
    phases = [(i + 0.5) / args.rounds for i in range(args.rounds)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, phase in enumerate(phases):
            rounds.append(one_round(pathlib.Path(tmp) / str(i), phase, args.batch_size))
    print(f"{args.rounds} rounds, SIGTERM at {', '.join(f'{p:.2f}' for p in phases)} of a step")
    print("  step ms   write ms   SIGTERM->exit ms   latency/(step+write)")
    worst = 0.0
    for r in rounds:
        ratio = r["latency"] / (r["step"] + r["write"])
        worst = max(worst, ratio)
        step, write, latency = (r[k] * 1000 for k in ("step", "write", "latency"))
        print(f"  {step:7.1f}   {write:8.1f}   {latency:16.1f}   {ratio:8.2f}")
    med = statistics.median(r["latency"] / (r["step"] + r["write"]) for r in rounds)
    print(f"latency / (step + write): median {med:.2f}, worst {worst:.2f} (bar: <= 1.0)")


if __name__ == "__main__":
    main()
