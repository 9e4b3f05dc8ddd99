"""A LightningModule that records every supported hook it receives, in order."""

import pytorch_lightning as pl
import torch
from torch import nn

CALLS: list[tuple] = []


def dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))


class Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def _note(self, *call) -> None:
        CALLS.append(call)

    def prepare_data(self):
        self._note("prepare_data")

    def setup(self, stage):
        self._note("setup", stage)

    def teardown(self, stage):
        self._note("teardown", stage)

    def on_fit_start(self):
        self._note("on_fit_start")

    def on_fit_end(self):
        self._note("on_fit_end")

    def on_train_start(self):
        self._note("on_train_start")

    def on_train_end(self):
        self._note("on_train_end")

    def on_train_epoch_start(self):
        self._note("on_train_epoch_start", self.current_epoch)

    def on_train_epoch_end(self):
        self._note("on_train_epoch_end", self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx):
        self._note("on_train_batch_start", batch_idx)

    def training_step(self, batch, batch_idx):
        self._note("training_step", batch_idx)
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self._note("on_train_batch_end", batch_idx, sorted(outputs))

    def on_before_zero_grad(self, optimizer):
        self._note("on_before_zero_grad")

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        self._note("optimizer_zero_grad", epoch, batch_idx)
        optimizer.zero_grad()

    def on_before_backward(self, loss):
        self._note("on_before_backward")

    def on_after_backward(self):
        self._note("on_after_backward")

    def on_before_optimizer_step(self, optimizer):
        self._note("on_before_optimizer_step")

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        self._note("configure_gradient_clipping")

    def on_validation_start(self):
        self._note("on_validation_start", self.training)

    def on_validation_epoch_start(self):
        self._note("on_validation_epoch_start")

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
        self._note("on_validation_batch_start", batch_idx)

    def validation_step(self, batch, batch_idx):
        self._note("validation_step", batch_idx, torch.is_grad_enabled())
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.layer(x), y))

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        self._note("on_validation_batch_end", batch_idx)

    def on_validation_epoch_end(self):
        self._note("on_validation_epoch_end")

    def on_validation_end(self):
        self._note("on_validation_end")

    def configure_optimizers(self):
        self._note("configure_optimizers")
        return torch.optim.SGD(self.parameters(), lr=0.01)
