"""The resume sweep's trial: a shuffled loader, dropout and Adam, so any slip in the data order,
the RNG streams or the optimizer state changes the final weights.

SHIM_TEST_PREEMPT_AT=N  SIGTERM this process after global batch N
SHIM_TEST_CRASH_AT=N    raise once after batch N (the marker file SHIM_TEST_MARKER remembers)
"""

import os
import pathlib
import signal

import pytorch_lightning as pl
import torch
from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from torch import nn


def make_dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return torch.utils.data.TensorDataset(x, y)


class SweepModule(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        done = self.global_step
        if os.environ.get("SHIM_TEST_PREEMPT_AT") == str(done):
            os.kill(os.getpid(), signal.SIGTERM)
        marker = pathlib.Path(os.environ.get("SHIM_TEST_MARKER", "/nonexistent/marker"))
        if os.environ.get("SHIM_TEST_CRASH_AT") == str(done) and not marker.exists():
            marker.write_text("crashed once")
            raise RuntimeError(f"injected crash after batch {done}")


class SweepTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        super().__init__(context, lightning_module=SweepModule(lr=context.get_hparam("lr")))

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(
            make_dataset(104, seed=0),
            batch_size=self.context.get_per_slot_batch_size(),
            shuffle=True,
        )

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(24, seed=1), batch_size=8)
