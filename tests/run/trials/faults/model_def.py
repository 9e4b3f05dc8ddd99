"""A small trial for run-trial's exit-code and run-lock tests; faults come from the environment.

SHIM_TEST_HOLD_AT=N, SHIM_TEST_HOLD_DIR=D  after batch N write D/started (this pid), then wait
                                           until D/release exists
SHIM_TEST_FAIL_AT=N                        raise after batch N, on every attempt
SHIM_TEST_FILL_AT=N, SHIM_TEST_FILL=PATH   after batch N fill PATH's file system (once: the file
                                           stays), so the next checkpoint cannot be written
"""

import os
import pathlib
import time

import pytorch_lightning as pl
import torch
from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from torch import nn


def _at(name: str, batch: int) -> bool:
    return os.environ.get(name) == str(batch)


def _hold(folder: pathlib.Path) -> None:
    (folder / "started").write_text(str(os.getpid()))
    while not (folder / "release").exists():  # the test creates it; the trial only waits
        time.sleep(0.02)


def _fill(path: pathlib.Path) -> None:
    if path.exists():
        return
    with open(path, "wb", buffering=0) as out:  # unbuffered: closing it writes nothing
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass  # the file system is full, which is the point


class FaultModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        done = self.global_step
        if _at("SHIM_TEST_HOLD_AT", done):
            _hold(pathlib.Path(os.environ["SHIM_TEST_HOLD_DIR"]))
        if _at("SHIM_TEST_FILL_AT", done):
            _fill(pathlib.Path(os.environ["SHIM_TEST_FILL"]))
        if _at("SHIM_TEST_FAIL_AT", done):
            raise RuntimeError(f"injected failure after batch {done}")


def dataset(n: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(n)
    x = torch.randn(n, 4, generator=generator)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


class FaultTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        super().__init__(context, lightning_module=FaultModule())

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(dataset(64), batch_size=self.context.get_per_slot_batch_size())

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(dataset(16), batch_size=8)
