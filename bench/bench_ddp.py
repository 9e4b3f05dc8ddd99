"""Per-step time of ``run-trial`` on 2 torchrun ranks against a hand-written DDP loop on 2 ranks.

Both train the benchmark MLP (``bench/trials/mlp``; ``--depth 60`` gives 61 linear layers, 122
parameter tensors) on the same data with the same global batch, under
``python -m torch.distributed.run --nproc-per-node 2`` (gloo, one thread per rank). The per-step
time is taken between two steps inside each run, so start-up, the final validation and the
checkpoint stay out: for run-trial from the times of its training reports (``metrics.jsonl``,
every ``--window`` batches), for the hand loops from the clock in the loop.

The ratio comes from one torchrun job whose two ranks alternate the two loops ``--rounds`` times
(run-trial through ``shim.runner.run_trial``, what ``run-trial`` runs in each rank), so a slow
spell of this shared machine falls on both alike; its median per-round ratio is the figure.
Beside it, once each: ``run-trial --nproc 2`` itself (the launcher, to show it costs the same),
the hand loop averaging gradients with one ``all_reduce`` per parameter tensor after
``backward()`` (what run-trial did before it used DDP), and run-trial on one process with the
same per-rank batch (scaling efficiency).

    python bench/bench_ddp.py [--steps 400] [--window 50] [--rounds 11] [--depth 60]
"""

from __future__ import annotations

import argparse
import functools
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


def write_config(args: argparse.Namespace, folder: pathlib.Path, batch: int) -> pathlib.Path:
    config = folder / "const.yaml"
    length = args.steps + args.window  # the report at `steps` comes before the run's end
    config.write_text(
        CONFIG.format(
            batch=batch, hidden=args.hidden, depth=args.depth, length=length, window=args.window
        )
    )
    return config


def per_step_of_run(args: argparse.Namespace, metrics_path: str) -> float:
    """Seconds per step between run-trial's training reports at ``window`` and ``steps``."""
    records = [json.loads(ln) for ln in pathlib.Path(metrics_path).read_text().splitlines()]
    times = {r["steps_completed"]: r["time"] for r in records if r["group"] == "training"}
    return (times[args.steps] - times[args.window]) / (args.steps - args.window)


def run_trial_command(
    args: argparse.Namespace, scratch: pathlib.Path, nproc: int, batch: int
) -> float:
    """Seconds per step of the ``run-trial`` command (``--nproc`` ranks through its launcher)."""
    folder = pathlib.Path(tempfile.mkdtemp(dir=scratch))
    config = write_config(args, folder, batch)
    command = [sys.executable, "-m", "shim.cli", str(config), str(TRIAL_DIR), "--plain", "--json"]
    command += ["--checkpoint-storage", str(folder / "storage"), "--nproc", str(nproc)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run-trial failed:\n{done.stderr[-3000:]}")
    summary = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
    return per_step_of_run(args, summary["metrics_path"])


def on_two_ranks(args: argparse.Namespace, scratch: pathlib.Path, mode: str) -> Any:
    """Run this file's rank body ``mode`` on 2 torchrun ranks; rank 0's JSON answer."""
    out = pathlib.Path(tempfile.mkdtemp(dir=scratch)) / "answer.json"
    command = torchrun(2, str(pathlib.Path(__file__).resolve()), "--hand", mode, "--out", str(out))
    command += ["--steps", str(args.steps), "--window", str(args.window)]
    command += ["--depth", str(args.depth), "--hidden", str(args.hidden)]
    command += ["--batch", str(args.batch), "--rounds", str(args.rounds)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {mode} ranks failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def hand_loop(args: argparse.Namespace, mode: str) -> float:
    """Seconds per step of the hand loop (``ddp`` or ``per-tensor``) on this rank: the model,
    data and sharding that run-trial uses."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from shim.imports import determined_namespace, trial_folder

    rank, size = dist.get_rank(), dist.get_world_size()
    with determined_namespace(), trial_folder(TRIAL_DIR):
        import model_def

        torch.manual_seed(0)
        module: Any = model_def.MLP(0.05, args.hidden, args.depth)
        dataset = model_def.make_dataset()
    net: Any = module.net
    model = DistributedDataParallel(net) if mode == "ddp" else net
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
            if mode == "per-tensor":
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
    return (time.perf_counter() - started) / (args.steps - args.window)


def run_trial_in_rank(args: argparse.Namespace, folder: pathlib.Path) -> float:
    """Seconds per step of what ``run-trial`` runs in each rank (``shim.runner.run_trial``)."""
    import torch.distributed as dist

    from shim.config import load_experiment_config
    from shim.progress import NullReporter
    from shim.runner import RunOptions, run_trial

    if dist.get_rank() == 0:
        folder.mkdir()
        write_config(args, folder, args.batch)
    dist.barrier()
    options = RunOptions(context_dir=TRIAL_DIR, checkpoint_storage=str(folder / "storage"))
    summary = run_trial(load_experiment_config(folder / "const.yaml"), options, NullReporter())
    return per_step_of_run(args, str(summary.metrics_path))


def rank_body(args: argparse.Namespace) -> None:
    """One rank: the per-tensor hand loop once, or run-trial and the hand DDP loop alternated."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    out = pathlib.Path(args.out)
    answer: Any
    if args.hand == "per-tensor":
        answer = hand_loop(args, "per-tensor")
    else:
        answer = []
        for i in range(args.rounds):
            folder = out.parent / f"round{i}"
            runs = {
                "hand": functools.partial(hand_loop, args, "ddp"),
                "run-trial": functools.partial(run_trial_in_rank, args, folder),
            }
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            answer.append({name: runs[name]() for name in order})
    if dist.get_rank() == 0:
        out.write_text(json.dumps(answer))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--window", type=int, default=50, help="steps left out at the start")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--depth", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64, help="the global batch")
    parser.add_argument("--hand", choices=["interleaved", "per-tensor"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:
        rank_body(args)
        return
    if args.steps % args.window or args.steps <= args.window:
        parser.error("--steps must be a multiple of --window and larger than it")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as name:
        scratch = pathlib.Path(name)
        rounds = on_two_ranks(args, scratch, "interleaved")
        command = run_trial_command(args, scratch, 2, args.batch)
        per_tensor = on_two_ranks(args, scratch, "per-tensor")
        one_rank = run_trial_command(args, scratch, 1, args.batch // 2)
    hand = statistics.median(r["hand"] for r in rounds)
    ours = statistics.median(r["run-trial"] for r in rounds)
    ratios = [r["run-trial"] / r["hand"] for r in rounds]
    print(
        f"MLP: {args.depth + 1} linear layers ({2 * (args.depth + 1)} parameter tensors), hidden "
        f"{args.hidden}, global batch {args.batch}, steps {args.window}..{args.steps}, gloo, "
        f"1 thread per rank; {args.rounds} alternating rounds in one torchrun job"
    )
    for label, value in (
        ("hand DDP loop, 2 ranks", hand),
        ("run-trial, 2 ranks", ours),
        ("run-trial --nproc 2 (the command, once)", command),
        ("hand per-tensor all_reduce, 2 ranks (once)", per_tensor),
        ("run-trial, 1 rank (the command, once)", one_rank),
    ):
        print(f"{label:44s}: {value * 1e3:7.2f} ms/step")
    print(
        f"run-trial / hand DDP (2 ranks): {statistics.median(ratios):.3f} (median of per-round "
        f"ratios, {min(ratios):.3f} to {max(ratios):.3f}; bar: <= 1.10)"
    )
    print(f"per-tensor all_reduce / hand DDP: {per_tensor / hand:.3f}")
    print(f"scaling efficiency (run-trial 1-rank / 2-rank step time): {one_rank / ours:.2f}")


if __name__ == "__main__":
    main()
