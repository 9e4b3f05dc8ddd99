"""Per-step cost of a migrated trial's Core API loop against the same training by hand.

``migrate-trial`` rewrites the benchmark MLP trial (``bench/trials/mlp``) into a temporary folder;
its script runs in this process on determined's own off-cluster context. The per-step cost is
``(T(long) - T(short)) / (long - short)`` for both the script and a hand-written loop over the
same module, data and optimizer, so set-up, the final validation and the checkpoint cancel out.
Rounds alternate which goes first; the result is the median of the per-round ratios.

    python bench/bench_migrated_step.py [--short 500] [--long 2500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import torch

HERE = pathlib.Path(__file__).resolve().parent
TRIAL_DIR = HERE / "trials" / "mlp"


def migrate(into: pathlib.Path) -> pathlib.Path:
    out = into / "mlp"
    entry = "from migrate.cli import migrate_main; raise SystemExit(migrate_main())"
    command = [sys.executable, "-c", entry, str(TRIAL_DIR), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: findings (none expected for this trial)
        raise SystemExit(f"migrate-trial failed:\n{done.stderr}")
    return out


def load_script(tree: pathlib.Path) -> Any:
    sys.path.insert(0, str(tree))
    import model_def

    return model_def


def migrated(script: Any, steps: int) -> float:
    sys.argv = ["model_def.py", "--max-length", f"batches={steps}", "--metric", "val_loss"]
    start = time.perf_counter()
    script.main()
    return time.perf_counter() - start


def hand_loop(script: Any, steps: int) -> float:
    """The same training as the script's, written as one would by hand."""
    torch.manual_seed(0)
    module = script.MLP(0.05)
    opt = torch.optim.SGD(module.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(script.make_dataset(), batch_size=32)
    start = time.perf_counter()
    done = 0
    while done < steps:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(module.net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=500)
    parser.add_argument("--long", type=int, default=2500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch)
        os.environ["XDG_DATA_HOME"] = str(root / "data")  # the off-cluster checkpoint storage
        script = load_script(migrate(root))
        migrated(script, 50), hand_loop(script, 50)  # warm-up: imports, allocator
        ratios, ours, theirs = [], [], []
        for i in range(args.rounds):
            runs = [("script", migrated), ("hand", hand_loop)]
            if i % 2:
                runs.reverse()
            per_step: dict[str, float] = {}
            for name, run in runs:
                short, long = run(script, args.short), run(script, args.long)
                per_step[name] = (long - short) / (args.long - args.short)
            ratios.append(per_step["script"] / per_step["hand"])
            ours.append(per_step["script"])
            theirs.append(per_step["hand"])
    print(f"{args.short} and {args.long} steps, batch 32, 1 thread, {args.rounds} rounds")
    print(f"migrated script: {statistics.median(ours) * 1e6:6.1f} us/step")
    print(f"hand loop      : {statistics.median(theirs) * 1e6:6.1f} us/step")
    print(
        f"migrated / hand: {statistics.median(ratios):.3f} (median of per-round ratios, "
        f"{min(ratios):.3f} to {max(ratios):.3f}; bar: <= 1.05)"
    )


if __name__ == "__main__":
    main()
