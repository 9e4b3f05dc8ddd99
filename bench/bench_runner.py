"""Per-step overhead of ``run-trial`` against a hand-written PyTorch loop and Lightning's Trainer.

The same small MLP (batch 32, CPU, one thread, no validation in the timed part) trains for the
same number of steps on the same data three ways, interleaved over several rounds; the result is
the median of the per-round ratios (run-trial's time is its training loop, first to last batch).

    python bench/bench_runner.py [--steps 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import statistics
import sys
import tempfile
import time
import warnings

import torch

HERE = pathlib.Path(__file__).resolve().parent
TRIAL_DIR = HERE / "trials" / "mlp"


def hand_loop(steps: int) -> float:
    sys.path.insert(0, str(TRIAL_DIR))
    from shim.imports import determined_namespace

    with determined_namespace():
        import model_def

    torch.manual_seed(0)
    module = model_def.MLP(0.05)
    opt = torch.optim.SGD(module.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(model_def.make_dataset(), batch_size=32)
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


class _Clock:
    """Times the training loop alone: from the run's start event to the last batch."""

    def __init__(self, steps: int) -> None:
        from shim.progress import NullReporter

        self._null = NullReporter()
        self._steps = steps
        self.start = self.end = 0.0

    def on_start(self, **_: object) -> None:
        self.start = time.perf_counter()

    def on_batch(self, *, batches: int, epoch: int) -> None:
        if batches == self._steps:
            self.end = time.perf_counter()

    def __getattr__(self, name: str) -> object:
        return getattr(self._null, name)


def runner(steps: int) -> tuple[float, float]:
    """(training loop seconds, whole run seconds incl. set-up, final validation, checkpoint)."""
    from shim.config import load_experiment_config
    from shim.runner import RunOptions, run_trial

    config = load_experiment_config(TRIAL_DIR / "const.yaml")
    clock = _Clock(steps)
    with tempfile.TemporaryDirectory() as storage:
        options = RunOptions(context_dir=TRIAL_DIR, max_length=steps, checkpoint_storage=storage)
        summary = run_trial(config, options, clock)  # type: ignore[arg-type]
    assert summary.steps_completed == steps
    return clock.end - clock.start, summary.elapsed_seconds


def lightning_trainer(steps: int) -> float:
    import pytorch_lightning as pl

    sys.path.insert(0, str(TRIAL_DIR))
    from shim.imports import determined_namespace

    with determined_namespace():
        import model_def

    torch.manual_seed(0)
    module = model_def.MLP(0.05)
    loader = torch.utils.data.DataLoader(model_def.make_dataset(), batch_size=32)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    hand_loop(100), runner(100), lightning_trainer(100)  # warm-up: imports, allocator
    names = ("hand loop", "run-trial", "run-trial, whole run", "Lightning Trainer")
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(args.rounds):
        # Alternate which goes first, so a slow spell does not always hit the same one.
        if i % 2:
            loop, whole = runner(args.steps)
            times["hand loop"].append(hand_loop(args.steps))
        else:
            times["hand loop"].append(hand_loop(args.steps))
            loop, whole = runner(args.steps)
        times["run-trial"].append(loop)
        times["run-trial, whole run"].append(whole)
        if i < 3:  # the Trainer is slow and only needed for a rough ratio
            times["Lightning Trainer"].append(lightning_trainer(args.steps))
    med = {name: statistics.median(values) for name, values in times.items()}
    # Each round's ratio: a noisy machine drifts between rounds more than within one.
    per_round = [r / h for r, h in zip(times["run-trial"], times["hand loop"], strict=True)]
    print(f"{args.steps} steps, batch 32, 1 thread, {args.rounds} rounds, medians")
    for name, value in med.items():
        print(f"{name:22s}: {value:7.3f} s  ({value / args.steps * 1e6:6.1f} us/step)")
    print(
        f"run-trial / hand loop        : {statistics.median(per_round):.3f} (median of per-round "
        f"ratios, {min(per_round):.3f} to {max(per_round):.3f}; bar: <= 1.10)"
    )
    whole = med["run-trial, whole run"] / med["hand loop"]
    print(f"  whole run (set-up, final validation, checkpoint) / hand loop: {whole:.3f}")
    print(f"run-trial / Lightning Trainer: {med['run-trial'] / med['Lightning Trainer']:.3f}")
    print(f"Lightning Trainer / hand loop: {med['Lightning Trainer'] / med['hand loop']:.3f}")


if __name__ == "__main__":
    main()
