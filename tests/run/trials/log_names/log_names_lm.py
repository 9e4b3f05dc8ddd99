"""A LightningModule that logs with every on_step/on_epoch combination in training and
validation, and keeps what the trainer's ``callback_metrics`` and ``logged_metrics`` hold when
training ends."""

import pytorch_lightning as pl
import torch
from torch import nn

SEEN: dict[str, dict[str, float]] = {}


def dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))


class LogNames(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("t_both", loss, on_step=True, on_epoch=True)
        self.log("t_default", loss)
        self.log("t_epoch_only", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("v_both", loss, on_step=True, on_epoch=True)
        self.log("v_step_only", loss, on_step=True, on_epoch=False)
        self.log("v_default", loss)
        self.log("v_max", loss, on_step=True, on_epoch=True, reduce_fx="max")

    def on_train_end(self):
        SEEN["callback"] = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        SEEN["logged"] = {k: float(v) for k, v in self.trainer.logged_metrics.items()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)
