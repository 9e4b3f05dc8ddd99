"""Lightning is the oracle for per-step numerics: N steps through run-trial give the weights of N
steps of the real Trainer on the same data and seed. Lightning 2.x in this environment; the
legacy 1.x modules (two optimizers with optimizer_idx, *_epoch_end) against Lightning 1.9.5 in a
second environment, where run-trial itself also runs on Lightning 1.9."""

from __future__ import annotations

import pathlib
import subprocess

import pytest
import pytorch_lightning as pl
import torch

from tests.oracle.fixtures import pl19_python_fixture  # noqa: F401  (provides pl19_python)
from tests.oracle.lightning_run import run_lightning, run_lightning_in
from tests.run.helpers import (
    TOY,
    Run,
    assert_same_weights,
    checkpoint_content,
    final_weights,
    quiet_trainer,
    run_trial,
    trial_module,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
DROPOUT = FIXTURES / "dropout"


def validation_part(callback_metrics: dict[str, float]) -> dict[str, float]:
    """What validation put in Lightning's ``callback_metrics`` (the fixtures name it ``val_*``)."""
    return {k: v for k, v in callback_metrics.items() if k.startswith("val_")}


def test_mnist_like_matches_lightning_2s_trainer_bit_for_bit(tmp_path: pathlib.Path) -> None:
    ours = run_trial(tmp_path, config=FIXTURES / "mnist_like" / "const.yaml")
    assert ours.returncode == 0, ours.stderr
    oracle = run_lightning(FIXTURES / "mnist_like", epochs=2, seed=42)
    assert ours.summary["steps_completed"] == oracle["global_step"] == 16
    assert_same_weights(final_weights(ours.summary), oracle["state_dict"])


def test_a_step_interval_scheduler_matches_lightning_2s_trainer(tmp_path: pathlib.Path) -> None:
    """The toy trial: SGD with momentum and a StepLR dict with interval 'step', 3 epochs."""
    ours = run_trial(tmp_path, "--hparam", "shuffle=false", config=TOY)
    assert ours.returncode == 0, ours.stderr
    with trial_module(TOY.parent) as model_def:
        pl.seed_everything(11, verbose=False)
        module = model_def.ToyModule(lr=0.1, hidden=16)
        train = torch.utils.data.DataLoader(model_def.make_dataset(96, seed=0), batch_size=8)
        trainer = quiet_trainer(max_epochs=3, limit_val_batches=0)
        trainer.fit(module, train_dataloaders=train)
    assert_same_weights(final_weights(ours.summary), module.state_dict())
    content = checkpoint_content(ours.summary)
    assert content["lr_schedulers_state_dict"][0]["last_epoch"] == 36
    assert (
        content["lr_schedulers_state_dict"][0]
        == trainer.lr_scheduler_configs[0].scheduler.state_dict()
    )


def test_a_module_drawing_random_numbers_matches_lightning_2_over_three_epochs(
    tmp_path: pathlib.Path,
) -> None:
    """Dropout, randn in training_step, random draws in epoch hooks and in the dataset, a
    shuffled loader and Adam: every epoch's draws come in Lightning's order."""
    ours = run_trial(tmp_path, config=DROPOUT / "const.yaml")
    assert ours.returncode == 0, ours.stderr
    oracle = run_lightning(DROPOUT, epochs=3, seed=42)
    assert ours.summary["steps_completed"] == oracle["global_step"] == 24
    assert_same_weights(final_weights(ours.summary), oracle["state_dict"])
    # val_loss was logged on_step and on_epoch: both val_loss and val_loss_epoch, as Lightning.
    expected = validation_part(oracle["logged"])
    assert set(expected) == {"val_loss", "val_loss_epoch", "val_acc", "val_shifted_loss"}
    assert ours.summary["final_validation"] == expected


def _run_trial_in(python: pathlib.Path, storage: pathlib.Path, config: pathlib.Path) -> Run:
    command = [str(python), "-m", "shim.cli", str(config), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return Run(result.returncode, result.stdout, result.stderr)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("fixture", "epochs"), [("gan", 2), ("lr_schedulers", 2), ("mnist_like", 2), ("dropout", 3)]
)
def test_under_lightning_1_9_run_trial_matches_its_trainer(
    tmp_path: pathlib.Path, pl19_python: pathlib.Path, fixture: str, epochs: int
) -> None:
    ours = _run_trial_in(pl19_python, tmp_path, FIXTURES / fixture / "const.yaml")
    assert ours.returncode == 0, ours.stderr
    oracle = run_lightning_in(pl19_python, FIXTURES / fixture, epochs=epochs, seed=42)
    assert ours.summary["steps_completed"] == 8 * epochs
    weights = final_weights(ours.summary)
    # Weights and buffers, e.g. what training_epoch_end / validation_epoch_end recorded.
    assert_same_weights(weights, oracle["state_dict"])
    adapter = checkpoint_content(ours.summary)["callbacks"]["_lightning_module"]
    assert adapter["global_step"] == oracle["global_step"]
    assert validation_part(oracle["logged"]).items() <= ours.summary["final_validation"].items()
