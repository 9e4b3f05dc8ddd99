"""An MLP LightningAdapter trial for the benchmarks: small (``const.yaml``, per-step overhead)
or wide (``wide.yaml``, about 17 MB of weights, preemption latency)."""

import pytorch_lightning as pl
import torch
from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from torch import nn


def make_dataset(
    n: int = 2048, features: int = 64, seed: int = 0
) -> torch.utils.data.TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    return torch.utils.data.TensorDataset(x, (x[:, :10].argmax(dim=1)))


class MLP(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 128, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(64, hidden), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 10))
        self.lr = lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class MLPTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        hparams = context.get_hparams()
        module = MLP(hparams["lr"], hparams.get("hidden", 128), hparams.get("depth", 1))
        super().__init__(context, lightning_module=module)

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(), batch_size=self.context.get_per_slot_batch_size())

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(64, seed=1), batch_size=64)
