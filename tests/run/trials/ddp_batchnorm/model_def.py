"""A trial with a BatchNorm layer that records, on every rank, its buffers as each training step
begins and ends, what DDP's logging says about its reducer, and the validation epoch's
``callback_metrics`` of a value logged with and without ``sync_dist`` (SHIM_TEST_DDP_RECORD).
SHIM_TEST_STOP_AT=N with SHIM_TEST_STOP_RANKS=0,1 sets ``trainer.should_stop`` after batch N on
those ranks; SHIM_TEST_PREEMPT_AT=N SIGTERMs each rank after batch N; SHIM_TEST_RANK_NOISE=1 adds
noise to the inputs drawn from a rank-dependent number of draws, so the ranks' generators differ."""

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
    x = torch.randn(n, 6, generator=generator) * 3 + 1
    y = (x[:, 0] > 1).long()
    return torch.utils.data.TensorDataset(x, y)


class BatchNormModule(pl.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        self.records: list[dict[str, dict[str, list[float]]]] = []
        self.validated: list[dict[str, object]] = []
        self.synced: list[dict[str, float]] = []

    def _bn_state(self) -> dict[str, list[float]]:
        bn = self.net[1]
        return {"mean": bn.running_mean.tolist(), "var": bn.running_var.tolist()}

    def training_step(self, batch, batch_idx):
        self.records.append({"start": self._bn_state()})
        x, y = batch
        if os.environ.get("SHIM_TEST_RANK_NOISE"):
            draws = torch.randn(100 * (self.global_rank + 1))  # over 16: randn draws per call
            x = x + 0.1 * draws[: len(x), None]
        return nn.functional.cross_entropy(self.net(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.records[-1]["end"] = self._bn_state()
        stoppers = os.environ.get("SHIM_TEST_STOP_RANKS", "").split(",")
        at = os.environ.get("SHIM_TEST_STOP_AT")
        if at == str(self.global_step) and str(self.global_rank) in stoppers:
            self.trainer.should_stop = True
        if os.environ.get("SHIM_TEST_PREEMPT_AT") == str(self.global_step):
            os.kill(os.getpid(), signal.SIGTERM)

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.validated.append({"step": self.global_step, "buffers": self._bn_state()})
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))
        rank = float(self.global_rank)
        self.log("rank_synced", rank, sync_dist=True)
        self.log("rank_local", rank)
        self.log("rank_max", rank, sync_dist=True, reduce_fx="max")

    def on_validation_end(self):
        metrics = self.trainer.callback_metrics
        self.synced.append({k: float(v) for k, v in metrics.items() if k.startswith("rank_")})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class BatchNormTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        super().__init__(context, lightning_module=BatchNormModule(context.get_hparam("lr")))

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(128, 1), batch_size=self.context.get_per_slot_batch_size())

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(make_dataset(32, 2), batch_size=self.context.get_per_slot_batch_size())

    def _shim_on_run_end(self, status: str) -> None:
        folder = os.environ.get("SHIM_TEST_DDP_RECORD")
        if folder:
            ddp = self._training_step.ddp
            record = {
                "steps": self.lightning_module.records,
                "validated": self.lightning_module.validated,
                "synced": self.lightning_module.synced,
                "ddp": None if ddp is None else dict(ddp._get_ddp_logging_data()),
            }
            rank = self.context.distributed.get_rank()
            torch.save(record, pathlib.Path(folder) / f"rank{rank}.pt")
        super()._shim_on_run_end(status)
