"""``self.log`` names as a real Lightning Trainer exposes them: a value logged with on_step and
on_epoch is ``name`` and ``name_epoch`` in ``callback_metrics`` after validation (not
``name_step``), so ``searcher.metric: name`` finds it; validation step values reach only the
logger."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from shim.config import load_experiment_config
from shim.progress import NullReporter, RunSummary
from shim.runner import RunOptions, run_trial
from tests.run.helpers import TRIALS, quiet_trainer

FOLDER = TRIALS / "log_names"


@pytest.fixture
def log_names_lm(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(FOLDER))
    import log_names_lm

    log_names_lm.SEEN.clear()
    yield log_names_lm
    sys.modules.pop("log_names_lm", None)


def lightning_seen(log_names_lm: Any) -> dict[str, dict[str, float]]:
    pl.seed_everything(3, verbose=False)
    module = log_names_lm.LogNames()
    train = torch.utils.data.DataLoader(log_names_lm.dataset(12, 0), batch_size=4)
    val = torch.utils.data.DataLoader(log_names_lm.dataset(10, 1), batch_size=4)
    quiet_trainer(max_epochs=2).fit(module, train_dataloaders=train, val_dataloaders=val)
    seen = dict(log_names_lm.SEEN)
    log_names_lm.SEEN.clear()
    return seen


def run_trial_seen(
    log_names_lm: Any, storage: pathlib.Path
) -> tuple[RunSummary, dict[str, dict[str, float]]]:
    config = load_experiment_config(FOLDER / "const.yaml")
    options = RunOptions(context_dir=FOLDER, checkpoint_storage=str(storage))
    summary = run_trial(config, options, NullReporter())
    return summary, dict(log_names_lm.SEEN)


def test_callback_and_logged_metrics_hold_lightnings_names_and_values(
    log_names_lm: Any, tmp_path: pathlib.Path
) -> None:
    expected = lightning_seen(log_names_lm)
    assert set(expected["callback"]) == {
        "t_both", "t_both_step", "t_both_epoch", "t_default", "t_epoch_only",
        "v_both", "v_both_epoch", "v_default", "v_max", "v_max_epoch",
    }  # fmt: skip
    summary, actual = run_trial_seen(log_names_lm, tmp_path)
    assert summary.status == "completed", summary.error
    assert actual["callback"] == expected["callback"]
    assert actual["logged"] == expected["logged"]


def test_the_validation_metrics_are_what_validation_puts_in_callback_metrics(
    log_names_lm: Any, tmp_path: pathlib.Path
) -> None:
    """searcher.metric is v_both, logged on_step and on_epoch: found, with its epoch mean."""
    expected = lightning_seen(log_names_lm)["callback"]
    summary, _ = run_trial_seen(log_names_lm, tmp_path)
    assert summary.status == "completed", summary.error
    assert summary.final_validation == {k: v for k, v in expected.items() if k.startswith("v_")}
    assert summary.final_validation["v_both"] == summary.final_validation["v_both_epoch"]
