"""A small legacy trial for run-trial's tests, with faults switched on by environment variables.

SHIM_TEST_PREEMPT_AT=N       SIGTERM this process after global batch N
SHIM_TEST_CRASH_AT=N         raise once after batch N (a marker file SHIM_TEST_MARKER remembers)
SHIM_TEST_KILL_AT_CHECKPOINT=N  SIGKILL this process after writing the N-th checkpoint's files,
                             before its metadata.json
"""

import os
import pathlib
import signal

import pytorch_lightning as pl
import torch
from determined.pytorch import DataLoader, PyTorchCallback, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from torch import nn


def make_dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return torch.utils.data.TensorDataset(x, y)


class ToyModule(pl.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("accuracy", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.9)
        return [opt], [{"scheduler": sched, "interval": "step"}]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        done = self.global_step
        if os.environ.get("SHIM_TEST_PREEMPT_AT") == str(done):
            os.kill(os.getpid(), signal.SIGTERM)
        # One marker per rank: under torchrun every rank crashes once.
        marker = pathlib.Path(os.environ.get("SHIM_TEST_MARKER", "/nonexistent/marker"))
        marker = marker.with_name(marker.name + os.environ.get("RANK", ""))
        if os.environ.get("SHIM_TEST_CRASH_AT") == str(done) and not marker.exists():
            marker.write_text("crashed once")
            raise RuntimeError(f"injected crash after batch {done}")


class KillDuringCheckpoint(PyTorchCallback):
    def __init__(self) -> None:
        self.saved = 0

    def on_checkpoint_write_end(self, checkpoint_dir: str) -> None:
        self.saved += 1
        if os.environ.get("SHIM_TEST_KILL_AT_CHECKPOINT") == str(self.saved):
            os.kill(os.getpid(), signal.SIGKILL)


class ToyTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        module = ToyModule(lr=context.get_hparam("lr"), hidden=context.get_hparam("hidden"))
        super().__init__(context, lightning_module=module)

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(
            make_dataset(96, seed=0),
            batch_size=self.context.get_per_slot_batch_size(),
            shuffle=self.context.get_hparam("shuffle"),
        )

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(32, seed=1), batch_size=16)

    def build_callbacks(self):
        return {**super().build_callbacks(), "kill": KillDuringCheckpoint()}
