"""Every supported hook is called, in the order the installed Lightning Trainer calls it."""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

from shim.config import load_experiment_config
from shim.progress import NullReporter
from shim.runner import RunOptions, run_trial
from tests.run.helpers import TRIALS, quiet_trainer

RECORDER = TRIALS / "recorder"


@pytest.fixture
def recorder_lm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(RECORDER))
    import recorder_lm

    recorder_lm.CALLS.clear()
    yield recorder_lm
    sys.modules.pop("recorder_lm", None)


def lightning_calls(recorder_lm) -> list[tuple]:
    module = recorder_lm.Recorder()
    recorder_lm.CALLS.clear()
    trainer = quiet_trainer(max_epochs=2)
    train = torch.utils.data.DataLoader(recorder_lm.dataset(12, 0), batch_size=4)
    val = torch.utils.data.DataLoader(recorder_lm.dataset(8, 1), batch_size=4)
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    return list(recorder_lm.CALLS)


def run_trial_calls(recorder_lm, storage: pathlib.Path) -> list[tuple]:
    config = load_experiment_config(RECORDER / "const.yaml")
    options = RunOptions(context_dir=RECORDER, checkpoint_storage=str(storage))
    run_trial(config, options, NullReporter())
    # The trial imported its own copy of recorder_lm from the trial folder.
    return list(recorder_lm.CALLS)


def test_run_trial_calls_the_supported_hooks_in_lightnings_order(
    recorder_lm, tmp_path: pathlib.Path
) -> None:
    expected = lightning_calls(recorder_lm)
    recorder_lm.CALLS.clear()
    actual = run_trial_calls(recorder_lm, tmp_path)
    assert actual == expected
    names = {call[0] for call in actual}
    assert len(names) == 26, sorted(names)
