"""Benchmark lint-trial: one file's wall time, and throughput against libcst's parse floor.

Prints the numbers and exits 1 if a target is missed: one file in at most 0.5 s, and at most
2.0x the time of bare ``libcst.parse_module`` over the same 1,000 generated trial files, single
process. Run: ``python bench/bench_lint.py [--files N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libcst as cst

HEADER = '''"""Generated legacy trial number {i}."""
from __future__ import annotations

import torch
import pytorch_lightning as pl
from torch import nn
from torch.nn import functional as F
from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter


class Encoder{i}(nn.Module):
    def __init__(self, width: int = {width}) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.view(x.size(0), -1))


class Model{i}(pl.LightningModule):
    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder{i}()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def training_step(self, batch, batch_idx{opt_idx}):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("train_loss", loss, prog_bar=True{log_extra})
        self.log("train_acc", acc, on_step=True, on_epoch=False)
        return {{"loss": loss, "acc": acc}}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val_loss", loss)
        return {{"val_loss": loss}}

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        return {{"optimizer": opt, "lr_scheduler": {{"scheduler": sched, "interval": "epoch"}}}}
'''
EXTRAS = (
    """
    def validation_epoch_end(self, outputs):
        avg = torch.stack([o["val_loss"] for o in outputs]).mean()
        self.log("avg_val_loss", avg)
""",
    """
    def test_step(self, batch, batch_idx):
        return self.validation_step(batch, batch_idx)
""",
    """
    def on_train_epoch_start(self) -> None:
        self.print(f"epoch {self.current_epoch}")
""",
)
TRIAL = """

class Trial{i}(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        lm = Model{i}(lr=context.get_hparam("learning_rate"))
        super().__init__(context, lightning_module=lm)

    def build_training_data_loader(self) -> DataLoader:
        ds = torch.utils.data.TensorDataset(torch.randn(256, 1, 28, 28), torch.zeros(256).long())
        return DataLoader(ds, batch_size=self.context.get_per_slot_batch_size(), shuffle=True)

    def build_validation_data_loader(self) -> DataLoader:
        ds = torch.utils.data.TensorDataset(torch.randn(64, 1, 28, 28), torch.zeros(64).long())
        return DataLoader(ds, batch_size=self.context.get_per_slot_batch_size())
"""


def trial_source(i: int) -> str:
    """A ~70-line legacy trial; most hold a finding or two, as real legacy trials would."""
    text = HEADER.format(
        i=i,
        width=64 + i % 7,
        opt_idx=", optimizer_idx" if i % 5 == 0 else "",
        log_extra=', sync_dist_op="mean"' if i % 9 == 0 else "",
    )
    text += "".join(extra for k, extra in enumerate(EXTRAS) if (i >> k) & 1)
    return text + TRIAL.format(i=i)


def lint_command() -> list[str]:
    script = Path(sys.executable).with_name("lint-trial")
    if script.exists():
        return [str(script)]
    code = "import sys; from migrate.cli import lint_main; sys.exit(lint_main())"
    return [sys.executable, "-c", code]


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def parse_floor(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        cst.parse_module(path.read_bytes().decode("utf-8"))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000, help="trial files to generate")
    args = parser.parse_args()
    command = lint_command()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "trials"
        tree.mkdir()
        files = [tree / f"trial_{i:04d}.py" for i in range(args.files)]
        for i, path in enumerate(files):
            path.write_text(trial_source(i))
        one = statistics.median(wall([*command, str(files[1])]) for _ in range(5))
        floor = parse_floor(files)
        jobs1 = wall([*command, "--jobs", "1", str(tree)])
        jobs2 = wall([*command, "--jobs", "2", str(tree)])
    n = len(files)
    lines = sum(trial_source(i).count("\n") for i in range(n)) // n
    print(f"files: {n} generated trials, about {lines} lines each")
    print(f"one file, lint-trial wall time (median of 5): {one:.3f} s (target <= 0.5 s)")
    print(f"libcst.parse_module floor: {floor:.2f} s, {n / floor:.0f} files/s")
    print(f"lint-trial --jobs 1: {jobs1:.2f} s, {n / jobs1:.0f} files/s")
    print(f"lint-trial --jobs 2: {jobs2:.2f} s, {n / jobs2:.0f} files/s")
    ratio = jobs1 / floor
    print(f"ratio --jobs 1 / parse floor: {ratio:.2f}x (target <= 2.0x)")
    print(f"speed-up --jobs 2 over --jobs 1: {jobs1 / jobs2:.2f}x")
    return 0 if one <= 0.5 and ratio <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
