"""run-trial creates torch data iterators where the installed Lightning's fit loop does.

Creating a ``DataLoader`` iterator draws its base seed from torch's global RNG, so a module that
draws random numbers (dropout, ``randn``) is Lightning-exact only if every iterator is created at
the same point among the hooks: the training one each epoch, the validation one each validation.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest
import torch
from torch.utils.data.dataloader import _BaseDataLoaderIter

from shim.config import load_experiment_config
from shim.progress import NullReporter
from shim.runner import RunOptions, run_trial
from tests.run.helpers import TRIALS, quiet_trainer

RECORDER = TRIALS / "recorder"
LOADERS = {12: "train", 8: "val"}  # dataset sizes of the recorder trial


@pytest.fixture
def recorder_lm(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(RECORDER))
    import recorder_lm

    recorder_lm.CALLS.clear()
    original = _BaseDataLoaderIter.__init__

    def noting_init(self: Any, loader: Any, *args: Any, **kwargs: Any) -> None:
        recorder_lm.CALLS.append(("iter", LOADERS[len(loader.dataset)]))
        original(self, loader, *args, **kwargs)

    monkeypatch.setattr(_BaseDataLoaderIter, "__init__", noting_init)
    yield recorder_lm
    sys.modules.pop("recorder_lm", None)


def lightning_calls(recorder_lm: Any) -> list[tuple[Any, ...]]:
    module = recorder_lm.Recorder()
    recorder_lm.CALLS.clear()
    trainer = quiet_trainer(max_epochs=3)
    train = torch.utils.data.DataLoader(recorder_lm.dataset(12, 0), batch_size=4)
    val = torch.utils.data.DataLoader(recorder_lm.dataset(8, 1), batch_size=4)
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    return list(recorder_lm.CALLS)


def run_trial_calls(recorder_lm: Any, storage: pathlib.Path) -> list[tuple[Any, ...]]:
    config = load_experiment_config(RECORDER / "const.yaml")
    options = RunOptions(context_dir=RECORDER, checkpoint_storage=str(storage), max_length=9)
    run_trial(config, options, NullReporter())
    return list(recorder_lm.CALLS)


def test_run_trial_creates_each_epochs_iterators_where_lightning_does(
    recorder_lm: Any, tmp_path: pathlib.Path
) -> None:
    expected = lightning_calls(recorder_lm)
    recorder_lm.CALLS.clear()
    actual = run_trial_calls(recorder_lm, tmp_path)
    iterators = [call for call in expected if call[0] == "iter"]
    assert iterators == [("iter", "train"), ("iter", "val")] * 3
    assert actual == expected


def test_lightning_2_creates_epoch_0s_iterator_before_on_train_start_later_ones_after_it(
    recorder_lm: Any,
) -> None:
    """The installed Lightning's facts that run-trial follows (Lightning 1.9 creates epoch 0's
    after on_train_epoch_start too, and the validation one after on_validation_epoch_start)."""
    calls = [c[:2] if c[0] == "iter" else c[:1] for c in lightning_calls(recorder_lm)]
    kept = {"iter", "on_fit_start", "on_train_start", "on_train_epoch_start"}
    kept |= {"on_validation_start", "on_validation_epoch_start"}
    events = [c for c in calls if c[0] in kept]
    epoch = [("on_validation_start",), ("on_validation_epoch_start",)]
    assert events[:4] == [
        ("on_fit_start",),
        ("iter", "train"),
        ("on_train_start",),
        ("on_train_epoch_start",),
    ]
    assert events[4:7] == [("iter", "val"), *epoch]
    assert events[7:9] == [("on_train_epoch_start",), ("iter", "train")]
