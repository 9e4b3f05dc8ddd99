"""A plain PyTorchTrial through the controller: the context's surface and Determined's run-level
semantics (lengths, periods, reports, stop requests, LR scheduler modes, reducers)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import torch
from torch import nn

import shim.core as core
from shim.config import Length
from shim.core.info import ClusterInfo, TrialInfo
from shim.errors import ShimError
from shim.pytorch import DataLoader, LRScheduler, PyTorchTrial, PyTorchTrialContext, Reducer
from shim.pytorch.controller import RunPlan, TrialController
from shim.pytorch.retention import scan_checkpoints

SEEN: dict[str, Any] = {}


def dataset(n: int) -> torch.utils.data.TensorDataset:
    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2) / n
    return torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))


class PlainTrial(PyTorchTrial):
    def __init__(self, context: PyTorchTrialContext) -> None:
        self.context = context
        self.model = context.wrap_model(nn.Linear(2, 1))
        self.opt = context.wrap_optimizer(torch.optim.SGD(self.model.parameters(), lr=0.1))
        mode = LRScheduler.StepMode[context.get_hparam("step_mode")]
        self.sched = context.wrap_lr_scheduler(
            torch.optim.lr_scheduler.StepLR(self.opt, step_size=1, gamma=0.5), mode, frequency=2
        )
        SEEN.update(
            hparams=context.get_hparams(),
            data=context.get_data_config(),
            per_slot=context.get_per_slot_batch_size(),
            global_bs=context.get_global_batch_size(),
            seed=context.get_trial_seed(),
            positions=[],
        )

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, Any]:
        ctx = self.context
        SEEN["positions"].append(
            (
                batch_idx,
                epoch_idx,
                ctx.current_train_batch(),
                ctx.current_train_epoch(),
                ctx.is_epoch_start(),
                ctx.is_epoch_end(),
            )
        )
        x, y = batch
        loss = nn.functional.mse_loss(self.model(x), y)
        ctx.backward(loss)
        ctx.step_optimizer(self.opt)
        if batch_idx + 1 == ctx.get_hparam("stop_after"):
            ctx.set_stop_requested(True)
        return {"loss": loss, "lr": self.sched.get_last_lr()[0]}

    def evaluate_batch(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        x, y = batch
        return {"val_loss": nn.functional.mse_loss(self.model(x), y), "count": len(x)}

    def evaluation_reducer(self) -> dict[str, Reducer]:
        return {"val_loss": Reducer.AVG, "count": Reducer.SUM}

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(dataset(16), batch_size=self.context.get_per_slot_batch_size())

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(dataset(10), batch_size=4)


def run(
    storage: pathlib.Path, *, step_mode: str = "STEP_EVERY_BATCH", stop_after: int = 0, **plan: Any
) -> tuple[TrialController, list[dict[str, Any]]]:
    hparams = {"global_batch_size": 4, "step_mode": step_mode, "stop_after": stop_after}
    config = {"data": {"source": "synthetic"}, "searcher": {"metric": "val_loss"}}
    info = ClusterInfo(trial=TrialInfo(hparams=hparams, _config=config))
    defaults: dict[str, Any] = {
        "max_length": Length("epochs", 2),
        "searcher_metric": "val_loss",
        "scheduling_unit": 3,
    }
    with core.local_init(checkpoint_storage=storage, info=info) as ctx:
        controller = TrialController(
            PlainTrial,
            ctx,
            RunPlan(**{**defaults, **plan}),
            hparams=hparams,
            exp_conf=config,
            seed=5,
        )
        controller.result = controller.run()  # type: ignore[attr-defined]
        records = [json.loads(line) for line in ctx.train.metrics_path.read_text().splitlines()]
    return controller, records


def test_the_context_answers_what_a_trial_asks(storage: pathlib.Path) -> None:
    run(storage)
    assert SEEN["hparams"]["global_batch_size"] == 4
    assert SEEN["data"] == {"source": "synthetic"}
    assert (SEEN["per_slot"], SEEN["global_bs"], SEEN["seed"]) == (4, 4, 5)
    assert SEEN["positions"][:5] == [
        (0, 0, 0, 0, True, False),
        (1, 0, 1, 0, False, False),
        (2, 0, 2, 0, False, False),
        (3, 0, 3, 0, False, True),
        (4, 1, 4, 1, True, False),
    ]


def test_training_metrics_are_averaged_per_scheduling_unit_with_batches_and_epochs(
    storage: pathlib.Path,
) -> None:
    _, records = run(storage)
    training = [r for r in records if r["group"] == "training"]
    assert [r["steps_completed"] for r in training] == [3, 6, 8]
    assert training[0]["metrics"]["batches"] == 3 and training[0]["metrics"]["epochs"] == 0.75


def test_validation_uses_the_trials_reducers_and_runs_at_the_end(storage: pathlib.Path) -> None:
    _, records = run(storage)
    validations = [r for r in records if r["group"] == "validation"]
    assert [r["steps_completed"] for r in validations] == [8]
    assert validations[0]["metrics"]["count"] == 10  # SUM over the 3 batches of 4, 4, 2


@pytest.mark.parametrize(
    ("mode", "expected_lr_at_end"),
    [("STEP_EVERY_BATCH", 0.1 * 0.5**4), ("STEP_EVERY_EPOCH", 0.1 * 0.5**1), ("MANUAL_STEP", 0.1)],
)
def test_lr_scheduler_step_modes_follow_determined(
    storage: pathlib.Path, mode: str, expected_lr_at_end: float
) -> None:
    controller, _ = run(storage, step_mode=mode)
    assert controller.context.lr_schedulers[0].get_last_lr()[0] == pytest.approx(expected_lr_at_end)


def test_set_stop_requested_checkpoints_and_ends_the_run(storage: pathlib.Path) -> None:
    controller, _ = run(storage, stop_after=3)
    result = controller.result  # type: ignore[attr-defined]
    assert (result.status, result.steps_completed) == ("completed", 3)
    assert result.latest_checkpoint is not None


def test_periods_in_batches_validate_and_checkpoint_on_their_boundaries(
    storage: pathlib.Path,
) -> None:
    _, records = run(
        storage,
        validation_period=Length("batches", 3),
        checkpoint_period=Length("batches", 5),
        checkpoint_policy="none",
        save_trial_latest=10,
    )
    assert [r["steps_completed"] for r in records if r["group"] == "validation"] == [3, 6, 8]
    kept, _ = scan_checkpoints(storage)
    assert [c.steps for c in kept] == [5, 8]


def test_records_lengths_count_global_batches(storage: pathlib.Path) -> None:
    controller, _ = run(storage, max_length=Length("records", 20))
    assert controller.result.steps_completed == 5  # type: ignore[attr-defined]


def test_a_missing_hparam_names_the_known_ones(storage: pathlib.Path) -> None:
    info = ClusterInfo(trial=TrialInfo(hparams={}))
    with core.local_init(checkpoint_storage=storage, info=info) as ctx:
        context = PyTorchTrialContext(ctx, 0, {"global_batch_size": 4}, 1, 0, {}, 1, 0, True, False)
        with pytest.raises(
            ShimError,
            match=r"'lr' is not in the experiment config \(known: \['global_batch_size'\]\)",
        ):
            context.get_hparam("lr")
        with pytest.raises(ShimError, match="set_stop_requested\\(\\) takes a bool"):
            context.set_stop_requested("yes")  # type: ignore[arg-type]


def test_a_plain_torch_dataloader_is_refused_with_the_fix(storage: pathlib.Path) -> None:
    class TorchLoaderTrial(PlainTrial):
        def build_training_data_loader(self) -> Any:
            return torch.utils.data.DataLoader(dataset(8), batch_size=4)

    hparams = {"global_batch_size": 4, "step_mode": "MANUAL_STEP", "stop_after": 0}
    with core.local_init(checkpoint_storage=storage, info=ClusterInfo()) as ctx:
        controller = TrialController(
            TorchLoaderTrial,
            ctx,
            RunPlan(max_length=Length("batches", 2)),
            hparams=hparams,
            exp_conf={},
            seed=0,
        )
        with pytest.raises(
            ShimError, match="returned a DataLoader; return determined.pytorch.DataLoader"
        ):
            controller.run()
