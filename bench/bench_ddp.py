"""Per-step time of ``run-trial`` on 2 torchrun ranks against a hand-written DDP loop on 2 ranks.

Both train the benchmark MLP (``bench/trials/mlp``; ``--depth 60`` gives 61 linear layers, 122
parameter tensors) on the same data with the same global batch, under
``python -m torch.distributed.run --nproc-per-node 2`` (gloo, one thread per rank). The per-step
time is taken between two steps inside each run, so start-up, the final validation and the
checkpoint stay out: for run-trial from the times of its training reports (``metrics.jsonl``,
every ``--window`` batches), for the hand loops from the clock in the loop. Beside them: the
same hand loop averaging gradients with one ``all_reduce`` per parameter tensor after
``backward()`` (what run-trial did before it used DDP), and run-trial on one process with the
same per-rank batch (scaling efficiency). Rounds alternate the order; medians are printed.

    python bench/bench_ddp.py [--steps 400] [--window 50] [--rounds 3] [--depth 60]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
TRIAL_DIR = HERE / "trials" / "mlp"

CONFIG = """\
name: bench-ddp
entrypoint: model_def:MLPTrial
hyperparameters:
  global_batch_size: {batch}
  lr: 0.05
  hidden: {hidden}
  depth: {depth}
searcher:
  name: single
  metric: val_loss
  max_length:
    batches: {length}
scheduling_unit: {window}
reproducibility:
  experiment_seed: 0
"""


def torchrun(nproc: int, *args: str) -> list[str]:
    if nproc == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *args]


def run_trial(args: argparse.Namespace, scratch: pathlib.Path, nproc: int, batch: int) -> float:
    """Seconds per step of run-trial between its training reports at ``window`` and ``steps``."""
    folder = pathlib.Path(tempfile.mkdtemp(dir=scratch))
    config = folder / "const.yaml"
    length = args.steps + args.window  # the report at `steps` comes before the run's end
    config.write_text(
        CONFIG.format(
            batch=batch, hidden=args.hidden, depth=args.depth, length=length, window=args.window
        )
    )
    command = torchrun(nproc, "-m", "shim.cli", str(config), str(TRIAL_DIR), "--plain", "--json")
    command += ["--checkpoint-storage", str(folder / "storage")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run-trial failed:\n{done.stderr[-3000:]}")
    summary = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
    records = [
        json.loads(ln) for ln in pathlib.Path(summary["metrics_path"]).read_text().splitlines()
    ]
    times = {r["steps_completed"]: r["time"] for r in records if r["group"] == "training"}
    return (times[args.steps] - times[args.window]) / (args.steps - args.window)


def hand(args: argparse.Namespace, scratch: pathlib.Path, mode: str) -> float:
    """Seconds per step of the hand loop (``ddp`` or ``per-tensor``) on 2 ranks."""
    out = pathlib.Path(tempfile.mkdtemp(dir=scratch)) / "per_step.json"
    command = torchrun(2, str(pathlib.Path(__file__).resolve()), "--hand", mode, "--out", str(out))
    command += ["--steps", str(args.steps), "--window", str(args.window)]
    command += ["--depth", str(args.depth), "--hidden", str(args.hidden)]
    command += ["--batch", str(args.batch)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the hand loop failed:\n{done.stderr[-3000:]}")
    return float(json.loads(out.read_text()))


def hand_rank(args: argparse.Namespace) -> None:
    """One rank of the hand loop: the model, data and sharding that run-trial uses."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from shim.imports import determined_namespace, trial_folder

    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    with determined_namespace(), trial_folder(TRIAL_DIR):
        import model_def

        torch.manual_seed(0)
        module: Any = model_def.MLP(0.05, args.hidden, args.depth)
        dataset = model_def.make_dataset()
    net: Any = module.net
    model = DistributedDataParallel(net) if args.hand == "ddp" else net
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    # Determined's sharding: rank r takes the batches i with i % size == r.
    batches = torch.utils.data.BatchSampler(
        torch.utils.data.SequentialSampler(dataset), args.batch // size, drop_last=False
    )
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=list(batches)[rank::size])
    params = list(net.parameters())
    done, started = 0, 0.0
    while done < args.steps:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if args.hand == "per-tensor":
                for p in params:
                    dist.all_reduce(p.grad)
                    p.grad.div_(size)
            opt.step()
            loss.item()  # run-trial reads the loss each step too
            done += 1
            if done == args.window:
                started = time.perf_counter()
            if done == args.steps:
                break
    per_step = (time.perf_counter() - started) / (args.steps - args.window)
    if rank == 0:
        pathlib.Path(args.out).write_text(json.dumps(per_step))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--window", type=int, default=50, help="steps left out at the start")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64, help="the global batch")
    parser.add_argument("--hand", choices=["ddp", "per-tensor"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:
        hand_rank(args)
        return
    if args.steps % args.window or args.steps <= args.window:
        parser.error("--steps must be a multiple of --window and larger than it")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    per_step: dict[str, list[float]] = {}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        scratch = pathlib.Path(name)
        for i in range(args.rounds):
            runs = [
                ("run-trial, 2 ranks", lambda: run_trial(args, scratch, 2, args.batch)),
                ("hand DDP loop, 2 ranks", lambda: hand(args, scratch, "ddp")),
                ("hand per-tensor all_reduce, 2 ranks", lambda: hand(args, scratch, "per-tensor")),
                ("run-trial, 1 rank", lambda: run_trial(args, scratch, 1, args.batch // 2)),
            ]
            if i % 2:
                runs.reverse()
            this_round = {label: run() for label, run in runs}
            for label, value in this_round.items():
                per_step.setdefault(label, []).append(value)
            ratios.append(this_round["run-trial, 2 ranks"] / this_round["hand DDP loop, 2 ranks"])
    tensors = 2 * (args.depth + 1)
    print(
        f"MLP: {args.depth + 1} linear layers ({tensors} parameter tensors), hidden "
        f"{args.hidden}, global batch {args.batch}, steps {args.window}..{args.steps}, "
        f"{args.rounds} rounds, gloo, 1 thread per rank"
    )
    median = {label: statistics.median(values) for label, values in per_step.items()}
    for label, value in median.items():
        print(f"{label:38s}: {value * 1e3:7.2f} ms/step")
    hand_ddp = median["hand DDP loop, 2 ranks"]
    print(
        f"run-trial / hand DDP (2 ranks): {statistics.median(ratios):.3f} (median of per-round "
        f"ratios, {min(ratios):.3f} to {max(ratios):.3f}; bar: <= 1.10)"
    )
    old = median["hand per-tensor all_reduce, 2 ranks"] / hand_ddp
    print(f"per-tensor all_reduce / hand DDP: {old:.3f}")
    efficiency = median["run-trial, 1 rank"] / median["run-trial, 2 ranks"]
    print(f"scaling efficiency (run-trial 1-rank / 2-rank step time): {efficiency:.2f}")


if __name__ == "__main__":
    main()
